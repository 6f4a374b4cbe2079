// Small one-op graphs for kernel tests, built directly in the IR.
import type { Activation, Graph, GraphNode, Pads } from '../../src/graph/ir.js';
import { convOutSize } from '../../src/graph/ir.js';
import { randomTensor } from './fixtures.js';

export interface ConvCase {
  name: string;
  h: number;
  w: number;
  inC: number;
  outC: number;
  k: [number, number];
  stride: [number, number];
  pads: Pads;
  activation: Activation;
  residual?: boolean;
  padValue?: boolean;
}

let seed = 1000;
const rnd = (n: number, scale = 1) => randomTensor(n, seed++, scale);

export function convGraph(c: ConvCase): Graph {
  const [kh, kw] = c.k;
  const oh = convOutSize(c.h, kh, c.stride[0], c.pads.top, c.pads.bottom);
  const ow = convOutSize(c.w, kw, c.stride[1], c.pads.left, c.pads.right);
  const shapes = new Map<string, number[]>([['x', [c.h, c.w, c.inC]]]);
  const nodes: GraphNode[] = [];
  const inputs = ['x'];
  if (c.residual) {
    // The residual operand is computed in-graph (an affine of a same-shape conv), so the graph keeps one input.
    nodes.push({
      op: 'conv2d', name: 'res', inputs: ['x'], output: 'r', filter: rnd(c.outC * kh * kw * c.inC, 0.5), bias: rnd(c.outC), kh, kw,
      inC: c.inC, outC: c.outC, strideH: c.stride[0], strideW: c.stride[1], pads: c.pads, activation: 'none',
    });
    shapes.set('r', [oh, ow, c.outC]);
    inputs.push('r');
  }
  nodes.push({
    op: 'conv2d', name: c.name, inputs, output: 'y', filter: rnd(c.outC * kh * kw * c.inC, 0.5), bias: rnd(c.outC), kh, kw,
    inC: c.inC, outC: c.outC, strideH: c.stride[0], strideW: c.stride[1], pads: c.pads, activation: c.activation,
    alpha: c.activation === 'prelu' ? rnd(c.outC) : undefined,
    padValue: c.padValue ? rnd(c.inC, 2) : undefined,
  });
  shapes.set('y', [oh, ow, c.outC]);
  return { source: `test:${c.name}`, input: { name: 'x', shape: [c.h, c.w, c.inC] }, output: { name: 'y', shape: [oh, ow, c.outC] }, nodes, shapes };
}

export function depthwiseGraph(c: Omit<ConvCase, 'outC' | 'padValue'>): Graph {
  const [kh, kw] = c.k;
  const oh = convOutSize(c.h, kh, c.stride[0], c.pads.top, c.pads.bottom);
  const ow = convOutSize(c.w, kw, c.stride[1], c.pads.left, c.pads.right);
  const C = c.inC;
  const shapes = new Map<string, number[]>([['x', [c.h, c.w, C]]]);
  const nodes: GraphNode[] = [];
  const inputs = ['x'];
  if (c.residual) {
    nodes.push({ op: 'depthwiseConv2d', name: 'res', inputs: ['x'], output: 'r', filter: rnd(kh * kw * C), bias: rnd(C), kh, kw, channels: C, strideH: c.stride[0], strideW: c.stride[1], pads: c.pads, activation: 'none' });
    shapes.set('r', [oh, ow, C]);
    inputs.push('r');
  }
  nodes.push({
    op: 'depthwiseConv2d', name: c.name, inputs, output: 'y', filter: rnd(kh * kw * C), bias: rnd(C), kh, kw, channels: C,
    strideH: c.stride[0], strideW: c.stride[1], pads: c.pads, activation: c.activation, alpha: c.activation === 'prelu' ? rnd(C) : undefined,
  });
  shapes.set('y', [oh, ow, C]);
  return { source: `test:${c.name}`, input: { name: 'x', shape: [c.h, c.w, C] }, output: { name: 'y', shape: [oh, ow, C] }, nodes, shapes };
}

