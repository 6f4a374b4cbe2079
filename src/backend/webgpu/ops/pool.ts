// maxPool2d, padChannels, sigmoid and concat (WGSL in kernels/pool.ts).
import { numel, type ConcatNode, type MaxPool2DNode, type PadChannelsNode, type SigmoidNode } from '../../../graph/ir.js';
import { POOL_WGSL } from '../kernels/pool.js';
import { grid1d, params, shader, type KernelPlan } from './kernel.js';

// Word positions in the pool kernels' Params.
function words(f: Partial<Record<'total' | 'C' | 'H' | 'W' | 'OH' | 'OW' | 'kh' | 'kw' | 'sh' | 'sw' | 'padTop' | 'padLeft' | 'before' | 'inC' | 'srcPer' | 'dstPer' | 'dstOff', number>>): Uint32Array {
  const order = ['total', 'C', 'H', 'W', 'OH', 'OW', 'kh', 'kw', 'sh', 'sw', 'padTop', 'padLeft', 'before', 'inC', 'srcPer', 'dstPer', 'dstOff'] as const;
  return params(order.map((k) => f[k] ?? 0));
}

export function planMaxPool(node: MaxPool2DNode, shapes: Map<string, number[]>): KernelPlan {
  const [H, W, C] = shapes.get(node.inputs[0]!)! as [number, number, number];
  const [OH, OW] = shapes.get(node.output)! as [number, number, number];
  const per = OH * OW * C;
  return {
    node, shader: shader('pool', POOL_WGSL, 'maxPool'),
    bindings: [{ kind: 'tensor', name: node.inputs[0]! }, { kind: 'tensor', name: node.output }],
    params: (n) => words({ total: n * per, C, H, W, OH, OW, kh: node.kh, kw: node.kw, sh: node.strideH, sw: node.strideW, padTop: node.pads.top, padLeft: node.pads.left }),
    dispatch: (n) => grid1d(Math.ceil((n * per) / 256)),
  };
}

export function planPadChannels(node: PadChannelsNode, shapes: Map<string, number[]>): KernelPlan {
  const inShape = shapes.get(node.inputs[0]!)!;
  const inC = inShape[inShape.length - 1]!;
  const C = inC + node.before + node.after;
  const per = (numel(inShape) / inC) * C;
  return {
    node, shader: shader('pool', POOL_WGSL, 'padChannels'),
    bindings: [{ kind: 'tensor', name: node.inputs[0]! }, { kind: 'tensor', name: node.output }],
    params: (n) => words({ total: n * per, C, before: node.before, inC }),
    dispatch: (n) => grid1d(Math.ceil((n * per) / 256)),
  };
}

export function planSigmoid(node: SigmoidNode, shapes: Map<string, number[]>): KernelPlan {
  const per = numel(shapes.get(node.output)!);
  return {
    node, shader: shader('pool', POOL_WGSL, 'sigmoid'),
    bindings: [{ kind: 'tensor', name: node.inputs[0]! }, { kind: 'tensor', name: node.output }],
    params: (n) => words({ total: n * per }),
    dispatch: (n) => grid1d(Math.ceil((n * per) / 256)),
  };
}

/** One copy per input into its offset of each output sample. */
export function planConcat(node: ConcatNode, shapes: Map<string, number[]>): KernelPlan[] {
  const dstPer = numel(shapes.get(node.output)!);
  let off = 0;
  return node.inputs.map((input) => {
    const srcPer = numel(shapes.get(input)!);
    const dstOff = off;
    off += srcPer;
    return {
      node, shader: shader('pool', POOL_WGSL, 'copySlice'),
      bindings: [{ kind: 'tensor', name: input }, { kind: 'tensor', name: node.output }],
      params: (n: number) => words({ total: n * srcPer, srcPer, dstPer, dstOff }),
      dispatch: (n: number) => grid1d(Math.ceil((n * srcPer) / 256)),
    };
  });
}
