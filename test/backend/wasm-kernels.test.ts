// The WASM kernels against the scalar reference (src/graph/reference.ts) on random tensors: odd
// sizes that hit every tile remainder (4-pixel GEMM tiles, 8-channel blocks, 16/4/1-channel
// depthwise paths), stride 2, padding on every side, padValue, PReLU, residual adds, batch > 1,
// micro-batches of several samples, and the worker pool. Tolerance: |got - want| <= 1e-4 *
// max(1, |want|) (float32 sums in another order than the reference's).
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createWasmBackend, type WasmBackend } from '../../src/backend/wasm/index.js';
import { LoneSampleChoice } from '../../src/backend/wasm/wasm-backend-core.js';
import { WasmKernels, loadWasmModule, relaxedSimdSupported, type WasmSimd } from '../../src/backend/wasm/wasm-kernels.js';
import { packGemmWeights, planGraph } from '../../src/backend/wasm/wasm-plan.js';
import { WasmGraphRunner } from '../../src/backend/wasm/wasm-runner.js';
import { isCosfaceError } from '../../src/errors.js';
import { numel, type Graph, type Pads } from '../../src/graph/ir.js';
import { runReference } from '../../src/graph/reference.js';
import { randomTensor } from '../helpers/fixtures.js';
import { convGraph, depthwiseGraph, detectorOpsGraph, elementwiseGraph, fcGraph, type ConvCase } from '../helpers/graphs.js';

const TOL = 1e-4;
const pads = (top: number, left: number, bottom: number, right: number): Pads => ({ top, left, bottom, right });

