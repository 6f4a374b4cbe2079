// `cosface bench cluster` at a small size: the report's parts are there and the clustering of the
// generator's identities is right (the benchmark is no use if its clustering is wrong).
import { describe, expect, it } from 'vitest';
import { benchCluster, benchClusterCommand, photosOfFaces } from '../../src/bench/cluster-bench.js';
import { isCosfaceError } from '../../src/errors.js';

describe('bench cluster', () => {
  it('photos of one to three faces cover every face once', () => {
    const { photoOf, photos } = photosOfFaces(1000, 3);
    const sizes = new Map<number, number>();
    for (const p of photoOf) sizes.set(p, (sizes.get(p) ?? 0) + 1);
    expect(sizes.size).toBe(photos);
    expect(Math.max(...sizes.values())).toBe(3);
    expect(Math.min(...sizes.values())).toBe(1);
    expect(photos).toBeGreaterThan(400);
    expect(photos).toBeLessThan(600);
  });

  it('reports graph and clustering times, memory, and finds the generated identities', async () => {
    const lines: string[] = [];
    const r = await benchCluster({ n: 3000, algorithms: ['average', 'union-find'], workers: 2 }, (l) => lines.push(l));
    expect(r.rows.map((x) => x.algorithm)).toEqual(['average', 'union-find']);
    const avg = r.rows[0]!;
    expect(avg.identities).toBe(300);
    expect(avg.pairwiseF).toBeGreaterThan(0.98);
    expect(avg.bcubedF).toBeGreaterThan(0.98);
    // Single linkage chains the 300 identities together at the same threshold.
    expect(r.rows[1]!.pairwiseF).toBeLessThan(avg.pairwiseF);
    expect(r.knnSeconds).toBeGreaterThan(0);
    expect(r.knnCpuSeconds).toBeGreaterThan(0);
    expect(r.peakRssMiB).toBeGreaterThan(10);
    expect(lines.some((l) => l.startsWith('k-NN graph (k 16, M 16, efConstruction 100, ef 64, 2 workers, shards)'))).toBe(true);
  });

  it('rejects bad options with BAD_INPUT', async () => {
    for (const args of [['--n', '0'], ['--algorithm', 'kmeans'], ['--strategy', 'both'], ['--threshold', '2']]) {
      let err: unknown;
      try {
        await benchClusterCommand(args);
      } catch (e) {
        err = e;
      }
      expect(isCosfaceError(err, 'BAD_INPUT')).toBe(true);
    }
  });
});
