// Exact top-k scoring on WebGPU (webgpu-score.ts, kernels/score.ts) against a brute-force JS
// top-k: odd dimensions, query counts that are not a multiple of the shader's query group, a
// gallery cut into many chunks, ties, k > n, k above the GPU lists' size, a resident gallery, and
// every documented error (the same codes as the WASM score) leaving the scorer usable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { score as wasmScore } from '../../src/backend/wasm/index.js';
import { createWebGpuScorer, type WebGpuScorer } from '../../src/backend/webgpu/webgpu-score.js';
import { randomTensor } from '../helpers/fixtures.js';
import { expectCode, expectMatchesBruteForce } from '../helpers/score.js';
import { skipWebGpu } from '../helpers/webgpu.js';


describe.skipIf(skipWebGpu)('WebGPU score()', () => {
  let scorer: WebGpuScorer;
  /** Chunks of 16 KiB: a gallery of a few thousand rows spans many storage buffers. */
  let chunked: WebGpuScorer;
  beforeAll(async () => {
    scorer = await createWebGpuScorer();
    chunked = await createWebGpuScorer({ maxChunkBytes: 16 * 1024 });
  });
  afterAll(() => {
    scorer?.dispose();
    chunked?.dispose();
  });

  it('matches brute force on unit-free random data (n = 5000, dim = 128, q = 5, k = 10)', async () => {
    const [q, n, dim, k] = [5, 5000, 128, 10];
    const queries = randomTensor(q * dim, 1);
    const gallery = randomTensor(n * dim, 2);
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('matches brute force over many chunks with odd sizes (dim = 37, q = 9, k = 7, ~60 chunks)', async () => {
    const [q, n, dim, k] = [9, 6007, 37, 7];
    const queries = randomTensor(q * dim, 3);
    const gallery = randomTensor(n * dim, 4);
    expectMatchesBruteForce(await chunked.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('gives the same rows as the WASM scorer with 64 queries (k = 10)', async () => {
    const [q, n, dim, k] = [64, 4000, 64, 10];
    const queries = randomTensor(q * dim, 5);
    const gallery = randomTensor(n * dim, 6);
    const gpu = await scorer.score(queries, q, gallery, n, dim, k);
    const cpu = await wasmScore(queries, q, gallery, n, dim, k);
    expect(Array.from(gpu.indices)).toEqual(Array.from(cpu.indices));
    for (let i = 0; i < gpu.scores.length; i++) expect(Math.abs(gpu.scores[i]! - cpu.scores[i]!)).toBeLessThanOrEqual(1e-5);
  });

  it('orders equal scores by the lower gallery index, across workgroups and chunks', async () => {
    // 500 copies of one row among random rows, the copies scattered: every copy scores the same.
    const [n, dim, k] = [3000, 8, 12];
    const gallery = randomTensor(n * dim, 7, 0.1);
    const hot = Float32Array.from({ length: dim }, (_, i) => 1 + i / 10);
    const copies: number[] = [];
    for (let r = 5; r < n; r += 6) {
      gallery.set(hot, r * dim);
      copies.push(r);
    }
    const queries = hot.slice();
    for (const s of [scorer, chunked]) {
      const got = await s.score(queries, 1, gallery, n, dim, k);
      expect(Array.from(got.indices)).toEqual(copies.slice(0, k));
      expect(new Set(got.scores).size).toBe(1);
    }
  });

  it('returns min(k, n) results when k > n, and empty lists for n = 0 or q = 0', async () => {
    const [q, n, dim] = [3, 6, 5];
    const queries = randomTensor(q * dim, 8);
    const gallery = randomTensor(n * dim, 9);
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, 20), queries, q, gallery, n, dim, 20);
    const none = await scorer.score(queries, q, new Float32Array(0), 0, dim, 5);
    expect(none.k).toBe(0);
    expect(none.indices.length).toBe(0);
    const noQueries = await scorer.score(new Float32Array(0), 0, gallery, n, dim, 5);
    expect(noQueries.k).toBe(5);
    expect(noQueries.scores.length).toBe(0);
  });

  it('answers k larger than the GPU lists (k = 50) exactly, over chunks', async () => {
    const [q, n, dim, k] = [3, 2000, 20, 50];
    const queries = randomTensor(q * dim, 10);
    const gallery = randomTensor(n * dim, 11);
    expectMatchesBruteForce(await chunked.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('scores a resident gallery many times without re-uploading, as score() does', async () => {
    const [n, dim, k] = [3000, 32, 10];
    const gallery = randomTensor(n * dim, 12);
    const resident = await chunked.upload(gallery, n, dim);
    try {
      expect(resident.bytes).toBe(n * dim * 4);
      // The bandwidth reference pass reads every value of every chunk exactly once.
      let want = 0;
      for (const v of gallery) want += v;
      expect(Math.abs((await resident.sumAll()) - want)).toBeLessThanOrEqual(1e-2);
      for (const q of [1, 4, 6]) {
        const queries = randomTensor(q * dim, 13 + q);
        expectMatchesBruteForce(await resident.score(queries, q, k), queries, q, gallery, n, dim, k);
      }
    } finally {
      resident.dispose();
    }
    await expectCode(resident.score(randomTensor(dim, 1), 1, k), 'GPU_ERROR', 'disposed');
  });

  it('rejects wrong lengths, NaN, bad k and counts with the WASM codes, and still scores afterwards', async () => {
    const [q, n, dim] = [2, 50, 6];
    const queries = randomTensor(q * dim, 20);
    const gallery = randomTensor(n * dim, 21);
    await expectCode(scorer.score(queries.subarray(1), q, gallery, n, dim, 3), 'DIMENSION_MISMATCH', 'queries');
    await expectCode(scorer.score(queries, q, gallery.subarray(1), n, dim, 3), 'DIMENSION_MISMATCH', 'gallery');
    await expectCode(scorer.score(queries, q, gallery, n, dim, 0), 'BAD_INPUT', 'k');
    await expectCode(scorer.score(queries, q, gallery, n, dim, 1.5), 'BAD_INPUT', 'k');
    await expectCode(scorer.score(queries, 2.5, gallery, n, dim, 3), 'BAD_INPUT', 'q');
    const nanQuery = queries.slice();
    nanQuery[dim + 2] = NaN;
    await expectCode(scorer.score(nanQuery, q, gallery, n, dim, 3), 'BAD_INPUT', 'query 1');
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, 3), queries, q, gallery, n, dim, 3);
  });

  it('names the first gallery row with a NaN or infinite value, wherever its chunk', async () => {
    const [n, dim] = [3000, 10];
    const queries = randomTensor(2 * dim, 22);
    const gallery = randomTensor(n * dim, 23);
    gallery[2711 * dim + 4] = Infinity;
    gallery[1777 * dim + 9] = NaN;
    for (const s of [scorer, chunked]) await expectCode(s.score(queries, 2, gallery, n, dim, 5), 'BAD_INPUT', 'gallery row 1777');
    await expectCode(chunked.score(queries, 2, gallery, n, dim, 40), 'BAD_INPUT', 'gallery row 1777');
  });

  it('refuses to score after dispose', async () => {
    const s = await createWebGpuScorer();
    s.dispose();
    await expectCode(s.score(randomTensor(4, 1), 1, randomTensor(8, 2), 2, 4, 1), 'GPU_ERROR', 'disposed');
  });
});
