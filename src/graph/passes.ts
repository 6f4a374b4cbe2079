// Graph rewrites that make an imported model cheap to run while computing the same function:
// fold explicit padding and the input normalisation into the first convolution, recognise the
// decomposed PReLU (max(x,0) + alpha * min(x,0)), fuse activations and residual adds into the
// producing convolution. Every pass keeps the graph topologically ordered.
import { CosfaceError } from '../errors.js';
import type { Conv2DNode, DepthwiseConv2DNode, FullyConnectedNode, Graph, GraphNode } from './ir.js';

type ComputeNode = Conv2DNode | DepthwiseConv2DNode | FullyConnectedNode;

function isCompute(n: GraphNode | undefined): n is ComputeNode {
  return !!n && (n.op === 'conv2d' || n.op === 'depthwiseConv2d' || n.op === 'fullyConnected');
}

function consumers(graph: Graph, tensor: string): GraphNode[] {
  const out = graph.nodes.filter((n) => n.inputs.includes(tensor));
  return out;
}

function isOutput(graph: Graph, tensor: string): boolean {
  return graph.output.name === tensor;
}

/** Replaces every use of tensor `from` by `to` (in inputs and the graph output). */
function rename(graph: Graph, from: string, to: string): void {
  for (const n of graph.nodes) n.inputs = n.inputs.map((i) => (i === from ? to : i));
  if (graph.output.name === from) graph.output = { name: to, shape: graph.output.shape };
}

function producerOf(graph: Graph, tensor: string): GraphNode | undefined {
  return graph.nodes.find((n) => n.output === tensor);
}

function allZero(v: Float32Array): boolean {
  return v.every((x) => x === 0);
}

/** max(x,0) + alpha*min(x,0)  ->  activation prelu(alpha) on x. */
export function fusePreluPattern(graph: Graph): number {
  let count = 0;
  for (const add of [...graph.nodes]) {
    if (add.op !== 'add' || add.activation !== 'none' || add.inputs.length !== 2) continue;
    const [p0, p1] = add.inputs.map((t) => producerOf(graph, t));
    const max = p0?.op === 'maximum' ? p0 : p1?.op === 'maximum' ? p1 : undefined;
    const mul = p0?.op === 'mul' ? p0 : p1?.op === 'mul' ? p1 : undefined;
    if (!max || max.op !== 'maximum' || !mul || mul.op !== 'mul' || !mul.value) continue;
    if (!allZero(max.value)) continue;
    const min = producerOf(graph, mul.inputs[0]!);
    if (!min || min.op !== 'minimum' || !allZero(min.value)) continue;
    const x = max.inputs[0]!;
    if (min.inputs[0] !== x) continue;
    // The intermediate tensors must feed nothing else.
    if (consumers(graph, max.output).length !== 1 || consumers(graph, min.output).length !== 1 || consumers(graph, mul.output).length !== 1) continue;
    const fused: GraphNode = { op: 'activation', name: add.name, inputs: [x], output: add.output, activation: 'prelu', alpha: mul.value };
    graph.nodes = graph.nodes.filter((n) => n !== max && n !== min && n !== mul).map((n) => (n === add ? fused : n));
    count++;
  }
  return count;
}

/** Standalone relu/prelu directly after a conv/depthwise/fc with no activation of its own. */
export function fuseActivations(graph: Graph): number {
  let count = 0;
  for (const act of [...graph.nodes]) {
    if (act.op !== 'activation') continue;
    const src = producerOf(graph, act.inputs[0]!);
    if (!isCompute(src) || src.activation !== 'none' || src.inputs.length !== 1) continue;
    if (consumers(graph, src.output).length !== 1 || isOutput(graph, src.output)) continue;
    src.activation = act.activation;
    if (act.alpha) src.alpha = act.alpha;
    const oldOut = src.output;
    src.output = act.output;
    graph.shapes.delete(oldOut);
    graph.nodes = graph.nodes.filter((n) => n !== act);
    count++;
  }
  return count;
}

/** PAD followed by a convolution (its only consumer): add the pads to the convolution's own. */
export function foldPads(graph: Graph): number {
  let count = 0;
  for (const pad of [...graph.nodes]) {
    if (pad.op !== 'pad') continue;
    const users = consumers(graph, pad.output);
    const conv = users[0];
    if (users.length !== 1 || !conv || (conv.op !== 'conv2d' && conv.op !== 'depthwiseConv2d') || conv.inputs[0] !== pad.output) continue;
    if (conv.op === 'conv2d' && conv.padValue && !allZero(conv.padValue)) continue;
    conv.pads = {
      top: conv.pads.top + pad.pads.top,
      left: conv.pads.left + pad.pads.left,
      bottom: conv.pads.bottom + pad.pads.bottom,
      right: conv.pads.right + pad.pads.right,
    };
    graph.shapes.delete(pad.output);
    rename(graph, pad.output, pad.inputs[0]!);
    graph.nodes = graph.nodes.filter((n) => n !== pad);
    count++;
  }
  return count;
}

