// Plans a graph for the WASM kernels: packs every constant once (GEMM weights in 8-channel column
// blocks, biases and slopes padded), turns nodes into kernel steps, and assigns tensors to arena
// slots reused once a tensor is dead. The plan is plain data: it is built once on the main thread
// and posted to every worker, which lays it out in its own linear memory (see wasm-runner.ts).
import { CosfaceError } from '../../errors.js';
import { numel, type ActivationNode, type Graph, type GraphNode } from '../../graph/ir.js';
import { EXECUTABLE_OPS } from '../../graph/passes.js';
import { ACT_AFTER_RESIDUAL, ACT_CODES } from './wasm-instance.js';

/** Slot or constant id; -1 for none. */
type Ref = number;

interface GemmStep { op: 'gemm'; out: Ref; x: Ref; res: Ref; w: Ref; bias: Ref; alpha: Ref; P: number; K: number; N: number; act: number }
interface Im2colStep {
  op: 'im2col'; out: Ref; x: Ref; xSize: number; outSize: number;
  H: number; W: number; C: number; kh: number; kw: number; sh: number; sw: number; padT: number; padL: number; OH: number; OW: number; padValue: Ref;
}
interface DepthwiseStep {
  op: 'depthwise'; out: Ref; x: Ref; res: Ref; w: Ref; bias: Ref; alpha: Ref; xSize: number; outSize: number;
  H: number; W: number; C: number; kh: number; kw: number; sh: number; sw: number; padT: number; padL: number; OH: number; OW: number; act: number;
}
interface AddStep { op: 'add'; out: Ref; a: Ref; b: Ref; alpha: Ref; P: number; C: number; act: number }
interface AffineStep { op: 'affine'; out: Ref; x: Ref; scale: Ref; shift: Ref; P: number; C: number }
interface ActivationStep { op: 'activation'; out: Ref; x: Ref; alpha: Ref; P: number; C: number; act: number }
interface PadStep { op: 'pad'; out: Ref; x: Ref; xSize: number; outSize: number; H: number; W: number; C: number; top: number; left: number; bottom: number; right: number }
interface L2Step { op: 'l2normalize'; out: Ref; x: Ref; dim: number }
interface MaxPoolStep {
  op: 'maxPool2d'; out: Ref; x: Ref; xSize: number; outSize: number;
  H: number; W: number; C: number; kh: number; kw: number; sh: number; sw: number; padT: number; padL: number; OH: number; OW: number;
}
interface PadChannelsStep { op: 'padChannels'; out: Ref; x: Ref; P: number; C: number; before: number; after: number }
interface SigmoidStep { op: 'sigmoid'; out: Ref; x: Ref; size: number }
/** One input of a concat: its size floats per sample go to offset floats into each output sample. */
interface CopyStep { op: 'copy'; out: Ref; x: Ref; xSize: number; outSize: number; offset: number; size: number }

/**
 * One kernel call. Batched steps (gemm, add, affine, activation, l2normalize, padChannels,
 * sigmoid) give per-sample sizes (P pixels, dim) and run on all samples of a micro-batch at once,
 * as samples lie back to back; per-sample steps (im2col, depthwise, pad, maxPool2d) give
 * xSize/outSize to step between samples; copy (concat) moves one block per sample.
 */
export type Step =
  | GemmStep | Im2colStep | DepthwiseStep | AddStep | AffineStep | ActivationStep | PadStep | L2Step
  | MaxPoolStep | PadChannelsStep | SigmoidStep | CopyStep;

export interface WasmPlan {
  /** Constants, packed for their kernels; steps refer to them by index. */
  consts: Float32Array[];
  /** Floats per sample of each arena slot. */
  slots: number[];
  steps: Step[];
  inputSlot: number;
  outputSlot: number;
  inputSize: number;
  outputSize: number;
}

/** W [N, K] row-major -> column blocks of 8: packed[(nb * K + k) * 8 + j] = W[nb * 8 + j, k]. */
export function packGemmWeights(w: Float32Array, N: number, K: number): Float32Array {
  const nBlocks = Math.ceil(N / 8);
  const packed = new Float32Array(nBlocks * K * 8);
  for (let n = 0; n < N; n++) {
    const base = (n >> 3) * K * 8 + (n & 7);
    for (let k = 0; k < K; k++) packed[base + k * 8] = w[n * K + k]!;
  }
  return packed;
}

