// The score benchmark on small galleries: every (backend, N, dim, Q) cell measured with consistent
// units (GB/s from the gallery bytes, GFLOP/s from 2 Q N dim, ratio to the read limit), the read
// loops beside them, the markdown table and JSON of benchScoreCommand, and its argument checks.
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { benchScore, benchScoreCommand, formatScoreBench, unitVectors } from '../../src/bench/score-bench.js';
import { isCosfaceError } from '../../src/errors.js';
import { skipWebGpu } from '../helpers/webgpu.js';

describe('score benchmark', () => {
  it('makes unit vectors', () => {
    const v = unitVectors(3, 7, 1);
    for (let r = 0; r < 3; r++) {
      let s = 0;
      for (let d = 0; d < 7; d++) s += v[r * 7 + d]! ** 2;
      expect(Math.abs(s - 1)).toBeLessThan(1e-6);
    }
  });

  it('measures wasm cells beside the JS and WASM read loops (one thread and the pool), in consistent units', async () => {
    // 70,000 x 64 x Q = 1 is large enough to split over the workers; 2,000 x 64 is not.
    const r = await benchScore({ sizes: [2000, 70_000], dims: [64], queries: [1, 3], k: 10, runs: 2, backends: ['wasm'], workers: 2 });
    const cells = (n: number, q: number, pool: number) => [
      ['wasm', 'array', 1, n, 64, q], ['wasm', 'resident', 1, n, 64, q], ['wasm', 'pool', pool, n, 64, q],
      // A store's exact scan (one probe): over its resident rows and over a plain array.
      ...(q === 1 ? [['wasm', 'store', pool === 1 ? 1 : availableParallelism(), n, 64, q], ['wasm', 'store-array', pool === 1 ? 1 : availableParallelism(), n, 64, q]] : []),
    ];
    expect(r.rows.map((x) => [x.backend, x.gallery, x.threads, x.n, x.dim, x.q])).toEqual([...cells(2000, 1, 1), ...cells(2000, 3, 1), ...cells(70_000, 1, 2), ...cells(70_000, 3, 2)]);
    for (const row of r.rows) {
      expect(row.runsMs.length).toBe(2);
      expect(row.ms).toBeGreaterThan(0);
      expect(row.gbPerS).toBeCloseTo((row.n * row.dim * 4) / row.ms / 1e6, 6);
      expect(row.gflops).toBeCloseTo((2 * row.q * row.n * row.dim) / row.ms / 1e6, 6);
      expect(row.ratio).toBeCloseTo(row.gbPerS / row.limit.gbPerS, 6);
      // The limit is the fastest of the read loops of that gallery.
      const loops = r.readLoops.find((l) => l.backend === 'wasm' && l.n === row.n && l.dim === row.dim)!.loops;
      expect(loops.map((l) => l.name)).toEqual(['JS loop', 'WASM loop', 'WASM loop, 2 workers']);
      expect(row.limit.gbPerS).toBe(Math.max(...loops.map((l) => l.gbPerS)));
    }
    expect(r.env.loadavg.length).toBe(3);
    const md = formatScoreBench(r);
    expect(md).toContain('| backend | gallery | threads | N | dim | Q | ms | GB/s | GFLOP/s | read limit GB/s | of limit | per-query gain |');
    expect(md).toContain('| wasm | array | 1 | 70,000 | 64 | 3 |');
    expect(md).toContain('| wasm | resident | 1 | 70,000 | 64 | 3 |');
    expect(md).toContain('| wasm | pool | 2 | 70,000 | 64 | 3 |');
    // The per-query gain of Q = 3: Q = 1's time x 3 over Q = 3's, same gallery kind.
    const one = r.rows.find((x) => x.gallery === 'pool' && x.n === 70_000 && x.q === 1)!;
    const three = r.rows.find((x) => x.gallery === 'pool' && x.n === 70_000 && x.q === 3)!;
    expect(md).toContain(`| ${((one.ms * 3) / three.ms).toFixed(1)}x |`);
    expect(md).toContain('Load average');
  });

  it('skips galleries above the size limit, saying so', async () => {
    const r = await benchScore({ sizes: [1000, 3000], dims: [8], queries: [1], runs: 1, backends: ['wasm'], maxGalleryBytes: 1000 * 8 * 4, store: false });
    expect(r.rows.map((x) => x.n)).toEqual([1000, 1000, 1000]);
    expect(r.skipped.join('\n')).toContain('N=3000 dim=8');
  });

  it.skipIf(skipWebGpu)('measures webgpu cells beside the WGSL read pass', async () => {
    const r = await benchScore({ sizes: [3000], dims: [32], queries: [1, 5], runs: 1, backends: ['webgpu'] });
    expect(r.rows.map((x) => [x.backend, x.gallery, x.q])).toEqual([['webgpu', 'resident', 1], ['webgpu', 'resident', 5]]);
    expect(r.rows.every((x) => x.limit.name === 'WGSL read pass' && x.gbPerS > 0)).toBe(true);
    expect(r.env.adapter).toBeTruthy();
  });

  it('benchScoreCommand prints JSON or markdown and checks its arguments', async () => {
    let out = '';
    const r = await benchScoreCommand({ json: true, sizes: [1000], dims: [8], queries: [2], runs: 1, backends: ['wasm'], write: (t) => (out += t) });
    expect(JSON.parse(out).rows.length).toBe(r.rows.length);
    out = '';
    await benchScoreCommand({ json: false, sizes: [1000], dims: [8], queries: [1], runs: 1, backends: ['wasm'], write: (t) => (out += t) });
    expect(out).toContain('| wasm | array | 1 | 1,000 | 8 | 1 |');
    await expect(benchScoreCommand({ json: true, sizes: [0] })).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_INPUT'));
    await expect(benchScoreCommand({ json: true, dims: [] })).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_INPUT'));
    await expect(benchScoreCommand({ json: true, backends: ['cuda' as 'wasm'] })).rejects.toSatisfy((e) => isCosfaceError(e, 'UNKNOWN_BACKEND'));
  });
});