function worstRelError(got: Float32Array, want: Float32Array): { worst: number; at: number } {
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

function expectClose(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  const { worst, at } = worstRelError(got, want);
  expect(worst, `worst relative error at ${at}: got ${got[at]}, want ${want[at]}`).toBeLessThanOrEqual(TOL);
}

/** Runs a graph on a fresh in-process instance of a build with the given micro-batch and checks it. */
function check(simd: WasmSimd, graph: Graph, n: number, seed: number, microBatch = 1): void {
  const input = randomTensor(n * numel(graph.input.shape), seed, 2);
  const want = runReference(graph, input, n);
  const runner = new WasmGraphRunner(new WasmKernels(loadWasmModule(simd)), planGraph(graph), microBatch);
  expectClose(runner.run(input, n), want);
}

const convCases: ConvCase[] = [
  { name: '3x3 s2 asymmetric pads, 3->13 prelu, padValue', h: 11, w: 9, inC: 3, outC: 13, k: [3, 3], stride: [2, 2], pads: pads(1, 2, 0, 1), activation: 'prelu', padValue: true },
  { name: '3x3 s2 pads on every side, 5->16 prelu + residual', h: 13, w: 10, inC: 5, outC: 16, k: [3, 3], stride: [2, 2], pads: pads(1, 1, 2, 2), activation: 'prelu', residual: true },
  { name: '5x3 s(1,2) 5->6 relu + residual', h: 7, w: 10, inC: 5, outC: 6, k: [5, 3], stride: [1, 2], pads: pads(2, 1, 2, 1), activation: 'relu', residual: true },
  { name: '1x1 direct GEMM 19->13 (P = 35, N % 8 = 5) prelu + residual', h: 5, w: 7, inC: 19, outC: 13, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'prelu', residual: true },
  { name: '1x1 direct GEMM 64->36 (N % 8 = 4)', h: 5, w: 5, inC: 64, outC: 36, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'none' },
  { name: '1x1 direct GEMM 128->64 as in MobileFaceNet', h: 7, w: 7, inC: 128, outC: 64, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'prelu' },
  { name: '1x1 odd channels 7->5, K odd', h: 6, w: 3, inC: 7, outC: 5, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'relu' },
  { name: '1x1 stride 2 with padding 4->8 (im2col path)', h: 9, w: 9, inC: 4, outC: 8, k: [1, 1], stride: [2, 2], pads: pads(1, 0, 0, 1), activation: 'none' },
];

const dw = (name: string, h: number, w: number, C: number, k: number, s: number, p: Pads, activation: 'none' | 'relu' | 'prelu', residual = false) =>
  ({ name, h, w, inC: C, k: [k, k] as [number, number], stride: [s, s] as [number, number], pads: p, activation, residual });

const depthwiseCases = [
  dw('3x3 s1 pads 1, 13 ch (4 + 1 channel paths) prelu', 9, 11, 13, 3, 1, pads(1, 1, 1, 1), 'prelu'),
  dw('3x3 s2 asymmetric, 70 ch (16 + 4 + 1 paths) relu + residual', 12, 7, 70, 3, 2, pads(0, 1, 1, 0), 'relu', true),
  dw('3x3 s2 pads on every side, 37 ch prelu + residual', 11, 9, 37, 3, 2, pads(1, 1, 2, 2), 'prelu', true),
  dw('7x7 valid (GDC), 48 ch', 7, 7, 48, 7, 1, pads(0, 0, 0, 0), 'none'),
  dw('5x5 s2 pads 2, 6 ch', 10, 13, 6, 5, 2, pads(2, 2, 2, 2), 'none'),
];

// Every build this runtime can run; the relaxed-SIMD one needs Node >= 22 or a V8 flag (covered
// below by a child process that has the flag).
const builds: WasmSimd[] = relaxedSimdSupported() ? ['simd', 'relaxed'] : ['simd'];

describe.each(builds)('WASM kernels (%s build) vs scalar reference', (simd) => {
  for (const c of convCases) it(`conv2d ${c.name}, batch 3`, () => check(simd, convGraph(c), 3, 1));
  for (const c of depthwiseCases) it(`depthwise ${c.name}, batch 3`, () => check(simd, depthwiseGraph(c), 3, 2));
  it('fully connected 512->128 prelu, batch 5', () => check(simd, fcGraph(512, 128, 'prelu'), 5, 3));
  it('fully connected 37->13 (odd sizes) relu + residual, batch 6 (4-row tile + tail)', () => check(simd, fcGraph(37, 13, 'relu', true), 6, 4, 6));
  it('affine, pad, prelu, add+relu, reshape, l2normalize, batch 3', () => check(simd, elementwiseGraph(5, 6, 7), 3, 5));
  it('elementwise ops with 4-aligned channels (SIMD path), batch 2', () => check(simd, elementwiseGraph(4, 3, 8), 2, 6));

  it('micro-batches of 4 samples give the same results as one at a time (batch 7)', () => {
    const graph = convGraph({ name: 'mb', h: 6, w: 5, inC: 12, outC: 20, k: [3, 3], stride: [2, 2], pads: pads(1, 0, 1, 1), activation: 'prelu', residual: true });
    check(simd, graph, 7, 7, 4);
    check(simd, depthwiseGraph(dw('mb dw', 6, 5, 20, 3, 1, pads(1, 1, 1, 1), 'prelu', true)), 7, 8, 4);
  });

  // maxPool2d, padChannels, sigmoid and concat (BlazeFace, FaceMesh): 4-channel SIMD and scalar
  // channel tails, windows cut by the image edge, and micro-batches (concat copies per sample).
  it('maxPool 2x2 s2 (odd size, 5 ch), padChannels, sigmoid, concat, batch 3', () => check(simd, detectorOpsGraph(9, 8, 5, 2, 2, pads(0, 0, 1, 0)), 3, 7));
  it('maxPool 3x3 s2 with pads on every side (8 ch), micro-batches of 2, batch 5', () => check(simd, detectorOpsGraph(7, 10, 8, 3, 2, pads(1, 1, 1, 1)), 5, 8, 2));
  // BlazeFace/FaceMesh blocks: act(conv(x) + residual) as a conv with a residual followed by a
  // standalone activation, which the planner fuses into one GEMM (residual before activation).
  it('conv + residual then standalone relu / prelu (fused), and unfused when the sum has two readers, batch 3', () => {
    for (const activation of ['relu', 'prelu'] as const) {
      const g = convGraph({ name: 'blk', h: 6, w: 7, inC: 5, outC: 13, k: [1, 1], stride: [1, 1], pads: pads(0, 0, 0, 0), activation: 'none', residual: true });
      g.nodes.push({ op: 'activation', name: 'act', inputs: ['y'], output: 'z', activation, alpha: activation === 'prelu' ? randomTensor(13, 3, 1) : undefined });
      g.shapes.set('z', [6, 7, 13]);
      g.output = { name: 'z', shape: [6, 7, 13] };
      expect(planGraph(g).steps.filter((st) => st.op === 'activation').length).toBe(0);
      check(simd, g, 3, 10, 2);
      // The pre-activation sum is also read by an add: it must stay as computed, so no fusion.
      g.nodes.push({ op: 'add', name: 'both', inputs: ['z', 'y'], output: 'w', activation: 'none' });
      g.shapes.set('w', [6, 7, 13]);
      g.output = { name: 'w', shape: [6, 7, 13] };
      expect(planGraph(g).steps.filter((st) => st.op === 'activation').length).toBe(1);
      check(simd, g, 3, 11);
    }
  });
  it('maxPool 3x3 s1 SAME, 3 ch (scalar channels only), batch 2', () => check(simd, detectorOpsGraph(6, 6, 3, 3, 1, pads(1, 1, 1, 1)), 2, 9));

});

describe('WASM kernel helpers', () => {
  it('packs GEMM weights into zero-padded 8-channel column blocks', () => {
    const w = Float32Array.from({ length: 10 * 3 }, (_, i) => i + 1); // W[n, k] = 3n + k + 1
    const packed = packGemmWeights(w, 10, 3);
    expect(packed.length).toBe(2 * 3 * 8);
    expect(packed[0 * 8 + 5]).toBe(w[5 * 3 + 0]); // block 0, k 0, channel 5
    expect(packed[(1 * 3 + 2) * 8 + 1]).toBe(w[9 * 3 + 2]); // block 1, k 2, channel 9
    expect(packed[(1 * 3 + 2) * 8 + 2]).toBe(0); // channel 10 does not exist
  });

  it('reuses its memory: repeated runs, and graphs compiled and released, do not grow it', () => {
    const kernels = new WasmKernels(loadWasmModule('simd'));
    const graph = convGraph({ name: 'mem', h: 20, w: 20, inC: 8, outC: 16, k: [3, 3], stride: [1, 1], pads: pads(1, 1, 1, 1), activation: 'relu' });
    const input = randomTensor(4 * numel(graph.input.shape), 11, 2);
    const first = new WasmGraphRunner(kernels, planGraph(graph));
    first.run(input, 4);
    const bytes = kernels.k.memory.buffer.byteLength;
    const mark = kernels.mark();
    for (let i = 0; i < 5; i++) first.run(input, 4);
    first.dispose();
    for (let i = 0; i < 5; i++) new WasmGraphRunner(kernels, planGraph(graph)).dispose();
    expect(kernels.k.memory.buffer.byteLength).toBe(bytes);
    expect(kernels.mark()).toBeLessThan(mark);
  });

  it('refuses ops that optimizeGraph should have removed, naming the node', () => {
    const g = elementwiseGraph(2, 2, 3);
    g.nodes[0] = { op: 'maximum', name: 'stray-max', inputs: ['x'], output: 'a', value: new Float32Array(3) };
    let err: unknown;
    try {
      planGraph(g);
    } catch (e) {
      err = e;
    }
    expect(isCosfaceError(err, 'UNSUPPORTED_OP')).toBe(true);
    expect((err as Error).message).toContain('stray-max');
  });
});

describe('WASM kernel build chosen at load', () => {
  // Node 20 validates relaxed SIMD only behind a V8 flag: loading turns it on (so the FMA build
  // above ran in this process), and COSFACE_WASM_SIMD=simd keeps the plain build.
  const choose = (env: Record<string, string>) => {
    const script = `
      import { loadWasmBuild } from ${JSON.stringify(new URL('../../src/backend/wasm/wasm-kernels.ts', import.meta.url).href)};
      console.log(loadWasmBuild('auto').simd);`;
    return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 60_000, encoding: 'utf8', env: { ...process.env, ...env } }).trim();
  };
  it('auto takes the relaxed-SIMD (fused multiply-add) build on this Node', () => {
    expect(relaxedSimdSupported()).toBe(true);
    expect(choose({})).toBe('relaxed');
  });
  it('COSFACE_WASM_SIMD=simd keeps the plain SIMD build', () => {
    expect(choose({ COSFACE_WASM_SIMD: 'simd' })).toBe('simd');
  });
});