/** Constant per-channel mul as an affine op, then consecutive affines merged into one. */
function mergeAffines(graph: Graph): void {
  graph.nodes = graph.nodes.map((n) =>
    n.op === 'mul' && n.value && n.inputs.length === 1
      ? { op: 'affine', name: n.name, inputs: n.inputs, output: n.output, scale: n.value, shift: new Float32Array(n.value.length) }
      : n,
  );
  for (const b of [...graph.nodes]) {
    if (b.op !== 'affine') continue;
    const a = producerOf(graph, b.inputs[0]!);
    if (!a || a.op !== 'affine' || consumers(graph, a.output).length !== 1) continue;
    // b(a(x)) = (x*sa + ta)*sb + tb
    const scale = a.scale.map((s, c) => s * b.scale[c]!);
    const shift = a.shift.map((t, c) => t * b.scale[c]! + b.shift[c]!);
    const merged: GraphNode = { op: 'affine', name: b.name, inputs: a.inputs, output: b.output, scale, shift };
    graph.shapes.delete(a.output);
    graph.nodes = graph.nodes.filter((n) => n !== a).map((n) => (n === b ? merged : n));
  }
}

/**
 * An affine y = x*s + t on the graph input feeding a dense convolution: conv(W, pad0(x*s+t)) =
 * conv(W*s, padV(x)) + sum(W*t) with V = -t/s on the border. Exact up to float rounding of the
 * folded weights (exact when s is a power of two, as in MobileFaceNet's 1/128).
 */
export function foldInputAffine(graph: Graph): number {
  const aff = graph.nodes[0];
  if (!aff || aff.op !== 'affine' || aff.inputs[0] !== graph.input.name) return 0;
  const users = consumers(graph, aff.output);
  const conv = users[0];
  if (users.length !== 1 || !conv || conv.op !== 'conv2d' || conv.inputs.length !== 1) return 0;
  if (aff.scale.some((s) => s === 0 || !Number.isFinite(s))) return 0;
  const { kh, kw, inC, outC, filter, bias } = conv;
  if (aff.scale.length !== inC) return 0;
  const newFilter = new Float32Array(filter.length);
  const newBias = new Float32Array(bias);
  for (let o = 0; o < outC; o++) {
    let acc = 0;
    for (let k = 0; k < kh * kw; k++) {
      for (let c = 0; c < inC; c++) {
        const i = (o * kh * kw + k) * inC + c;
        newFilter[i] = filter[i]! * aff.scale[c]!;
        acc += filter[i]! * aff.shift[c]!;
      }
    }
    newBias[o] = bias[o]! + acc;
  }
  const hasPad = conv.pads.top + conv.pads.left + conv.pads.bottom + conv.pads.right > 0;
  conv.filter = newFilter;
  conv.bias = newBias;
  if (hasPad) conv.padValue = aff.shift.map((t, c) => -t / aff.scale[c]!);
  graph.shapes.delete(aff.output);
  rename(graph, aff.output, aff.inputs[0]!);
  graph.nodes = graph.nodes.filter((n) => n !== aff);
  return 1;
}

/** add(conv(x), r) where conv feeds only the add and r exists before conv runs: conv with residual. */
export function fuseResidualAdds(graph: Graph): number {
  let count = 0;
  for (const add of [...graph.nodes]) {
    if (add.op !== 'add' || add.activation !== 'none') continue;
    const idx = graph.nodes.indexOf(add);
    for (const which of [0, 1]) {
      const src = producerOf(graph, add.inputs[which]!);
      const other = add.inputs[1 - which]!;
      if (!isCompute(src) || src.inputs.length !== 1) continue;
      if (consumers(graph, src.output).length !== 1 || isOutput(graph, src.output)) continue;
      const srcIdx = graph.nodes.indexOf(src);
      const otherProducer = producerOf(graph, other);
      const otherIdx = otherProducer ? graph.nodes.indexOf(otherProducer) : -1; // -1: the graph input
      if (otherIdx >= srcIdx || idx < 0) continue;
      src.inputs = [src.inputs[0]!, other];
      graph.shapes.delete(src.output);
      src.output = add.output;
      graph.nodes = graph.nodes.filter((n) => n !== add);
      count++;
      break;
    }
  }
  return count;
}

/** Ops every backend must implement after optimisation. */
export const EXECUTABLE_OPS = new Set<GraphNode['op']>(['conv2d', 'depthwiseConv2d', 'fullyConnected', 'add', 'affine', 'activation', 'pad', 'reshape', 'l2normalize',
  // TF.js detector/landmark models (see ir.ts): appended.
  'maxPool2d', 'padChannels', 'sigmoid', 'concat']);

export interface OptimizeReport {
  preluFused: number;
  padsFolded: number;
  inputAffineFolded: number;
  activationsFused: number;
  residualsFused: number;
}

/** Runs all passes in order; the graph is modified in place and returned. */
export function optimizeGraph(graph: Graph): OptimizeReport {
  const preluFused = fusePreluPattern(graph);
  mergeAffines(graph);
  const padsFolded = foldPads(graph);
  const inputAffineFolded = foldInputAffine(graph);
  const activationsFused = fuseActivations(graph);
  const residualsFused = fuseResidualAdds(graph);
  for (const n of graph.nodes) {
    if (!EXECUTABLE_OPS.has(n.op)) {
      throw new CosfaceError('UNSUPPORTED_OP', `op '${n.op}' (node ${n.name}) remains after graph optimisation and has no kernel`);
    }
  }
  return { preluFused, padsFolded, inputAffineFolded, activationsFused, residualsFused };
}

/** Appends an L2 normalisation of the output (embedders emit unnormalised features). */
export function appendL2Normalize(graph: Graph): void {
  const out = `${graph.output.name}/l2normalize`;
  graph.nodes.push({ op: 'l2normalize', name: out, inputs: [graph.output.name], output: out });
  graph.shapes.set(out, graph.output.shape);
  graph.output = { name: out, shape: graph.output.shape };
}
