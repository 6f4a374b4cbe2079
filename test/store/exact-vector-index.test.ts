// The exact-scan index of the edge runtimes against brute force: f32 gives the same rows, f16 and
// int8 keep the true best face among their over-fetched candidates on face-like (clustered) data,
// deletes and replacements take effect, and the memory per vector is what the docs promise.
import { beforeAll, describe, expect, it } from 'vitest';
import { WasmKernels } from '../../src/backend/wasm/wasm-instance.js';
import { loadWasmModule } from '../../src/backend/wasm/wasm-kernels.js';
import { isCosfaceError } from '../../src/errors.js';
import { ExactVectorIndex, toHalf, type VectorStorage } from '../../src/store/exact-vector-index.js';
import { scoreExactTs } from '../../src/store/exact-scorer.js';
import { mulberry32 } from '../helpers/fixtures.js';
import { gaussian } from '../../src/random.js';
import { toUnitVector } from '../../src/store/embedding.js';

const DIM = 128;

/** n unit vectors in clusters of 5 around random centres (templates of one identity), and probes near them. */
function faceLike(n: number, probes: number, seed: number) {
  const rnd = mulberry32(seed);
  const gauss = gaussian(rnd);
  const unit = (v: Float32Array) => toUnitVector(v, v.length);
  const centres = Array.from({ length: Math.ceil(n / 5) }, () => unit(Float32Array.from({ length: DIM }, gauss)));
  const near = (c: Float32Array, spread: number) => unit(Float32Array.from(c, (x) => x + spread * gauss()));
  const gallery = new Float32Array(n * DIM);
  for (let i = 0; i < n; i++) gallery.set(near(centres[Math.floor(i / 5)]!, 0.08), i * DIM);
  const queries = new Float32Array(probes * DIM);
  for (let i = 0; i < probes; i++) queries.set(near(centres[Math.floor(rnd() * centres.length)]!, 0.08), i * DIM);
  return { gallery, queries };
}

describe('ExactVectorIndex', () => {
  let kernels: WasmKernels;
  const n = 5000;
  const probes = 200;
  const data = faceLike(n, probes, 11);
  let truth: Int32Array;
  beforeAll(async () => {
    kernels = new WasmKernels(loadWasmModule('simd'));
    truth = (await scoreExactTs(data.queries, probes, data.gallery, n, DIM, 1)).indices;
  });

  const build = (storage: VectorStorage) => {
    const idx = new ExactVectorIndex(kernels, { dimension: DIM, storage, capacity: 16 });
    for (let i = 0; i < n; i++) idx.add(1000 + i, data.gallery.subarray(i * DIM, (i + 1) * DIM));
    return idx;
  };

  it('f32 returns the brute-force top 10 (same faces, scores within 1e-5)', async () => {
    const idx = build('f32');
    expect(idx.size).toBe(n);
    for (let p = 0; p < 20; p++) {
      const q = data.queries.subarray(p * DIM, (p + 1) * DIM);
      const want = await scoreExactTs(q, 1, data.gallery, n, DIM, 10);
      const got = idx.search(q, 10);
      expect(got.ids).toEqual([...want.indices].map((r) => 1000 + r));
      got.scores.forEach((s, i) => expect(Math.abs(s - want.scores[i]!)).toBeLessThanOrEqual(1e-5));
    }
  });

  for (const storage of ['f16', 'int8'] as const) {
    it(`${storage} keeps the true nearest face among its top 32 for every probe, and ranks it first for >= 99%`, () => {
      const idx = build(storage);
      let first = 0;
      for (let p = 0; p < probes; p++) {
        const got = idx.search(data.queries.subarray(p * DIM, (p + 1) * DIM), 32);
        const want = 1000 + truth[p]!;
        expect(got.ids).toContain(want);
        if (got.ids[0] === want) first++;
      }
      expect(first / probes).toBeGreaterThanOrEqual(0.99);
    });
  }

  it('deletes and replacements take effect; absent ids are reported', () => {
    const idx = build('int8');
    const q = data.queries.subarray(0, DIM);
    const best = idx.search(q, 1).ids[0]!;
    expect(idx.remove(best)).toBe(true);
    expect(idx.remove(best)).toBe(false);
    expect(idx.has(best)).toBe(false);
    expect(idx.search(q, 5).ids).not.toContain(best);
    expect(idx.size).toBe(n - 1);
    // Replace another face's vector with the probe itself: it must come first.
    const other = idx.search(q, 50).ids[49]!;
    idx.add(other, q);
    expect(idx.size).toBe(n - 1);
    expect(idx.search(q, 1).ids[0]).toBe(other);
    const v = idx.vector(other)!;
    for (let i = 0; i < DIM; i++) expect(Math.abs(v[i]! - q[i]!)).toBeLessThanOrEqual(1 / 127);
  });

  it('holds 100,000 128-d faces in under 20 MB as int8, 32 MB as f16, 58 MB as f32', () => {
    const v = data.gallery.subarray(0, DIM);
    const megabytes = (storage: VectorStorage) => {
      const idx = new ExactVectorIndex(kernels, { dimension: DIM, storage, capacity: 100_000 });
      for (let i = 0; i < 100_000; i++) idx.add(i + 1, v);
      return idx.bytes / 2 ** 20;
    };
    expect(megabytes('int8')).toBeLessThan(20);
    expect(megabytes('f16')).toBeLessThan(32);
    expect(megabytes('f32')).toBeLessThan(58);
  });

  it('rejects a wrong-length probe or vector with DIMENSION_MISMATCH and a bad storage with BAD_INPUT', () => {
    const idx = build('f32');
    const code = (f: () => unknown) => {
      try {
        f();
        return 'none';
      } catch (e) {
        return isCosfaceError(e) ? e.code : 'other';
      }
    };
    expect(code(() => idx.search(new Float32Array(DIM - 1), 1))).toBe('DIMENSION_MISMATCH');
    expect(code(() => idx.add(1, new Float32Array(DIM + 1)))).toBe('DIMENSION_MISMATCH');
    expect(code(() => new ExactVectorIndex(kernels, { dimension: DIM, storage: 'f8' as VectorStorage }))).toBe('BAD_INPUT');
  });

  it('converts floats to IEEE half with rounding to nearest even', () => {
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
    expect(toHalf(65504)).toBe(0x7bff);
    expect(toHalf(1e6)).toBe(0x7c00);
    expect(toHalf(2 ** -24)).toBe(0x0001);
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // tie: rounds to even
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toHalf(0.1)).toBe(0x2e66);
  });
});
