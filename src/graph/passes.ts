// Graph rewrites that make an imported model cheap to run while computing the same function:
// fold explicit padding into convolutions, fold affines (input normalisation, BatchNormalization,
// constant Mul/Add) into the convolution or fully connected layer before or after them, recognise
// decomposed PReLU in its usual spellings, fuse activations and residual adds into the producing
// convolution. Every pass keeps the graph topologically ordered.
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

/**
 * What a chain of elementwise ops computes from one tensor x, per channel, as a piecewise-linear
 * function through 0: p*x where x > 0 and q*x where x < 0. relu is (1, 0), |x| is (1, -1), -x is
 * (-1, -1), and PReLU(alpha) is (1, alpha) however it was spelt.
 */
interface PiecewiseLinear {
  x: string;
  p: Float32Array;
  q: Float32Array;
  /** The nodes the chain consists of (each may die once the root is replaced). */
  nodes: GraphNode[];
}

function channelsOf(graph: Graph, tensor: string): number {
  const s = graph.shapes.get(tensor);
  return s && s.length ? s[s.length - 1]! : 1;
}

function piecewiseLinear(graph: Graph, tensor: string, depth = 0): PiecewiseLinear {
  const C = channelsOf(graph, tensor);
  const identity = (): PiecewiseLinear => ({ x: tensor, p: new Float32Array(C).fill(1), q: new Float32Array(C).fill(1), nodes: [] });
  const n = producerOf(graph, tensor);
  if (!n || depth > 8) return identity();
  const of = (t: string) => piecewiseLinear(graph, t, depth + 1);
  const with_ = (f: PiecewiseLinear, p: Float32Array, q: Float32Array): PiecewiseLinear => ({ x: f.x, p, q, nodes: [...f.nodes, n] });
  switch (n.op) {
    case 'activation':
      if (n.activation === 'relu') {
        const f = of(n.inputs[0]!);
        return with_(f, f.p.map((v) => Math.max(v, 0)), f.q.map((v) => Math.min(v, 0)));
      }
      return identity();
    case 'abs': {
      const f = of(n.inputs[0]!);
      return with_(f, f.p.map(Math.abs), f.q.map((v) => -Math.abs(v)));
    }
    case 'mul':
    case 'affine': {
      const k = n.op === 'mul' ? n.value : allZero(n.shift) ? n.scale : undefined;
      if (!k || n.inputs.length !== 1) return identity();
      const f = of(n.inputs[0]!);
      return with_(f, f.p.map((v, c) => v * k[c]!), f.q.map((v, c) => v * k[c]!));
    }
    case 'maximum':
    case 'minimum': {
      if (!allZero(n.value)) return identity();
      const f = of(n.inputs[0]!);
      // max(p x, 0): p x when p > 0 for x > 0; q x when q < 0 for x < 0. min is the rest.
      if (n.op === 'maximum') return with_(f, f.p.map((v) => Math.max(v, 0)), f.q.map((v) => Math.min(v, 0)));
      return with_(f, f.p.map((v) => Math.min(v, 0)), f.q.map((v) => Math.max(v, 0)));
    }
    case 'add':
    case 'sub': {
      if (n.op === 'add' && n.activation !== 'none') return identity();
      const f = of(n.inputs[0]!);
      const g = of(n.inputs[1]!);
      if (f.x !== g.x || f.p.length !== g.p.length) return identity();
      const sign = n.op === 'sub' ? -1 : 1;
      return { x: f.x, p: f.p.map((v, c) => v + sign * g.p[c]!), q: f.q.map((v, c) => v + sign * g.q[c]!), nodes: [...f.nodes, ...g.nodes, n] };
    }
    default:
      return identity();
  }
}

/**
 * Decomposed PReLU in its usual spellings -> one activation: max(x,0) + alpha*min(x,0),
 * relu(x) - alpha*relu(-x), relu(x) + alpha*(x - |x|)*0.5, and any other add/sub of relu, abs,
 * negation, max/min with 0 and per-channel scaling that works out to x for x > 0 and alpha*x for
 * x < 0. The intermediate ops that feed nothing else are removed.
 */
export function fusePreluPattern(graph: Graph): number {
  let count = 0;
  for (const root of [...graph.nodes]) {
    if (!graph.nodes.includes(root) || (root.op !== 'add' && root.op !== 'sub') || root.inputs.length !== 2) continue;
    if (root.op === 'add' && root.activation !== 'none') continue;
    const f = piecewiseLinear(graph, root.output);
    if (f.x === root.output || f.nodes.length < 2) continue;
    if (!f.p.every((v) => Math.abs(v - 1) <= 1e-6)) continue;
    const relu = allZero(f.q);
    const fused: GraphNode = relu
      ? { op: 'activation', name: root.name, inputs: [f.x], output: root.output, activation: 'relu' }
      : { op: 'activation', name: root.name, inputs: [f.x], output: root.output, activation: 'prelu', alpha: Float32Array.from(f.q) };
    graph.nodes = graph.nodes.map((n) => (n === root ? fused : n));
    removeDeadNodes(graph);
    count++;
  }
  return count;
}