/** Copy of v zero-padded to a multiple of 8 floats (GEMM epilogues read whole 8-channel blocks). */
export function padTo8(v: Float32Array): Float32Array {
  const out = new Float32Array(Math.ceil(v.length / 8) * 8);
  out.set(v);
  return out;
}

/** Tracks which arena slot holds each live tensor and hands dead tensors' slots to new ones. */
class SlotAllocator {
  readonly sizes: number[] = [];
  private readonly free: number[] = [];

  take(size: number): number {
    // Best fit among free slots; otherwise grow the largest free one; otherwise a new slot.
    let best = -1;
    for (const s of this.free) if (this.sizes[s]! >= size && (best < 0 || this.sizes[s]! < this.sizes[best]!)) best = s;
    if (best < 0 && this.free.length > 0) best = this.free.reduce((a, b) => (this.sizes[a]! >= this.sizes[b]! ? a : b));
    if (best >= 0) {
      this.free.splice(this.free.indexOf(best), 1);
      this.sizes[best] = Math.max(this.sizes[best]!, size);
      return best;
    }
    this.sizes.push(size);
    return this.sizes.length - 1;
  }

  release(slot: number): void {
    if (!this.free.includes(slot)) this.free.push(slot);
  }
}

function shapeOf(graph: Graph, tensor: string, node: GraphNode): number[] {
  const s = graph.shapes.get(tensor);
  if (!s) throw new CosfaceError('BAD_MODEL', `node ${node.name}: tensor ${tensor} has no shape`);
  return s;
}

function hwc(graph: Graph, tensor: string, node: GraphNode): [number, number, number] {
  const s = shapeOf(graph, tensor, node);
  if (s.length !== 3) throw new CosfaceError('BAD_MODEL', `node ${node.name} (${node.op}): input ${tensor} must be [H, W, C], got [${s.join(', ')}]`);
  return s as [number, number, number];
}

