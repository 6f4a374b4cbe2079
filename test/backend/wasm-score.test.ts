// Exact top-k scoring on the WASM kernels against a brute-force JS top-k: small and odd sizes,
// a gallery many chunks long (on the calling thread, and in shared memory split over workers),
// ties, k > n, and every documented error (wrong dimensions, NaN, bad k) leaving the scorer usable.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWasmBackend, score, WasmGallery, WasmScorer, type WasmBackend } from '../../src/backend/wasm/index.js';
import { randomTensor } from '../helpers/fixtures.js';
import { expectCode, expectMatchesBruteForce } from '../helpers/score.js';


describe('WASM score()', () => {
  let scorer: WasmScorer;
  beforeAll(async () => {
    scorer = await WasmScorer.create({ workers: 2 });
  });
  afterAll(() => scorer?.dispose());

  it('matches brute force on a small gallery with odd sizes (n = 103, dim = 13)', async () => {
    const [q, n, dim, k] = [5, 103, 13, 7];
    const queries = randomTensor(q * dim, 1);
    const gallery = randomTensor(n * dim, 2);
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('matches brute force on 20011 x 128 (many chunks, on the calling thread), Q = 3, k = 10', async () => {
    const [q, n, dim, k] = [3, 20011, 128, 10];
    const queries = randomTensor(q * dim, 3);
    const gallery = randomTensor(n * dim, 4);
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('matches brute force with one query (rows in memory order, 16 then 4 floats a step) for odd n and dim: n = 2003, dim = 13, 20 and 128', async () => {
    for (const dim of [13, 20, 128]) {
      const n = 2003;
      const queries = randomTensor(dim, 21 + dim);
      const gallery = randomTensor(n * dim, 22 + dim);
      expectMatchesBruteForce(await scorer.score(queries, 1, gallery, n, dim, 10), queries, 1, gallery, n, dim, 10);
    }
  });

  it('matches brute force with many queries (the matrix-multiply path): Q = 9, dim = 13, n = 1001', async () => {
    const [q, n, dim, k] = [9, 1001, 13, 6];
    const queries = randomTensor(q * dim, 14);
    const gallery = randomTensor(n * dim, 15);
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('matches brute force with Q = 300 (more than one query block) over 5003 x 128, k = 10', async () => {
    const [q, n, dim, k] = [300, 5003, 128, 10];
    const queries = randomTensor(q * dim, 16);
    const gallery = new Float32Array(new SharedArrayBuffer(n * dim * 4));
    gallery.set(randomTensor(n * dim, 17));
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('splits a SharedArrayBuffer gallery over 2 workers that read it in place, with the same answer', async () => {
    const [q, n, dim, k] = [3, 20011, 128, 10];
    const queries = randomTensor(q * dim, 3);
    const gallery = new Float32Array(new SharedArrayBuffer(n * dim * 4));
    gallery.set(randomTensor(n * dim, 4));
    expectMatchesBruteForce(await scorer.score(queries, q, gallery, n, dim, k), queries, q, gallery, n, dim, k);
  });

  it('orders equal scores by the lower gallery index, across worker slices too', async () => {
    // 1M rows: enough work to be split, so rows 17 and 600001 are scored by different workers.
    const [n, dim] = [1_000_000, 4];
    const gallery = new Float32Array(new SharedArrayBuffer(n * dim * 4));
    for (const row of [999_999, 600_001, 17]) gallery.set([1, 0, 0, 0], row * dim);
    const got = await scorer.score(Float32Array.of(1, 0, 0, 0), 1, gallery, n, dim, 3);
    expect([...got.indices]).toEqual([17, 600_001, 999_999]);
    expect([...got.scores]).toEqual([1, 1, 1]);
    const two = await scorer.score(Float32Array.of(1, 0, 0, 0), 1, gallery, n, dim, 2);
    expect([...two.indices]).toEqual([17, 600_001]);
  });

  it('returns min(k, n) results when k exceeds the gallery, and none for an empty gallery', async () => {
    const queries = randomTensor(2 * 8, 7);
    const gallery = randomTensor(3 * 8, 8);
    const got = await scorer.score(queries, 2, gallery, 3, 8, 10);
    expectMatchesBruteForce(got, queries, 2, gallery, 3, 8, 10);
    expect(got.k).toBe(3);
    const none = await scorer.score(queries, 2, new Float32Array(0), 0, 8, 10);
    expect(none.k).toBe(0);
    expect(none.indices.length).toBe(0);
  });

  it('rejects wrong dimensions with DIMENSION_MISMATCH', async () => {
    await expectCode(scorer.score(new Float32Array(127), 1, new Float32Array(128 * 4), 4, 128, 2), 'DIMENSION_MISMATCH', 'queries');
    await expectCode(scorer.score(new Float32Array(128), 1, new Float32Array(512 * 4), 4, 128, 2), 'DIMENSION_MISMATCH', 'gallery');
  });

  it('rejects NaN in a query or a gallery row with BAD_INPUT naming it, and stays usable', async () => {
    const dim = 16;
    const queries = randomTensor(2 * dim, 9);
    const gallery = randomTensor(1000 * dim, 10);
    const badQuery = queries.slice();
    badQuery[dim + 3] = NaN;
    await expectCode(scorer.score(badQuery, 2, gallery, 1000, dim, 5), 'BAD_INPUT', 'query 1');
    const badGallery = gallery.slice();
    badGallery[777 * dim + 5] = NaN;
    await expectCode(scorer.score(queries, 2, badGallery, 1000, dim, 5), 'BAD_INPUT', 'gallery row 777');
    const infGallery = gallery.slice();
    infGallery[12 * dim] = Infinity;
    await expectCode(scorer.score(queries, 2, infGallery, 1000, dim, 5), 'BAD_INPUT', 'gallery row 12');
    // The same check on the workers: a shared gallery large enough to be split.
    const big = new Float32Array(new SharedArrayBuffer(200_000 * dim * 4));
    big.set(randomTensor(200_000 * dim, 13));
    big[150_001 * dim + 2] = NaN;
    await expectCode(scorer.score(queries, 2, big, 200_000, dim, 5), 'BAD_INPUT', 'gallery row 150001');
    // And on the matrix-multiply path (many queries).
    const many = randomTensor(16 * dim, 18);
    await expectCode(scorer.score(many, 16, badGallery, 1000, dim, 5), 'BAD_INPUT', 'gallery row 777');
    expectMatchesBruteForce(await scorer.score(queries, 2, gallery, 1000, dim, 5), queries, 2, gallery, 1000, dim, 5);
  });

  it('rejects k < 1, fractional k and dim < 1 with BAD_INPUT', async () => {
    const g = new Float32Array(8);
    await expectCode(scorer.score(new Float32Array(2), 1, g, 4, 2, 0), 'BAD_INPUT', 'k');
    await expectCode(scorer.score(new Float32Array(2), 1, g, 4, 2, 1.5), 'BAD_INPUT', 'k');
    await expectCode(scorer.score(new Float32Array(0), 1, new Float32Array(0), 4, 0, 1), 'BAD_INPUT', 'dim');
  });

  it('the shared score() function and a backend score the same', async () => {
    const [q, n, dim, k] = [2, 777, 32, 4];
    const queries = randomTensor(q * dim, 11);
    const gallery = randomTensor(n * dim, 12);
    const viaFunction = await score(queries, q, gallery, n, dim, k);
    expectMatchesBruteForce(viaFunction, queries, q, gallery, n, dim, k);
    let backend: WasmBackend | undefined;
    try {
      backend = await createWasmBackend({ workers: 1 });
      const viaBackend = await backend.score(queries, q, gallery, n, dim, k);
      expect([...viaBackend.indices]).toEqual([...viaFunction.indices]);
    } finally {
      await backend?.dispose();
    }
    await expectCode(score(queries, q, gallery, n, dim + 1, k), 'DIMENSION_MISMATCH');
  });

  it('does not keep a program alive: a script that calls score() and never disposes exits', () => {
    const entry = new URL('../../src/backend/wasm/index.ts', import.meta.url).href;
    const script = `import { score } from ${JSON.stringify(entry)};
      const t = await score(Float32Array.of(1, 0), 1, Float32Array.of(0, 1, 1, 0), 2, 2, 1);
      console.log(t.indices[0]);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000, encoding: 'utf8' });
    expect(out.trim()).toBe('1');
  });
});

describe('WasmGallery (resident in linear memory)', () => {
  it('scores in place with the answers of score(), Q = 1, 3 and 9 (dot kernel and matrix multiply), over 20011 x 13', async () => {
    const [n, dim, k] = [20011, 13, 10];
    const gallery = randomTensor(n * dim, 31);
    const g = WasmGallery.create(gallery, n, dim);
    // The gallery holds its own copy: clearing the caller's array afterwards changes nothing.
    const original = gallery.slice();
    gallery.fill(0);
    for (const q of [1, 3, 9]) {
      const queries = randomTensor(q * dim, 32 + q);
      expectMatchesBruteForce(g.score(queries, q, k), queries, q, original, n, dim, k);
    }
    let sum = 0;
    for (const v of original) sum += v;
    expect(Math.abs(g.sumAll() - sum)).toBeLessThan(1e-2);
  });

  it('checks its arguments like score(): wrong lengths, NaN rows, bad k, and a disposed gallery', async () => {
    expect(() => WasmGallery.create(new Float32Array(10), 3, 4)).toThrow(expect.objectContaining({ code: 'DIMENSION_MISMATCH' }));
    const gallery = randomTensor(50 * 8, 41);
    gallery[17 * 8 + 3] = Number.NaN;
    const g = WasmGallery.create(gallery, 50, 8);
    expect(() => g.score(new Float32Array(7), 1, 3)).toThrow(expect.objectContaining({ code: 'DIMENSION_MISMATCH' }));
    expect(() => g.score(randomTensor(8, 42), 1, 0)).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => g.score(randomTensor(8, 42), 1, 3)).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining('gallery row 17') }));
    // The same row found by the matrix-multiply path (9 queries).
    expect(() => g.score(randomTensor(9 * 8, 43), 9, 3)).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining('gallery row 17') }));
    expect(g.score(new Float32Array(0), 0, 3).indices.length).toBe(0);
    g.dispose();
    expect(() => g.score(randomTensor(8, 42), 1, 3)).toThrow(expect.objectContaining({ code: 'WASM_ERROR' }));
  });
});

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

describe('WasmGallery changed in place (append, set, removeSwap)', () => {
  it('scores the rows as they are after appends past its room, overwrites and removals (checked against brute force)', () => {
    const dim = 20;
    let mirror = randomTensor(300 * dim, 51);
    const g = WasmGallery.create(mirror, 300, dim, { capacity: 310 });
    const more = randomTensor(500 * dim, 52);
    g.append(more.subarray(0, 5 * dim));
    g.append(more.subarray(5 * dim), 495); // past the room of 310: the memory grows
    expect(g.capacity).toBeGreaterThanOrEqual(800);
    mirror = concat(mirror, more);
    const rows = () => mirror.length / dim;
    // Overwrite row 7, remove rows 0, 450 and the last one (the last row moves into the hole).
    const v = randomTensor(dim, 53);
    g.set(7, v);
    mirror.set(v, 7 * dim);
    for (const at of [0, 450, -1]) {
      const r = at < 0 ? rows() - 1 : at;
      g.removeSwap(r);
      const last = rows() - 1;
      mirror.copyWithin(r * dim, last * dim, (last + 1) * dim);
      mirror = mirror.slice(0, last * dim);
    }
    expect(g.n).toBe(rows());
    expect([...g.row(7)]).toEqual([...mirror.subarray(7 * dim, 8 * dim)]);
    for (const q of [1, 9]) {
      const queries = randomTensor(q * dim, 54 + q);
      expectMatchesBruteForce(g.score(queries, q, 10), queries, q, mirror, rows(), dim, 10);
    }
    expect(() => g.removeSwap(rows())).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => g.set(0, new Float32Array(dim + 1))).toThrow(expect.objectContaining({ code: 'DIMENSION_MISMATCH' }));
  });
});

describe('WasmPoolGallery (resident in a shared memory, scanned by every worker)', () => {
  let scorer: WasmScorer;
  beforeAll(async () => {
    scorer = await WasmScorer.create({ workers: 2 });
  });
  afterAll(() => scorer?.dispose());

  it('splits Q = 1 and Q = 9 (matrix multiply) over 2 workers with the brute-force answer, before and after changes', async () => {
    // 70001 x 64 = 4.5M multiply-adds per query: above the size that goes to the workers.
    const [n, dim, k] = [70001, 64, 10];
    let mirror = randomTensor(n * dim, 61);
    const g = scorer.upload(mirror, n, dim);
    expect(g.workers).toBe(2);
    const check = async () => {
      for (const q of [1, 9]) {
        const queries = randomTensor(q * dim, 62 + q);
        expectMatchesBruteForce(await g.score(queries, q, k), queries, q, mirror, mirror.length / dim, dim, k);
      }
    };
    await check();
    // Changes made on the calling thread are what the workers read next.
    const added = randomTensor(3000 * dim, 63);
    g.append(added);
    mirror = concat(mirror, added);
    for (const r of [5, 40000]) {
      g.removeSwap(r);
      const last = mirror.length / dim - 1;
      mirror.copyWithin(r * dim, last * dim, (last + 1) * dim);
      mirror = mirror.slice(0, last * dim);
    }
    await check();
    let sum = 0;
    for (const v of mirror) sum += v;
    expect(Math.abs((await g.sumAll()) - sum)).toBeLessThan(1e-1);
    await g.dispose();
    await expectCode(g.score(randomTensor(dim, 1), 1, 1), 'WASM_ERROR');
  });

  it('orders equal scores by the lower index across the workers\' parts, names a NaN row by its number, and refuses changes while a scan is in flight', async () => {
    const [n, dim] = [1_100_000, 4];
    const rows = new Float32Array(n * dim);
    for (const row of [1_099_999, 600_001, 17]) rows.set([1, 0, 0, 0], row * dim);
    const g = scorer.upload(rows, n, dim);
    const pending = g.score(Float32Array.of(1, 0, 0, 0), 1, 3);
    expect(() => g.removeSwap(0)).toThrow(expect.objectContaining({ code: 'WASM_ERROR' }));
    const got = await pending;
    expect([...got.indices]).toEqual([17, 600_001, 1_099_999]);
    expect([...got.scores]).toEqual([1, 1, 1]);
    g.set(900_000, Float32Array.of(Number.NaN, 0, 0, 0));
    await expectCode(g.score(Float32Array.of(1, 0, 0, 0), 1, 3), 'BAD_INPUT', 'gallery row 900000');
    await expectCode(g.score(new Float32Array(3), 1, 3), 'DIMENSION_MISMATCH');
    await g.dispose();
  });
});
