// The score benchmark on small galleries: every (backend, N, dim, Q) cell measured with consistent
// units (GB/s from the gallery bytes, GFLOP/s from 2 Q N dim, ratio to the read limit), the read
// loops beside them, the markdown table and JSON of benchScoreCommand, and its argument checks.
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

  it('measures wasm cells beside the JS and WASM read loops, in consistent units', async () => {
    const r = await benchScore({ sizes: [2000, 5000], dims: [16], queries: [1, 3], k: 10, runs: 2, backends: ['wasm'] });
    expect(r.rows.map((x) => [x.backend, x.gallery, x.n, x.dim, x.q])).toEqual([
      ['wasm', 'array', 2000, 16, 1], ['wasm', 'resident', 2000, 16, 1], ['wasm', 'array', 2000, 16, 3], ['wasm', 'resident', 2000, 16, 3],
      ['wasm', 'array', 5000, 16, 1], ['wasm', 'resident', 5000, 16, 1], ['wasm', 'array', 5000, 16, 3], ['wasm', 'resident', 5000, 16, 3],
    ]);
    for (const row of r.rows) {
      expect(row.runsMs.length).toBe(2);
      expect(row.ms).toBeGreaterThan(0);
      expect(row.gbPerS).toBeCloseTo((row.n * row.dim * 4) / row.ms / 1e6, 6);
      expect(row.gflops).toBeCloseTo((2 * row.q * row.n * row.dim) / row.ms / 1e6, 6);
      expect(row.ratio).toBeCloseTo(row.gbPerS / row.limit.gbPerS, 6);
      // The limit is the faster of the two read loops of that gallery.
      const loops = r.readLoops.find((l) => l.backend === 'wasm' && l.n === row.n && l.dim === row.dim)!.loops;
      expect(loops.map((l) => l.name)).toEqual(['JS loop', 'WASM loop']);
      expect(row.limit.gbPerS).toBe(Math.max(...loops.map((l) => l.gbPerS)));
    }
    expect(r.env.loadavg.length).toBe(3);
    const md = formatScoreBench(r);
    expect(md).toContain('| backend | gallery | N | dim | Q | ms | GB/s | GFLOP/s | read limit GB/s | of limit |');
    expect(md).toContain('| wasm | array | 5,000 | 16 | 3 |');
    expect(md).toContain('| wasm | resident | 5,000 | 16 | 3 |');
    expect(md).toContain('Load average');
  });

  it('skips galleries above the size limit, saying so', async () => {
    const r = await benchScore({ sizes: [1000, 3000], dims: [8], queries: [1], runs: 1, backends: ['wasm'], maxGalleryBytes: 1000 * 8 * 4 });
    expect(r.rows.map((x) => x.n)).toEqual([1000, 1000]);
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
    expect(out).toContain('| wasm | array | 1,000 | 8 | 1 |');
    await expect(benchScoreCommand({ json: true, sizes: [0] })).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_INPUT'));
    await expect(benchScoreCommand({ json: true, dims: [] })).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_INPUT'));
    await expect(benchScoreCommand({ json: true, backends: ['cuda' as 'wasm'] })).rejects.toSatisfy((e) => isCosfaceError(e, 'UNKNOWN_BACKEND'));
  });
});