describe('WASM kernels through the worker pool', () => {
  let backend: WasmBackend | undefined;
  afterAll(() => backend?.dispose());

  it('a batch of 5 split over 2 workers matches the reference', async () => {
    backend = await createWasmBackend({ workers: 2 });
    expect(backend.describe()).toBe(`wasm (${relaxedSimdSupported() ? 'relaxed SIMD' : 'SIMD'}, 2 workers, one face split over them)`);
    const graph = convGraph({ name: 'pool', h: 9, w: 7, inC: 6, outC: 11, k: [3, 3], stride: [2, 1], pads: pads(0, 1, 2, 1), activation: 'prelu', residual: true });
    const input = randomTensor(5 * numel(graph.input.shape), 9, 2);
    const compiled = await backend.compile(graph);
    try {
      expectClose(await compiled.run(input, 5), runReference(graph, input, 5));
    } finally {
      compiled.dispose();
    }
  });

  it('one sample split over 2 workers layer by layer (rows of every conv and depthwise case) matches the reference', async () => {
    backend ??= await createWasmBackend({ workers: 2 });
    const graphs = [
      ...convCases.map((c) => convGraph(c)),
      ...depthwiseCases.map((c) => depthwiseGraph(c)),
      // Top padding larger than the stride: the second half's window starts inside the padding.
      depthwiseGraph(dw('5x5 s1 pads 2, 5 ch', 4, 6, 5, 5, 1, pads(2, 2, 2, 2), 'relu', true)),
    ];
    for (const [i, graph] of graphs.entries()) {
      const input = randomTensor(numel(graph.input.shape), 40 + i, 2);
      const compiled = await backend.compile(graph);
      try {
        // A batch of one with both workers free runs split.
        expectClose(await compiled.run(input, 1), runReference(graph, input, 1));
      } finally {
        compiled.dispose();
      }
    }
  });
});

describe('LoneSampleChoice: a lone sample runs split or on one worker, whichever has been faster', () => {
  it('tries split first, then one worker (first run each way a warm-up), then keeps the faster, exploring the other every 16th', () => {
    const c = new LoneSampleChoice();
    expect(c.next()).toBe(true);
    c.record(true, 200); // warm-up: not counted
    expect(c.next()).toBe(true);
    c.record(true, 20); // split slow (e.g. the cores are taken by other processes)
    expect(c.next()).toBe(false);
    c.record(false, 100); // warm-up
    expect(c.next()).toBe(false);
    c.record(false, 10);
    const picks = Array.from({ length: 32 }, () => c.next());
    expect(picks.filter((p) => p).length).toBe(2); // two explorations of split in 32
    // The load goes away: one exploration finds split fast, and it wins from then on.
    c.record(true, 6);
    expect(Array.from({ length: 16 }, () => c.next()).filter((p) => p).length).toBe(15);
    // The faster way's own times are smoothed: one slow split run does not flip the choice.
    c.record(true, 12);
    expect(c.next()).toBe(true);
  });
});
