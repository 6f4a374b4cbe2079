// The whole MobileFaceNet on WebGPU against the reference embeddings of the 16 aligned fixture
// crops (computed by an independent float32 implementation): every element within 1e-4 after
// normalisation, every pairwise similarity within 1e-4; any batch size on the same pipelines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Embedder } from '../../src/embedder.js';
import { createWebGpuBackend, type WebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { isCosfaceError } from '../../src/errors.js';
import { loadAlignedFixtures, maxAbsDiff, maxPairwiseSimDiff, type AlignedFixtures } from '../helpers/fixtures.js';
import { skipWebGpu } from '../helpers/webgpu.js';

describe.skipIf(skipWebGpu)('MobileFaceNet on WebGPU', () => {
  let backend: WebGpuBackend;
  let embedder: Embedder;
  let fx: AlignedFixtures;
  const crop = 112 * 112 * 3;

  beforeAll(async () => {
    backend = await createWebGpuBackend();
    embedder = await Embedder.create({ backendInstance: backend });
    fx = await loadAlignedFixtures();
  });
  afterAll(async () => {
    await embedder?.dispose();
    await backend?.dispose();
  });

  it('reports the adapter', () => {
    expect(backend.describe()).toMatch(/^webgpu \(.+\)$/);
  });

  it('matches the reference embeddings of the 16 fixture crops within 1e-4', async () => {
    const out = await embedder.embed(fx.crops, fx.files.length);
    expect(maxAbsDiff(out, fx.reference)).toBeLessThanOrEqual(1e-4);
    expect(maxPairwiseSimDiff(out, fx.reference, 128)).toBeLessThanOrEqual(1e-4);
    // Unit length, and the same person closer than different people for each pair.
    for (let i = 0; i < 16; i++) {
      let s = 0;
      for (let k = 0; k < 128; k++) s += out[i * 128 + k]! ** 2;
      expect(Math.abs(Math.sqrt(s) - 1)).toBeLessThan(1e-5);
    }
  });

  it('gives the same rows at batch 1, 3, 16 and 256 without compiling new pipelines', async () => {
    const full = await embedder.embed(fx.crops, 16);
    const pipelinesBefore = backend.pipelines.size;
    const one = await embedder.embed(fx.crops.subarray(5 * crop, 6 * crop), 1);
    expect(maxAbsDiff(one, full.subarray(5 * 128, 6 * 128))).toBeLessThanOrEqual(1e-5);
    const three = await embedder.embed(fx.crops.subarray(0, 3 * crop), 3);
    expect(maxAbsDiff(three, full.subarray(0, 3 * 128))).toBeLessThanOrEqual(1e-5);
    const big = new Float32Array(256 * crop);
    for (let i = 0; i < 256; i++) big.set(fx.crops.subarray((i % 16) * crop, (i % 16 + 1) * crop), i * crop);
    const out = await embedder.embed(big, 256);
    for (const i of [0, 17, 100, 255]) expect(maxAbsDiff(out.subarray(i * 128, (i + 1) * 128), full.subarray((i % 16) * 128, (i % 16 + 1) * 128))).toBeLessThanOrEqual(1e-5);
    expect(backend.pipelines.size).toBe(pipelinesBefore);
  }, 600_000);

  it('rejects a zero-length batch, a wrong-length input and NaN with clear errors, and keeps working', async () => {
    await expect(embedder.embed(new Float32Array(0), 0)).rejects.toSatisfy((e) => isCosfaceError(e, 'EMPTY_BATCH'));
    await expect(embedder.embed(new Float32Array(crop - 1), 1)).rejects.toSatisfy((e) => isCosfaceError(e, 'DIMENSION_MISMATCH'));
    const nan = fx.crops.slice(0, crop);
    nan[77] = Number.NaN;
    await expect(embedder.embed(nan, 1)).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_INPUT'));
    const ok = await embedder.embed(fx.crops.subarray(0, crop), 1);
    expect(maxAbsDiff(ok, fx.reference.subarray(0, 128))).toBeLessThanOrEqual(1e-4);
  });

  it('releases its buffers to the pool when disposed (no leak across compiles)', async () => {
    const live = backend.pool.liveCount;
    const compiled = await backend.compile(embedder.graph);
    await compiled.run(fx.crops.subarray(0, 2 * crop), 2);
    expect(backend.pool.liveCount).toBeGreaterThan(live);
    compiled.dispose();
    expect(backend.pool.liveCount).toBe(live);
  });

  it('times every kernel with timestamp queries', async () => {
    if (!backend.gpu.features.has('timestamp-query')) return;
    const compiled = await backend.compile(embedder.graph);
    const timings = await compiled.profile(fx.crops.subarray(0, 2 * crop), 2);
    compiled.dispose();
    expect(timings.length).toBeGreaterThan(20);
    expect(timings.every((t) => t.ms >= 0)).toBe(true);
    expect(timings.reduce((a, t) => a + t.macs, 0)).toBe(2 * 220_965_376);
  });
});
