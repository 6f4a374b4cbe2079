// Depthwise convolution (WGSL generated per variant in kernels/depthwise.ts).
import { CosfaceError } from '../../../errors.js';
import type { DepthwiseConv2DNode } from '../../../graph/ir.js';
import { DEPTHWISE_MAX_SEG, DEPTHWISE_MAX_TAPS, depthwise3x3Wgsl, depthwiseGenericWgsl, depthwiseVec4Wgsl } from '../kernels/depthwise.js';
import { ACT_CODE, grid, grid1d, params, type BindingRef, type KernelPlan, type PlanContext } from './kernel.js';

/** Output rows per tile of the vec4 3x3 kernels: OH itself up to 16, else a divisor of OH (8, 7, 16, 14, 12), else 8. */
export function depthwiseTileRows(OH: number): number {
  if (OH <= 16) return OH;
  for (const th of [8, 7, 16, 14, 12]) if (OH % th === 0) return th;
  return 8;
}

export function planDepthwise(node: DepthwiseConv2DNode, shapes: Map<string, number[]>, ctx: PlanContext = { subgroupSize: null }): KernelPlan {
  const [H, W] = shapes.get(node.inputs[0]!)! as [number, number, number];
  const [OH, OW] = shapes.get(node.output)! as [number, number, number];
  const hasResidual = node.inputs.length > 1;
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    { kind: 'const', data: node.filter, label: `${node.name}/weights` },
    { kind: 'const', data: node.bias, label: `${node.name}/bias` },
    node.alpha ? { kind: 'const', data: node.alpha, label: `${node.name}/alpha` } : { kind: 'dummy' },
    hasResidual ? { kind: 'tensor', name: node.inputs[1]! } : { kind: 'dummy' },
    { kind: 'tensor', name: node.output },
  ];
  if (node.kh * node.kw > DEPTHWISE_MAX_TAPS || 3 * node.strideW + node.kw > DEPTHWISE_MAX_SEG) {
    throw new CosfaceError('UNSUPPORTED_OP', `webgpu: depthwise ${node.name}: kernel ${node.kh}x${node.kw} stride ${node.strideW} is beyond the depthwise kernel's limits (49 taps, 32-wide row segment)`);
  }
  const square3 = node.kh === 3 && node.kw === 3 && node.strideH === node.strideW && (node.strideH === 1 || node.strideH === 2);
  // The CPU-tuned kernel set (subgroupSize set, see WebGpuBackendOptions.subgroups) has the vec4 variants.
  if (square3 && node.channels % 4 === 0 && ctx.subgroupSize !== null) {
    // Four channels per invocation (vec4): tiles 8x4 (stride 1) or 8x2 (stride 2), the fastest on
    // lavapipe of the tiles tried (2x4 to 16x4), except that the tile height divides the output
    // height where it can (7 for 28 rows, the whole map up to 16 rows): rows past the end are
    // computed on clamped inputs and thrown away, 12.5% of the work at 28 and 14 rows with 8.
    // Strips sharing columns between lanes by subgroupShuffleDown were slower.
    const tw = node.strideH === 1 ? 4 : 2;
    const th = depthwiseTileRows(OH);
    const tilesX = Math.ceil(OW / tw);
    const tilesY = Math.ceil(OH / th);
    const C4 = node.channels / 4;
    return {
      node,
      shader: depthwise3x3Wgsl({ stride: node.strideH as 1 | 2, th, tw, v4: true }),
      bindings,
      params: (n) => params([H, W, C4, OH, OW, node.pads.top, node.pads.left, ACT_CODE[node.activation], hasResidual ? 1 : 0, n * tilesX * tilesY, tilesX, tilesY]),
      dispatch: (n) => grid1d(Math.ceil((n * tilesX * tilesY * C4) / 64)),
    };
  }
  if (node.channels % 4 === 0 && ctx.subgroupSize !== null) {
    // Other kernels with C % 4 == 0 (the 7x7 global depthwise of MobileFaceNet): one output pixel
    // x four channels per invocation.
    const C4 = node.channels / 4;
    const total = (n: number) => n * OH * OW * C4;
    return {
      node,
      shader: depthwiseVec4Wgsl(),
      bindings,
      params: (n) => params([H, W, C4, OH, OW, node.kh, node.kw, node.strideH, node.strideW, node.pads.top, node.pads.left, ACT_CODE[node.activation], hasResidual ? 1 : 0, total(n), 0, 0]),
      dispatch: (n) => grid1d(Math.ceil(total(n) / 64)),
    };
  }
  // Unrolled 3x3 variants (tile rows x cols), else the generic 4x4-tile entry point.
  const [th, tw] = square3 && node.strideH === 2 ? [2, 4] : [4, 4];
  const tilesX = Math.ceil(OW / tw);
  const tilesY = Math.ceil(OH / th);
  return {
    node,
    shader: square3 ? depthwise3x3Wgsl({ stride: node.strideH as 1 | 2, th, tw, v4: false }) : depthwiseGenericWgsl(),
    bindings,
    params: (n) =>
      params([H, W, node.channels, OH, OW, node.kh, node.kw, node.strideH, node.strideW, node.pads.top, node.pads.left, ACT_CODE[node.activation], hasResidual ? 1 : 0, n * tilesX * tilesY, tilesX, tilesY]),
    dispatch: (n) => grid(Math.ceil(node.channels / 64), n * tilesX * tilesY),
  };
}