/** Removes nodes whose output feeds nothing (repeatedly). */
export function removeDeadNodes(graph: Graph): number {
  let removed = 0;
  for (;;) {
    const used = new Set(graph.nodes.flatMap((n) => n.inputs));
    used.add(graph.output.name);
    const dead = graph.nodes.filter((n) => !used.has(n.output));
    if (dead.length === 0) return removed;
    for (const n of dead) graph.shapes.delete(n.output);
    graph.nodes = graph.nodes.filter((n) => used.has(n.output));
    removed += dead.length;
  }
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
    const value = pad.value ?? 0;
    if (value !== 0) {
      // A border value other than 0 folds only into a dense convolution without padding of its own
      // (whose border would be 0).
      if (conv.op !== 'conv2d' || conv.pads.top + conv.pads.left + conv.pads.bottom + conv.pads.right > 0) continue;
      conv.padValue = new Float32Array(conv.inC).fill(value);
    }
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
 * An affine y = x*s + t feeding a dense convolution: conv(W, pad0(x*s+t)) = conv(W*s, padV(x)) +
 * sum(W*t) with V = -t/s on the border, so the fold is exact for a padded convolution too (up to
 * float rounding of the folded weights). This folds the input normalisation into the first
 * convolution and a BatchNormalization that precedes a convolution (IResNet's BN-Conv) into it.
 * An affine feeding a fully connected layer (directly or through a reshape) folds into its
 * weights: input column j holds channel j % C.
 */
export function foldAffineIntoConsumers(graph: Graph): number {
  let count = 0;
  for (const aff of [...graph.nodes]) {
    if (aff.op !== 'affine' || isOutput(graph, aff.output)) continue;
    if (aff.scale.some((s) => s === 0 || !Number.isFinite(s))) continue;
    const users = consumers(graph, aff.output);
    let user = users[0];
    if (users.length !== 1 || !user) continue;
    let reshape: GraphNode | undefined;
    if (user.op === 'reshape') {
      const next = consumers(graph, user.output);
      if (next.length !== 1 || next[0]!.op !== 'fullyConnected' || isOutput(graph, user.output)) continue;
      reshape = user;
      user = next[0]!;
    }
    const C = aff.scale.length;
    if (user.op === 'conv2d' && !reshape) {
      if (user.inputs.length !== 1 || user.inputs[0] !== aff.output || user.inC !== C) continue;
      if (user.padValue && !allZero(user.padValue)) continue;
      const { kh, kw, inC, outC, filter, bias } = user;
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
      const hasPad = user.pads.top + user.pads.left + user.pads.bottom + user.pads.right > 0;
      user.filter = newFilter;
      user.bias = newBias;
      if (hasPad && !allZero(aff.shift)) user.padValue = aff.shift.map((t, c) => -t / aff.scale[c]!);
    } else if (user.op === 'fullyConnected') {
      if (user.inputs.length !== 1 || user.inF % C !== 0) continue;
      const { inF, outF, weights, bias } = user;
      const newW = new Float32Array(weights.length);
      const newBias = new Float32Array(bias);
      for (let o = 0; o < outF; o++) {
        let acc = 0;
        for (let j = 0; j < inF; j++) {
          const w = weights[o * inF + j]!;
          newW[o * inF + j] = w * aff.scale[j % C]!;
          acc += w * aff.shift[j % C]!;
        }
        newBias[o] = bias[o]! + acc;
      }
      user.weights = newW;
      user.bias = newBias;
    } else continue;
    graph.shapes.delete(aff.output);
    rename(graph, aff.output, aff.inputs[0]!);
    graph.nodes = graph.nodes.filter((n) => n !== aff);
    count++;
  }
  return count;
}

/**
 * An affine after a convolution or fully connected layer with no activation (BatchNormalization
 * after Conv, a Mul/Add by constants after a Gemm): scale the weights and bias per output channel.
 */
export function foldAffineIntoProducers(graph: Graph): number {
  let count = 0;
  for (const aff of [...graph.nodes]) {
    if (aff.op !== 'affine') continue;
    const src = producerOf(graph, aff.inputs[0]!);
    if (!isCompute(src) || src.activation !== 'none' || src.inputs.length !== 1) continue;
    if (consumers(graph, src.output).length !== 1 || isOutput(graph, src.output)) continue;
    const outC = src.op === 'conv2d' ? src.outC : src.op === 'depthwiseConv2d' ? src.channels : src.outF;
    if (aff.scale.length !== outC) continue;
    const w = src.op === 'fullyConnected' ? src.weights : src.filter;
    const scaled = new Float32Array(w.length);
    if (src.op === 'depthwiseConv2d') for (let i = 0; i < w.length; i++) scaled[i] = w[i]! * aff.scale[i % outC]!;
    else {
      const per = w.length / outC;
      for (let i = 0; i < w.length; i++) scaled[i] = w[i]! * aff.scale[Math.floor(i / per)]!;
    }
    if (src.op === 'fullyConnected') src.weights = scaled;
    else src.filter = scaled;
    src.bias = src.bias.map((b, c) => b * aff.scale[c]! + aff.shift[c]!);
    graph.shapes.delete(src.output);
    src.output = aff.output;
    graph.nodes = graph.nodes.filter((n) => n !== aff);
    count++;
  }
  return count;
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
  /** Affines (input normalisation, BatchNormalization, constant Mul/Add) folded into the op before or after them. */
  affinesFolded: number;
  activationsFused: number;
  residualsFused: number;
}

/** Runs all passes in order; the graph is modified in place and returned. */
export function optimizeGraph(graph: Graph): OptimizeReport {
  const preluFused = fusePreluPattern(graph);
  mergeAffines(graph);
  const padsFolded = foldPads(graph);
  const affinesFolded = foldAffineIntoProducers(graph) + foldAffineIntoConsumers(graph);
  const activationsFused = fuseActivations(graph);
  const residualsFused = fuseResidualAdds(graph);
  for (const n of graph.nodes) {
    if (!EXECUTABLE_OPS.has(n.op)) {
      throw new CosfaceError('UNSUPPORTED_OP', `op '${n.op}' (node ${n.name}) remains after graph optimisation and has no kernel`);
    }
    if (n.op === 'pad' && (n.value ?? 0) !== 0) {
      throw new CosfaceError('UNSUPPORTED_OP', `pad with border value ${n.value} (node ${n.name}) does not fold into a convolution, and the pad kernel pads with 0`);
    }
  }
  return { preluFused, padsFolded, affinesFolded, activationsFused, residualsFused };
}

/** Appends an L2 normalisation of the output (embedders emit unnormalised features). */
export function appendL2Normalize(graph: Graph): void {
  const out = `${graph.output.name}/l2normalize`;
  graph.nodes.push({ op: 'l2normalize', name: out, inputs: [graph.output.name], output: out });
  graph.shapes.set(out, graph.output.shape);
  graph.output = { name: out, shape: graph.output.shape };
}

/**
 * Input normalisation from model metadata, before optimizeGraph: y = (x - mean) / std per channel
 * (in the model's channel order) in front of the graph; the passes fold it into the first
 * convolution like a normalisation written in the model.
 */
export function prependInputAffine(graph: Graph, mean: readonly number[], std: readonly number[]): void {
  const C = graph.input.shape[graph.input.shape.length - 1]!;
  if (mean.length !== C || std.length !== C) throw new CosfaceError('BAD_INPUT', `input normalisation has ${mean.length} means and ${std.length} stds for ${C} channels`);
  if (mean.every((m) => m === 0) && std.every((s) => s === 1)) return;
  const inName = graph.input.name;
  const out = `${inName}/normalised`;
  rename(graph, inName, out);
  graph.nodes.unshift({ op: 'affine', name: out, inputs: [inName], output: out, scale: Float32Array.from(std, (s) => 1 / s), shift: Float32Array.from(mean, (m, c) => -m / std[c]!) });
  graph.shapes.set(out, graph.input.shape);
}

/**
 * After optimizeGraph: the model reads its input channels in another order (`perm[k]` = the fed
 * channel that model channel k is); permute the input channels of the convolutions that read the
 * graph input, so the engine is fed RGB whatever the model was trained on.
 */
export function permuteInputChannels(graph: Graph, perm: readonly number[]): void {
  if (perm.every((p, i) => p === i)) return;
  for (const n of consumers(graph, graph.input.name)) {
    if (n.op !== 'conv2d' || n.inputs[0] !== graph.input.name || n.inC !== perm.length) {
      throw new CosfaceError('UNSUPPORTED_MODEL', `a channel order other than RGB needs the model input to feed convolutions only; ${n.name} (${n.op}) reads it`);
    }
    const { outC, kh, kw, inC, filter } = n;
    const permuted = new Float32Array(filter.length);
    for (let i = 0; i < outC * kh * kw; i++) for (let k = 0; k < inC; k++) permuted[i * inC + perm[k]!] = filter[i * inC + k]!;
    n.filter = permuted;
    if (n.padValue) {
      const pv = new Float32Array(inC);
      for (let k = 0; k < inC; k++) pv[perm[k]!] = n.padValue[k]!;
      n.padValue = pv;
    }
  }
}