/** Plans an optimised graph (only EXECUTABLE_OPS) for the WASM kernels. */
export function planGraph(graph: Graph): WasmPlan {
  for (const n of graph.nodes) {
    if (!EXECUTABLE_OPS.has(n.op)) throw new CosfaceError('UNSUPPORTED_OP', `wasm backend: op '${n.op}' (node ${n.name}) has no kernel; run optimizeGraph first`);
  }
  const consts: Float32Array[] = [];
  const addConst = (v: Float32Array): number => consts.push(v) - 1;

  // Reshapes alias their input: resolve every tensor to the tensor that owns its storage.
  const owner = new Map<string, string>();
  const root = (t: string): string => owner.get(t) ?? t;
  for (const n of graph.nodes) if (n.op === 'reshape') owner.set(n.output, root(n.inputs[0]!));

  // Last step that reads each storage owner; the graph output lives to the end.
  const lastUse = new Map<string, number>();
  graph.nodes.forEach((n, i) => {
    for (const t of n.inputs) lastUse.set(root(t), i);
  });
  lastUse.set(root(graph.output.name), Infinity);

  const slots = new SlotAllocator();
  const slotOf = new Map<string, number>();
  const sizeOf = (t: string): number => numel(graph.shapes.get(t) ?? []);
  const inputSize = numel(graph.input.shape);
  slotOf.set(graph.input.name, slots.take(inputSize));
  const get = (t: string, node: GraphNode): number => {
    const s = slotOf.get(root(t));
    if (s === undefined) throw new CosfaceError('BAD_MODEL', `node ${node.name}: tensor ${t} used before it is computed`);
    return s;
  };

  // A convolution or fully connected layer with a residual and no activation whose only reader is
  // a standalone activation (BlazeFace's relu(conv(x) + x), FaceMesh's prelu) runs as one GEMM
  // that adds the residual before the activation: one pass over the tensor instead of two.
  const readers = new Map<string, GraphNode[]>();
  for (const n of graph.nodes) for (const t of n.inputs) readers.set(t, [...(readers.get(t) ?? []), n]);
  const activationAfter = new Map<GraphNode, ActivationNode>();
  const fusedAway = new Set<GraphNode>();
  for (const n of graph.nodes) {
    if ((n.op !== 'conv2d' && n.op !== 'fullyConnected') || n.inputs[1] === undefined || n.activation !== 'none') continue;
    const r = readers.get(n.output) ?? [];
    const a = r[0];
    if (r.length !== 1 || a!.op !== 'activation' || n.output === graph.output.name || a.activation === 'none') continue;
    activationAfter.set(n, a);
    fusedAway.add(a);
  }

  const steps: Step[] = [];
  graph.nodes.forEach((node, i) => {
    if (node.op === 'reshape' || fusedAway.has(node)) return;
    const x = get(node.inputs[0]!, node);
    // A second input is a residual only on the ops that fuse one (add and concat read theirs).
    const fusesResidual = node.op === 'conv2d' || node.op === 'depthwiseConv2d' || node.op === 'fullyConnected';
    const res = node.inputs[1] !== undefined && fusesResidual ? get(node.inputs[1], node) : -1;
    const outShape = shapeOf(graph, node.output, node);
    const outSize = numel(outShape);
    const out = slots.take(outSize);
    const after = activationAfter.get(node);
    // The activation's node (this one, or the standalone one fused after the residual).
    const actNode = after ?? node;
    const act = 'activation' in actNode ? ACT_CODES[actNode.activation] : 0;
    const needsAlpha = act === ACT_CODES.prelu;
    const slopes = needsAlpha && 'alpha' in actNode ? actNode.alpha : undefined;
    if (needsAlpha && !slopes) throw new CosfaceError('BAD_MODEL', `node ${actNode.name}: prelu without slopes`);
    const gemmAct = after ? act | ACT_AFTER_RESIDUAL : act;

    switch (node.op) {
      case 'conv2d': {
        const [H, W, C] = hwc(graph, node.inputs[0]!, node);
        const [OH, OW] = outShape as [number, number, number];
        const K = node.kh * node.kw * node.inC;
        if (C !== node.inC || outShape[2] !== node.outC) throw new CosfaceError('BAD_MODEL', `node ${node.name}: channels do not match the filter`);
        const w = addConst(packGemmWeights(node.filter, node.outC, K));
        const bias = addConst(padTo8(node.bias));
        const alpha = needsAlpha ? addConst(padTo8(slopes!)) : -1;
        const p = node.pads;
        const direct = node.kh === 1 && node.kw === 1 && node.strideH === 1 && node.strideW === 1 && p.top + p.left + p.bottom + p.right === 0;
        let src = x;
        let cols = -1;
        if (!direct) {
          // The window of every output pixel as one GEMM row; the slot is freed right after.
          cols = slots.take(OH * OW * K);
          const padValue = node.padValue && node.padValue.some((v) => v !== 0) ? addConst(node.padValue) : -1;
          steps.push({ op: 'im2col', out: cols, x, xSize: H * W * C, outSize: OH * OW * K, H, W, C, kh: node.kh, kw: node.kw, sh: node.strideH, sw: node.strideW, padT: p.top, padL: p.left, OH, OW, padValue });
          src = cols;
        }
        steps.push({ op: 'gemm', out, x: src, res, w, bias, alpha, P: OH * OW, K, N: node.outC, act: gemmAct });
        if (cols >= 0) slots.release(cols);
        break;
      }
      case 'depthwiseConv2d': {
        const [H, W, C] = hwc(graph, node.inputs[0]!, node);
        const [OH, OW] = outShape as [number, number, number];
        if (C !== node.channels) throw new CosfaceError('BAD_MODEL', `node ${node.name}: channels do not match the filter`);
        const p = node.pads;
        steps.push({
          op: 'depthwise', out, x, res, w: addConst(node.filter), bias: addConst(node.bias), alpha: needsAlpha ? addConst(node.alpha!) : -1,
          xSize: H * W * C, outSize, H, W, C, kh: node.kh, kw: node.kw, sh: node.strideH, sw: node.strideW, padT: p.top, padL: p.left, OH, OW, act,
        });
        break;
      }
      case 'fullyConnected': {
        if (sizeOf(node.inputs[0]!) !== node.inF) throw new CosfaceError('BAD_MODEL', `node ${node.name}: input size does not match inF ${node.inF}`);
        const w = addConst(packGemmWeights(node.weights, node.outF, node.inF));
        steps.push({ op: 'gemm', out, x, res, w, bias: addConst(padTo8(node.bias)), alpha: needsAlpha ? addConst(padTo8(slopes!)) : -1, P: 1, K: node.inF, N: node.outF, act: gemmAct });
        break;
      }
      case 'add': {
        const C = outShape[outShape.length - 1]!;
        steps.push({ op: 'add', out, a: x, b: get(node.inputs[1]!, node), alpha: needsAlpha ? addConst(node.alpha!) : -1, P: outSize / C, C, act });
        break;
      }
      case 'affine': {
        const C = outShape[outShape.length - 1]!;
        steps.push({ op: 'affine', out, x, scale: addConst(node.scale), shift: addConst(node.shift), P: outSize / C, C });
        break;
      }
      case 'activation': {
        const C = outShape[outShape.length - 1]!;
        steps.push({ op: 'activation', out, x, alpha: needsAlpha ? addConst(node.alpha!) : -1, P: outSize / C, C, act });
        break;
      }
      case 'pad': {
        const [H, W, C] = hwc(graph, node.inputs[0]!, node);
        const p = node.pads;
        steps.push({ op: 'pad', out, x, xSize: H * W * C, outSize, H, W, C, top: p.top, left: p.left, bottom: p.bottom, right: p.right });
        break;
      }
      case 'l2normalize':
        steps.push({ op: 'l2normalize', out, x, dim: outSize });
        break;
      case 'maxPool2d': {
        const [H, W, C] = hwc(graph, node.inputs[0]!, node);
        const [OH, OW, OC] = outShape as [number, number, number];
        if (OC !== C) throw new CosfaceError('BAD_MODEL', `node ${node.name} (maxPool2d): output has ${OC} channels, input ${C}`);
        steps.push({
          op: 'maxPool2d', out, x, xSize: H * W * C, outSize, H, W, C, kh: node.kh, kw: node.kw, sh: node.strideH, sw: node.strideW,
          padT: node.pads.top, padL: node.pads.left, OH, OW,
        });
        break;
      }
      case 'padChannels': {
        const inShape = shapeOf(graph, node.inputs[0]!, node);
        const C = inShape[inShape.length - 1]!;
        if (outShape[outShape.length - 1] !== node.before + C + node.after) {
          throw new CosfaceError('BAD_MODEL', `node ${node.name} (padChannels): output channels do not equal ${node.before} + ${C} + ${node.after}`);
        }
        steps.push({ op: 'padChannels', out, x, P: numel(inShape) / C, C, before: node.before, after: node.after });
        break;
      }
      case 'sigmoid':
        steps.push({ op: 'sigmoid', out, x, size: outSize });
        break;
      case 'concat': {
        let offset = 0;
        for (const t of node.inputs) {
          const size = sizeOf(t);
          steps.push({ op: 'copy', out, x: get(t, node), xSize: size, outSize, offset, size });
          offset += size;
        }
        if (offset !== outSize) throw new CosfaceError('BAD_MODEL', `node ${node.name} (concat): inputs hold ${offset} floats per sample, the output ${outSize}`);
        break;
      }
      default:
        throw new CosfaceError('UNSUPPORTED_OP', `wasm backend: op '${node.op}' (node ${node.name}) has no kernel`);
    }
    slotOf.set(node.output, out);
    if (after) slotOf.set(after.output, out);
    // Free inputs whose last reader was this node (after taking the output slot, so kernels
    // never write over what they read).
    for (const t of node.inputs) {
      const r = root(t);
      if (lastUse.get(r) === i) slots.release(slotOf.get(r)!);
    }
  });

  return {
    consts,
    slots: slots.sizes,
    steps,
    inputSlot: slotOf.get(graph.input.name)!,
    outputSlot: slotOf.get(root(graph.output.name))!,
    inputSize,
    outputSize: numel(graph.output.shape),
  };
}
