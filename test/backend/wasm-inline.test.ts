// The in-process WASM backend (no workers, for workerd and single-isolate runtimes) against the
// worker-pool backend and the references: MobileFaceNet embeddings of the 16 aligned fixtures,
// exact top-k, and the alignment warp must come out the same.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWasmBackend, type WasmBackend } from '../../src/backend/wasm/index.js';
import { createInlineWasmBackend, type InlineWasmBackend } from '../../src/backend/wasm/wasm-inline.js';
import { loadWasmModule } from '../../src/backend/wasm/wasm-kernels.js';
import { isCosfaceError } from '../../src/errors.js';
import { appendL2Normalize, optimizeGraph } from '../../src/graph/passes.js';
import { readTflite } from '../../src/import/tflite/read-tflite.js';
import { warpToCrop } from '../../src/pipeline/align.js';
import { scoreExactTs } from '../../src/store/exact-scorer.js';
import { loadAlignedFixtures, maxAbsDiff, modelPath, mulberry32 } from '../helpers/fixtures.js';

describe('the in-process WASM backend', () => {
  let inline: InlineWasmBackend;
  let pool: WasmBackend;
  beforeAll(async () => {
    inline = createInlineWasmBackend(loadWasmModule('simd'));
    pool = await createWasmBackend({ workers: 2, simd: 'simd' });
  });
  afterAll(async () => {
    await inline?.dispose();
    await pool?.dispose();
  });

  it('embeds the 16 aligned fixtures as the reference does (1e-4) and as the worker pool does (1e-6)', async () => {
    const fx = await loadAlignedFixtures();
    const graph = readTflite(new Uint8Array(readFileSync(modelPath)));
    optimizeGraph(graph);
    appendL2Normalize(graph);
    const a = await inline.compile(graph);
    const b = await pool.compile(graph);
    const ea = await a.run(fx.crops, 16);
    const eb = await b.run(fx.crops, 16);
    expect(maxAbsDiff(ea, fx.reference)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(ea, eb)).toBeLessThanOrEqual(1e-6);
    a.dispose();
    b.dispose();
    await expect(a.run(fx.crops.subarray(0, 112 * 112 * 3), 1)).rejects.toThrow(/disposed/);
  });

  it('scores exactly like the TypeScript reference (same rows, scores within 1e-5) and rejects bad input with the same codes', async () => {
    const rnd = mulberry32(7);
    const dim = 128;
    const n = 3000;
    const q = 9;
    const gallery = Float32Array.from({ length: n * dim }, () => rnd() * 2 - 1);
    const queries = Float32Array.from({ length: q * dim }, () => rnd() * 2 - 1);
    const got = inline.scoreSync(queries, q, gallery, n, dim, 10);
    const want = await scoreExactTs(queries, q, gallery, n, dim, 10);
    expect([...got.indices]).toEqual([...want.indices]);
    expect(maxAbsDiff(got.scores, want.scores)).toBeLessThanOrEqual(1e-5);
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isCosfaceError(e) ? e.code : 'other';
      }
      return 'none';
    };
    expect(codeOf(() => inline.scoreSync(queries.subarray(1), q, gallery, n, dim, 10))).toBe('DIMENSION_MISMATCH');
    const nan = queries.slice();
    nan[5] = NaN;
    expect(codeOf(() => inline.scoreSync(nan, q, gallery, n, dim, 10))).toBe('BAD_INPUT');
  });

  it('warps crops exactly as warpToCrop does', async () => {
    const rnd = mulberry32(3);
    const img = { width: 64, height: 48, data: Uint8Array.from({ length: 64 * 48 * 3 }, () => Math.floor(rnd() * 256)) };
    const transforms = [
      { a: 0.5, b: 0.1, tx: 10, ty: 5 },
      { a: 0.9, b: -0.2, tx: 40, ty: 30 },
    ];
    const got = await inline.warp(img, transforms, 16, 16);
    for (let i = 0; i < 2; i++) {
      const ref = warpToCrop(img, transforms[i]!, 16, 16);
      expect(maxAbsDiff(got.subarray(i * 16 * 16 * 3, (i + 1) * 16 * 16 * 3), ref)).toBeLessThanOrEqual(1e-4);
    }
  });
});
