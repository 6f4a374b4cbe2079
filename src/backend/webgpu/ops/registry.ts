// One table from graph op to WebGPU kernel planner. An op without an entry fails at compile
// (load) time with its name, never at run time.
import { CosfaceError } from '../../../errors.js';
import type { Conv2DNode, FullyConnectedNode, GraphNode } from '../../../graph/ir.js';
import { planConv2d } from './conv2d.js';
import { planDepthwise } from './depthwise.js';
import { planActivation, planAdd, planAffine, planL2Normalize, planPad } from './elementwise.js';
import type { KernelPlan, PlanContext } from './kernel.js';
import { matmulApplies, planMatmul } from './matmul.js';
import { planConcat, planMaxPool, planPadChannels, planSigmoid } from './pool.js';

type Planner = (node: never, shapes: Map<string, number[]>, ctx: PlanContext) => KernelPlan | KernelPlan[];

const PLANNERS: Partial<Record<GraphNode['op'], Planner>> = {
  conv2d: ((node, shapes, ctx) => (matmulApplies(node) ? planMatmul(node, shapes, ctx) : planConv2d(node, shapes, ctx))) as Planner,
  fullyConnected: ((node, shapes, ctx) => {
    if (matmulApplies(node)) return planMatmul(node, shapes, ctx);
    // Odd sizes: the same weights are a 1x1 convolution over a 1x1 image with inF channels.
    const fc = node as FullyConnectedNode;
    const conv: Conv2DNode = {
      op: 'conv2d', name: fc.name, inputs: fc.inputs, output: fc.output, filter: fc.weights, bias: fc.bias,
      kh: 1, kw: 1, inC: fc.inF, outC: fc.outF, strideH: 1, strideW: 1, pads: { top: 0, left: 0, bottom: 0, right: 0 },
      activation: fc.activation, alpha: fc.alpha,
    };
    const local = new Map(shapes);
    local.set(fc.inputs[0]!, [1, 1, fc.inF]);
    local.set(fc.output, [1, 1, fc.outF]);
    return { ...planConv2d(conv, local), node };
  }) as Planner,
  depthwiseConv2d: planDepthwise as Planner,
  add: planAdd as Planner,
  affine: planAffine as Planner,
  activation: planActivation as Planner,
  pad: planPad as Planner,
  l2normalize: planL2Normalize as Planner,
  maxPool2d: planMaxPool as Planner,
  padChannels: planPadChannels as Planner,
  sigmoid: planSigmoid as Planner,
  concat: planConcat as Planner,
};

/** Ops that need no kernel: the output is the input buffer under another name. */
export const ALIAS_OPS = new Set<GraphNode['op']>(['reshape']);

/** The kernel dispatches of one node (usually one; concat copies each input). */
export function planNode(node: GraphNode, shapes: Map<string, number[]>, ctx: PlanContext): KernelPlan[] {
  const planner = PLANNERS[node.op];
  if (!planner) throw new CosfaceError('UNSUPPORTED_OP', `webgpu: no kernel for op '${node.op}' (node ${node.name})`);
  const plan = planner(node as never, shapes, ctx);
  return Array.isArray(plan) ? plan : [plan];
}
