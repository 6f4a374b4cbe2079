// The engine's model representation, independent of any file format. Importers (TFLite, TF.js
// graph models, ONNX) produce it; graph passes rewrite it; backends compile it.
//
// Tensors are per sample: the batch dimension is implicit and chosen at run time, so shapes here
// never include it. Image tensors are [H, W, C] (NHWC without N); vectors are [F].
// Constant data (filters, biases, PReLU slopes) lives on the nodes that use it.

export type Activation = 'none' | 'relu' | 'prelu';

/** Zero padding in pixels on each side. */
export interface Pads {
  top: number;
  left: number;
  bottom: number;
  right: number;
}

interface NodeBase {
  /** Unique, human-readable (taken from the source model where it has names). */
  name: string;
  inputs: string[];
  output: string;
}

/** Fused activation carried by compute nodes. `alpha` is per output channel, present for prelu. */
export interface Fused {
  activation: Activation;
  alpha?: Float32Array;
}

/**
 * Dense 2-D convolution. filter layout [outC, kh, kw, inC] (TFLite/OHWI).
 * inputs: [x] or [x, residual]; with a residual the result is act(conv(x) + bias) + residual
 * (the residual is added after the activation, as in MobileFaceNet's linear bottlenecks, where the
 * activation is 'none').
 */
export interface Conv2DNode extends NodeBase, Fused {
  op: 'conv2d';
  filter: Float32Array;
  bias: Float32Array;
  kh: number;
  kw: number;
  inC: number;
  outC: number;
  strideH: number;
  strideW: number;
  pads: Pads;
  /**
   * Value of the padded border per input channel (default 0). Non-zero only after an input
   * normalisation y = x * s + t was folded into this convolution: the original graph padded the
   * normalised tensor with 0, which is the raw value -t / s.
   */
  padValue?: Float32Array;
}

/** Depthwise 2-D convolution, depth multiplier 1. filter layout [kh, kw, C]. Same fusions as conv2d. */
export interface DepthwiseConv2DNode extends NodeBase, Fused {
  op: 'depthwiseConv2d';
  filter: Float32Array;
  bias: Float32Array;
  kh: number;
  kw: number;
  channels: number;
  strideH: number;
  strideW: number;
  pads: Pads;
}

/** y = act(W x + b); weights layout [outF, inF]. inputs: [x] or [x, residual]. */
export interface FullyConnectedNode extends NodeBase, Fused {
  op: 'fullyConnected';
  weights: Float32Array;
  bias: Float32Array;
  inF: number;
  outF: number;
}

/** Elementwise a + b of two same-shape tensors, then activation. */
export interface AddNode extends NodeBase, Fused {
  op: 'add';
}

/** Per-channel (last axis) y = x * scale + shift. Input normalisation and constant Mul/Add/Sub. */
export interface AffineNode extends NodeBase {
  op: 'affine';
  scale: Float32Array;
  shift: Float32Array;
}

/** Standalone activation (relu or prelu) when it could not be fused into a producer. */
export interface ActivationNode extends NodeBase, Fused {
  op: 'activation';
}

/** Elementwise max(x, c) or min(x, c) with a per-channel constant. Only seen before PReLU fusion. */
export interface ClampNode extends NodeBase {
  op: 'maximum' | 'minimum';
  value: Float32Array;
}

/** Elementwise product of two tensors; c is optional per-channel constant (x * c). Pre-fusion only. */
export interface MulNode extends NodeBase {
  op: 'mul';
  value?: Float32Array;
}

/**
 * Padding of an [H, W, C] tensor. Folded into the next convolution by the passes. `value` is the
 * border value (default 0; ONNX Pad may give another): only a zero pad has a kernel of its own, a
 * non-zero one must fold into a dense convolution (as its padValue).
 */
export interface PadNode extends NodeBase {
  op: 'pad';
  pads: Pads;
  value?: number;
}

/** Elementwise a - b of two same-shape tensors. Pre-fusion only (a spelling of PReLU). */
export interface SubNode extends NodeBase {
  op: 'sub';
}

/** Elementwise |x|. Pre-fusion only (a spelling of PReLU: relu(x) + alpha * (x - |x|) / 2). */
export interface AbsNode extends NodeBase {
  op: 'abs';
}

/** Changes the per-sample shape only (row-major data is unchanged). */
export interface ReshapeNode extends NodeBase {
  op: 'reshape';
  shape: number[];
}

/** Divides each sample by its L2 norm (over all its elements). */
export interface L2NormalizeNode extends NodeBase {
  op: 'l2normalize';
}

export type GraphNode =
  | Conv2DNode
  | DepthwiseConv2DNode
  | FullyConnectedNode
  | AddNode
  | AffineNode
  | ActivationNode
  | ClampNode
  | MulNode
  | SubNode
  | AbsNode
  | PadNode
  | ReshapeNode
  | L2NormalizeNode
  | MaxPool2DNode
  | PadChannelsNode
  | SigmoidNode
  | ConcatNode;

