// Every kernel against the scalar reference (src/graph/reference.ts) on random tensors: odd
// sizes, stride 2, padding on every side, PReLU, residual adds, batch > 1. Written once, run on
// every backend. Tolerance: |got - want| <= 1e-4 * max(1, |want|) (float32 sums in another order).
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { createWasmBackend } from '../../src/backend/wasm/index.js';
import { numel, type Graph } from '../../src/graph/ir.js';
import { runReference } from '../../src/graph/reference.js';
import { randomTensor } from '../helpers/fixtures.js';
import { convGraph, depthwiseGraph, detectorOpsGraph, elementwiseGraph, fcGraph, type ConvCase } from '../helpers/graphs.js';
import { skipWebGpu } from '../helpers/webgpu.js';

const pads = (top: number, left: number, bottom: number, right: number) => ({ top, left, bottom, right });

const convCases: ConvCase[] = [
  { name: '3x3 s2 asymmetric pads, 3->13 prelu, padValue', h: 11, w: 9, inC: 3, outC: 13, k: [3, 3], stride: [2, 2], pads: pads(1, 2, 0, 1), activation: 'prelu', padValue: true },
  { name: '5x3 s(1,2) 5->6 relu + residual', h: 7, w: 10, inC: 5, outC: 6, k: [5, 3], stride: [1, 2], pads: pads(2, 1, 2, 1), activation: 'relu', residual: true },
  { name: '1x1 matmul path 8->12 prelu + residual', h: 9, w: 7, inC: 8, outC: 12, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'prelu', residual: true },
  { name: '1x1 matmul path 64->36 none', h: 5, w: 5, inC: 64, outC: 36, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'none' },
  { name: '1x1 odd channels 7->5 (generic path)', h: 6, w: 3, inC: 7, outC: 5, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'relu' },
  { name: '1x1 stride 2 with padding 4->8', h: 9, w: 9, inC: 4, outC: 8, k: [1, 1], stride: [2, 2], pads: pads(1, 0, 0, 1), activation: 'none' },
  // Cout % 4 == 0: the subgroup implicit-GEMM path on WebGPU (first layer of MobileFaceNet: 3x3 s2, 3 -> 64).
  { name: '3x3 s2 3->16 prelu + residual, padValue, asymmetric pads', h: 13, w: 11, inC: 3, outC: 16, k: [3, 3], stride: [2, 2], pads: pads(1, 0, 1, 2), activation: 'prelu', residual: true, padValue: true },
  { name: '3x3 s1 5->40 relu (two column blocks, partial row tile)', h: 7, w: 5, inC: 5, outC: 40, k: [3, 3], stride: [1, 1], pads: pads(1, 1, 1, 1), activation: 'relu' },
];

const depthwiseCases = [
  { name: 'dw 3x3 s1 pads 1, 13 ch prelu', h: 9, w: 11, inC: 13, k: [3, 3] as [number, number], stride: [1, 1] as [number, number], pads: pads(1, 1, 1, 1), activation: 'prelu' as const },
  { name: 'dw 3x3 s2 asymmetric, 70 ch relu + residual', h: 12, w: 7, inC: 70, k: [3, 3] as [number, number], stride: [2, 2] as [number, number], pads: pads(0, 1, 1, 0), activation: 'relu' as const, residual: true },
  // C % 4 == 0: the vec4 3x3 variants on WebGPU (depthwise3x3Wgsl, v4).
  { name: 'dw 3x3 s1 pads 1, 20 ch prelu + residual', h: 9, w: 11, inC: 20, k: [3, 3] as [number, number], stride: [1, 1] as [number, number], pads: pads(1, 1, 1, 1), activation: 'prelu' as const, residual: true },
  { name: 'dw 3x3 s2 asymmetric, 36 ch prelu', h: 13, w: 10, inC: 36, k: [3, 3] as [number, number], stride: [2, 2] as [number, number], pads: pads(1, 0, 1, 1), activation: 'prelu' as const },
  // Taller maps: tiles of 7 rows for 21 output rows, and of 8 with a partial last tile for 18.
  { name: 'dw 3x3 s1 pads 1, 21 rows, 8 ch prelu', h: 21, w: 5, inC: 8, k: [3, 3] as [number, number], stride: [1, 1] as [number, number], pads: pads(1, 1, 1, 1), activation: 'prelu' as const },
  { name: 'dw 3x3 s2 pads 1, 18 rows, 8 ch relu + residual', h: 35, w: 6, inC: 8, k: [3, 3] as [number, number], stride: [2, 2] as [number, number], pads: pads(1, 1, 1, 0), activation: 'relu' as const, residual: true },
  { name: 'dw 3x3 s1 valid, 8 ch none', h: 6, w: 7, inC: 8, k: [3, 3] as [number, number], stride: [1, 1] as [number, number], pads: pads(0, 0, 0, 0), activation: 'none' as const },
  { name: 'dw 7x7 valid (GDC), 16 ch', h: 7, w: 7, inC: 16, k: [7, 7] as [number, number], stride: [1, 1] as [number, number], pads: pads(0, 0, 0, 0), activation: 'none' as const },
  { name: 'dw 5x5 s2 pads 2, 6 ch', h: 10, w: 13, inC: 6, k: [5, 5] as [number, number], stride: [2, 2] as [number, number], pads: pads(2, 2, 2, 2), activation: 'none' as const },
  // C % 4 == 0, not 3x3: the vec4 loop over taps on WebGPU (depthwiseVec4Wgsl), as for the 7x7 above.
  { name: 'dw 5x3 s(2,1) asymmetric pads, 12 ch prelu + residual', h: 11, w: 9, inC: 12, k: [5, 3] as [number, number], stride: [2, 1] as [number, number], pads: pads(2, 0, 1, 1), activation: 'prelu' as const, residual: true },
];