export function fcGraph(inF: number, outF: number, activation: Activation, residual = false): Graph {
  const shapes = new Map<string, number[]>([['x', [inF]]]);
  const nodes: GraphNode[] = [];
  const inputs = ['x'];
  if (residual) {
    nodes.push({ op: 'fullyConnected', name: 'res', inputs: ['x'], output: 'r', weights: rnd(outF * inF, 0.3), bias: rnd(outF), inF, outF, activation: 'none' });
    shapes.set('r', [outF]);
    inputs.push('r');
  }
  nodes.push({ op: 'fullyConnected', name: 'fc', inputs, output: 'y', weights: rnd(outF * inF, 0.3), bias: rnd(outF), inF, outF, activation, alpha: activation === 'prelu' ? rnd(outF) : undefined });
  shapes.set('y', [outF]);
  return { source: 'test:fc', input: { name: 'x', shape: [inF] }, output: { name: 'y', shape: [outF] }, nodes, shapes };
}

/** x -> affine -> pad -> activation(prelu) -> add(with the padded tensor) -> l2normalize. */
export function elementwiseGraph(h: number, w: number, c: number): Graph {
  const pads = { top: 1, left: 2, bottom: 3, right: 0 };
  const ph = h + 4;
  const pw = w + 2;
  const shapes = new Map<string, number[]>([
    ['x', [h, w, c]], ['a', [h, w, c]], ['p', [ph, pw, c]], ['r', [ph, pw, c]], ['s', [ph, pw, c]], ['f', [ph * pw * c]], ['y', [ph * pw * c]],
  ]);
  const nodes: GraphNode[] = [
    { op: 'affine', name: 'affine', inputs: ['x'], output: 'a', scale: rnd(c), shift: rnd(c) },
    { op: 'pad', name: 'pad', inputs: ['a'], output: 'p', pads },
    { op: 'activation', name: 'prelu', inputs: ['p'], output: 'r', activation: 'prelu', alpha: rnd(c) },
    { op: 'add', name: 'add', inputs: ['r', 'p'], output: 's', activation: 'relu' },
    { op: 'reshape', name: 'flatten', inputs: ['s'], output: 'f', shape: [ph * pw * c] },
    { op: 'l2normalize', name: 'l2', inputs: ['f'], output: 'y' },
  ];
  return { source: 'test:elementwise', input: { name: 'x', shape: [h, w, c] }, output: { name: 'y', shape: [ph * pw * c] }, nodes, shapes };
}

/** x -> maxPool (window, stride, pads) -> padChannels -> sigmoid, and concat(x flattened, sigmoid out). */
export function detectorOpsGraph(h: number, w: number, c: number, k: number, s: number, pads: Pads): Graph {
  const oh = convOutSize(h, k, s, pads.top, pads.bottom);
  const ow = convOutSize(w, k, s, pads.left, pads.right);
  const c2 = c + 3 + 2;
  const shapes = new Map<string, number[]>([
    ['x', [h, w, c]], ['m', [oh, ow, c]], ['pc', [oh, ow, c2]], ['s', [oh, ow, c2]], ['y', [h * w * c + oh * ow * c2]],
  ]);
  const nodes: GraphNode[] = [
    { op: 'maxPool2d', name: 'pool', inputs: ['x'], output: 'm', kh: k, kw: k, strideH: s, strideW: s, pads },
    { op: 'padChannels', name: 'padc', inputs: ['m'], output: 'pc', before: 3, after: 2 },
    { op: 'sigmoid', name: 'sig', inputs: ['pc'], output: 's' },
    { op: 'concat', name: 'cat', inputs: ['x', 's'], output: 'y' },
  ];
  return { source: 'test:detector-ops', input: { name: 'x', shape: [h, w, c] }, output: { name: 'y', shape: [h * w * c + oh * ow * c2] }, nodes, shapes };
}
