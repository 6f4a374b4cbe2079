// Dense convolution (any kernel size, stride, padding, channel count; WGSL in kernels/conv2d.ts).
import type { Conv2DNode } from '../../../graph/ir.js';
import { CONV2D_SUBGROUP_ROWS, conv2dSubgroupWgsl, conv2dWgsl } from '../kernels/conv2d.js';
import { ACT_CODE, SUBGROUP_ENTRY_SIZES, grid, grid1d, padTo4, params, type BindingRef, type KernelPlan, type PlanContext } from './kernel.js';

/** [outC, kh, kw, inC] -> [kh*kw*inC, O4] vec4 along output channels, zero tail. */
export function packConvWeights(filter: Float32Array, outC: number, kh: number, kw: number, inC: number): Float32Array {
  const O4 = Math.ceil(outC / 4);
  const packed = new Float32Array(kh * kw * inC * O4 * 4);
  for (let o = 0; o < outC; o++) {
    for (let k = 0; k < kh * kw; k++) {
      for (let c = 0; c < inC; c++) packed[(k * inC + c) * O4 * 4 + o] = filter[(o * kh * kw + k) * inC + c]!;
    }
  }
  return packed;
}


export function planConv2d(node: Conv2DNode, shapes: Map<string, number[]>, ctx: PlanContext = { subgroupSize: null }): KernelPlan {
  const [H, W] = shapes.get(node.inputs[0]!)! as [number, number, number];
  const [OH, OW] = shapes.get(node.output)! as [number, number, number];
  const O4 = Math.ceil(node.outC / 4);
  const hasResidual = node.inputs.length > 1;
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    { kind: 'const', data: packConvWeights(node.filter, node.outC, node.kh, node.kw, node.inC), label: `${node.name}/weights` },
    { kind: 'const', data: padTo4(node.bias, node.outC), label: `${node.name}/bias` },
    node.alpha ? { kind: 'const', data: padTo4(node.alpha, node.outC), label: `${node.name}/alpha` } : { kind: 'dummy' },
    hasResidual ? { kind: 'tensor', name: node.inputs[1]! } : { kind: 'dummy' },
    { kind: 'tensor', name: node.output },
    { kind: 'const', data: node.padValue ? Float32Array.from(node.padValue) : new Float32Array(node.inC), label: `${node.name}/padValue` },
  ];
  const sg = ctx.subgroupSize;
  if (sg !== null && SUBGROUP_ENTRY_SIZES.has(sg) && node.outC % 4 === 0) {
    // Implicit GEMM with subgroup-shared loads (conv2dSubgroupWgsl): 32 output pixels x sg vec4
    // output-channel columns per subgroup.
    const colBlocks = Math.ceil(O4 / sg);
    const M = (n: number) => n * OH * OW;
    const tiles = (n: number) => colBlocks * Math.ceil(M(n) / CONV2D_SUBGROUP_ROWS);
    return {
      node,
      shader: conv2dSubgroupWgsl(sg),
      bindings,
      params: (n) =>
        params([H, W, node.inC, OH, OW, O4, node.kh, node.kw, node.strideH, node.strideW, node.pads.top, node.pads.left, ACT_CODE[node.activation], hasResidual ? 1 : 0, M(n), colBlocks, tiles(n), 0, 0, 0]),
      dispatch: (n) => grid1d(Math.ceil((tiles(n) * sg) / 64)),
    };
  }
  const owt = Math.ceil(OW / 4);
  return {
    node,
    shader: conv2dWgsl(),
    bindings,
    params: (n) =>
      params([H, W, node.inC, OH, OW, node.outC, O4, node.kh, node.kw, node.strideH, node.strideW, node.pads.top, node.pads.left, ACT_CODE[node.activation], hasResidual ? 1 : 0, n * OH * owt]),
    dispatch: (n) => grid(Math.ceil(O4 / 16), Math.ceil((n * OH * owt) / 4)),
  };
}