function close(got: Float32Array, want: Float32Array): { worst: number; at: number } {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  return { worst, at };
}

interface BackendUnderTest {
  name: string;
  skip: boolean;
  create(): Promise<Backend>;
}

const backends: BackendUnderTest[] = [
  { name: 'webgpu (subgroup kernels)', skip: skipWebGpu, create: () => createWebGpuBackend({ subgroups: true }) },
  { name: 'webgpu (no subgroups)', skip: skipWebGpu, create: () => createWebGpuBackend({ subgroups: false }) },
  { name: 'wasm', skip: false, create: () => createWasmBackend({ workers: 2 }) },
];

/** Scalar-reference check of one graph at batch n on a backend (the tolerance above). */
async function checkOn(backend: Backend, graph: Graph, n: number, seed: number) {
  const input = randomTensor(n * numel(graph.input.shape), seed, 2);
  const want = runReference(graph, input, n);
  const compiled = await backend.compile(graph);
  try {
    const got = await compiled.run(input, n);
    expect(got.length).toBe(want.length);
    const { worst, at } = close(got, want);
    expect(worst, `worst relative error at ${at}: got ${got[at]}, want ${want[at]}`).toBeLessThanOrEqual(1e-4);
  } finally {
    compiled.dispose();
  }
}

for (const b of backends) {
  describe.skipIf(b.skip)(`${b.name} kernels vs scalar reference`, () => {
    let backend: Backend | null = null;
    const get = async () => (backend ??= await b.create());
    afterAll(async () => backend?.dispose());

    const check = async (graph: Graph, n: number, seed: number) => checkOn(await get(), graph, n, seed);

    for (const c of convCases) it(`conv2d ${c.name}, batch 3`, () => check(convGraph(c), 3, 1));
    for (const c of depthwiseCases) it(`depthwise ${c.name}, batch 2`, () => check(depthwiseGraph(c), 2, 2));
    it('fully connected 512->128 (matmul) prelu, batch 5', () => check(fcGraph(512, 128, 'prelu'), 5, 3));
    it('fully connected 30->7 (odd sizes) relu + residual, batch 4', () => check(fcGraph(30, 7, 'relu', true), 4, 4));
    it('affine, pad, prelu, add+relu, reshape, l2normalize, batch 3', () => check(elementwiseGraph(5, 6, 7), 3, 5));
    it('maxPool 2x2 s2, padChannels, sigmoid, concat, batch 3', () => check(detectorOpsGraph(9, 8, 5, 2, 2, pads(0, 0, 1, 0)), 3, 7));
    it('maxPool 3x3 s2 with pads on every side, batch 2', () => check(detectorOpsGraph(7, 10, 4, 3, 2, pads(1, 1, 1, 1)), 2, 8));
    it('large batch crosses the 65535-workgroup grid limit in y', () => check(convGraph({ name: 'tall', h: 40, w: 40, inC: 4, outC: 4, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'relu' }), 1700, 6));
  });
}

// A non-default subgroup GEMM tile (the subgroupGemm option, used to compare tiles): 24 rows per
// subgroup (partial row tiles) and two vec4 columns per lane (partial column blocks), on the
// 1x1-convolution and fully connected cases that take the GEMM.
describe.skipIf(skipWebGpu)('webgpu subgroup GEMM tile 24x2 vs scalar reference', () => {
  let backend: Backend | null = null;
  const get = async () => (backend ??= await createWebGpuBackend({ subgroups: true, subgroupGemm: { rows: 24, cols: 2 } }));
  afterAll(async () => backend?.dispose());
  for (const c of convCases.filter((c) => c.name.includes('matmul path'))) it(`conv2d ${c.name}, batch 3`, async () => checkOn(await get(), convGraph(c), 3, 1));
  it('fully connected 512->128 (matmul) prelu, batch 5', async () => checkOn(await get(), fcGraph(512, 128, 'prelu'), 5, 3));
  it('the GEMM runs with the requested tile', async () => {
    const b = (await get()) as WebGpuBackend;
    if (b.gpu.subgroupSize === null || !b.gpu.features.has('timestamp-query')) return; // no subgroup kernels / no profile on this adapter
    const compiled = await b.compile(fcGraph(64, 32, 'none'));
    try {
      const timings = await compiled.profile(randomTensor(2 * 64, 9, 1), 2);
      expect(timings.map((t) => t.shader)).toContainEqual(expect.stringMatching(/^matmul-subgroup-sg\d+-24x2#/));
    } finally {
      compiled.dispose();
    }
  });
});
