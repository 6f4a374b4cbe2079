// 1x1 convolutions (stride 1, no padding) and fully connected layers as a register-tiled matrix
// multiply (WGSL generated per variant in kernels/matmul.ts). Needs K and N multiples of 4; the
// registry falls back to the direct convolution otherwise.
import { numel, type Conv2DNode, type FullyConnectedNode } from '../../../graph/ir.js';
import { matmulSubgroupWgsl, matmulWgsl } from '../kernels/matmul.js';
import { ACT_CODE, SUBGROUP_ENTRY_SIZES, grid1d, padTo4, params, type BindingRef, type KernelPlan, type PlanContext } from './kernel.js';

/** Register tile of matmulWgsl: rows (pixels) x vec4 columns per invocation. */
const TILE_ROWS = 8;
const TILE_COLS4 = 4;

/** [N, K] (output-major) -> [K, N] so a vec4 load takes 4 adjacent output channels. */
export function packMatmulWeights(w: Float32Array, N: number, K: number): Float32Array {
  const packed = new Float32Array(K * N);
  for (let o = 0; o < N; o++) for (let k = 0; k < K; k++) packed[k * N + o] = w[o * K + k]!;
  return packed;
}

export function matmulApplies(node: Conv2DNode | FullyConnectedNode): boolean {
  if (node.op === 'fullyConnected') return node.inF % 4 === 0 && node.outF % 4 === 0;
  const p = node.pads;
  return (
    node.kh === 1 && node.kw === 1 && node.strideH === 1 && node.strideW === 1 &&
    p.top + p.left + p.bottom + p.right === 0 && node.inC % 4 === 0 && node.outC % 4 === 0
  );
}

/** Tile of matmulSubgroupWgsl: rows per subgroup, vec4 columns per lane. */
const SUBGROUP_TILE_ROWS = 32;
const SUBGROUP_TILE_COLS = 1;

export function planMatmul(node: Conv2DNode | FullyConnectedNode, shapes: Map<string, number[]>, ctx: PlanContext = { subgroupSize: null }): KernelPlan {
  const K = node.op === 'conv2d' ? node.inC : node.inF;
  const N = node.op === 'conv2d' ? node.outC : node.outF;
  const weights = node.op === 'conv2d' ? node.filter : node.weights;
  // Rows per sample: pixels for a 1x1 convolution, 1 for a fully connected layer.
  const rowsPerSample = node.op === 'conv2d' ? numel(shapes.get(node.output)!) / N : 1;
  const hasResidual = node.inputs.length > 1;
  const bindings: BindingRef[] = [
    { kind: 'tensor', name: node.inputs[0]! },
    { kind: 'const', data: packMatmulWeights(weights, N, K), label: `${node.name}/weights` },
    { kind: 'const', data: padTo4(node.bias, N), label: `${node.name}/bias` },
    node.alpha ? { kind: 'const', data: padTo4(node.alpha, N), label: `${node.name}/alpha` } : { kind: 'dummy' },
    hasResidual ? { kind: 'tensor', name: node.inputs[1]! } : { kind: 'dummy' },
    { kind: 'tensor', name: node.output },
  ];
  const N4 = N / 4;
  const sg = ctx.subgroupSize;
  if (sg !== null && SUBGROUP_ENTRY_SIZES.has(sg)) {
    const tile = ctx.subgroupGemm ?? { rows: SUBGROUP_TILE_ROWS, cols: SUBGROUP_TILE_COLS };
    const colBlocks = Math.ceil(N4 / (sg * tile.cols));
    const tiles = (n: number) => colBlocks * Math.ceil((n * rowsPerSample) / tile.rows);
    return {
      node,
      shader: matmulSubgroupWgsl({ sg, ...tile }),
      bindings,
      params: (n) => params([n * rowsPerSample, K / 4, N4, ACT_CODE[node.activation], hasResidual ? 1 : 0, colBlocks, tiles(n)]),
      dispatch: (n) => grid1d(Math.ceil((tiles(n) * sg) / 64)),
    };
  }
  const colBlocks = Math.ceil(N4 / TILE_COLS4);
  const tiles = (n: number) => colBlocks * Math.ceil((n * rowsPerSample) / TILE_ROWS);
  return {
    node,
    shader: matmulWgsl({ rows: TILE_ROWS, cols4: TILE_COLS4 }),
    bindings,
    params: (n) => params([n * rowsPerSample, K / 4, N4, ACT_CODE[node.activation], hasResidual ? 1 : 0, colBlocks, tiles(n)]),
    dispatch: (n) => grid1d(Math.ceil(tiles(n) / 64)),
  };
}