export type OpType = GraphNode['op'];

export interface Graph {
  /** Where the graph came from, e.g. 'tflite:mobilefacenet-arcface.tflite'. */
  source: string;
  input: { name: string; shape: number[] };
  output: { name: string; shape: number[] };
  /** Layout of the input in the source file (the engine's is always NHWC); absent: NHWC. */
  sourceInputLayout?: 'nhwc' | 'nchw';
  /** Topologically ordered. */
  nodes: GraphNode[];
  /** Per-sample shape of every tensor, by name. */
  shapes: Map<string, number[]>;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Output spatial size of a convolution or pooling window. */
export function convOutSize(inSize: number, k: number, stride: number, padBefore: number, padAfter: number): number {
  return Math.floor((inSize + padBefore + padAfter - k) / stride) + 1;
}

/** SAME padding as TensorFlow defines it (extra pixel at the end). */
export function samePads(inH: number, inW: number, kh: number, kw: number, sh: number, sw: number): Pads {
  const outH = Math.ceil(inH / sh);
  const outW = Math.ceil(inW / sw);
  const padH = Math.max((outH - 1) * sh + kh - inH, 0);
  const padW = Math.max((outW - 1) * sw + kw - inW, 0);
  return { top: Math.floor(padH / 2), bottom: padH - Math.floor(padH / 2), left: Math.floor(padW / 2), right: padW - Math.floor(padW / 2) };
}

export const noPads: Pads = Object.freeze({ top: 0, left: 0, bottom: 0, right: 0 });

/** Multiply-adds per sample of one node (conv, depthwise, fully connected; 0 for elementwise). */
export function nodeMacs(node: GraphNode, shapes: Map<string, number[]>): number {
  const out = shapes.get(node.output);
  if (!out) return 0;
  switch (node.op) {
    case 'conv2d':
      return numel(out) * node.kh * node.kw * node.inC;
    case 'depthwiseConv2d':
      return numel(out) * node.kh * node.kw;
    case 'fullyConnected':
      return node.inF * node.outF;
    default:
      return 0;
  }
}

/** Multiply-adds per sample of the whole graph. GFLOP = 2 * MACs / 1e9. */
export function graphMacs(graph: Graph): number {
  let macs = 0;
  for (const n of graph.nodes) macs += nodeMacs(n, graph.shapes);
  return macs;
}

// ---- Ops added for the TF.js detector and landmark models (BlazeFace, FaceMesh). ----

/**
 * Max pooling of an [H, W, C] tensor over kh x kw windows. Positions in `pads` lie outside the
 * input and never win (TensorFlow's SAME pooling ignores them; it does not pad with zeros).
 */
export interface MaxPool2DNode extends NodeBase {
  op: 'maxPool2d';
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  pads: Pads;
}

/**
 * Zero padding of the channel (last) axis: [..., C] -> [..., before + C + after]. BlazeFace and
 * FaceMesh widen the shortcut branch of a residual block this way when the block adds channels.
 */
export interface PadChannelsNode extends NodeBase {
  op: 'padChannels';
  before: number;
  after: number;
}

/** Elementwise logistic 1 / (1 + exp(-x)). */
export interface SigmoidNode extends NodeBase {
  op: 'sigmoid';
}

/**
 * Per-sample flat concatenation: the row-major data of each input, one after another, in input
 * order; the output shape is [sum of numel(input)]. Importers use it to return several model
 * outputs through the graph's single output (the slices are recorded by the importer).
 */
export interface ConcatNode extends NodeBase {
  op: 'concat';
}

/**
 * The mean over the spatial axes of an [H, W, C] tensor (global average pooling: TFLite MEAN,
 * ONNX GlobalAveragePool/ReduceMean) as depthwise convolutions with weights 1/size, whose output
 * is [1, 1, C]. One kernel for windows up to 7x7; larger ones separably (H x 1, then 1 x W), which
 * keeps each kernel within the depthwise kernels' window limits. Returns the nodes in order and
 * their shapes; the last node writes `output`.
 */
export function spatialMeanNodes(name: string, input: string, output: string, h: number, w: number, C: number): { nodes: DepthwiseConv2DNode[]; shapes: number[][] } {
  const dw = (n: string, inp: string, out: string, kh: number, kw: number): DepthwiseConv2DNode => ({
    op: 'depthwiseConv2d', name: n, inputs: [inp], output: out, filter: new Float32Array(kh * kw * C).fill(1 / (kh * kw)), bias: new Float32Array(C),
    kh, kw, channels: C, strideH: 1, strideW: 1, pads: { ...noPads }, activation: 'none',
  });
  if (h * w <= 49) return { nodes: [dw(name, input, output, h, w)], shapes: [[1, 1, C]] };
  const rows = `${output}/rows`;
  return { nodes: [dw(`${name}/rows`, input, rows, h, 1), dw(name, rows, output, 1, w)], shapes: [[1, w, C], [1, 1, C]] };
}
