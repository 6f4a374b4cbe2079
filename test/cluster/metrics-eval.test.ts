// Clustering quality metrics against hand-computed values, and `cosface eval cluster` end to end on
// the example gallery plus an ORL subject as PGM (one folder per person) with the real WASM pipeline.
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterQuality } from '../../src/cluster/metrics.js';
import { isCosfaceError } from '../../src/errors.js';
import { evalClusterCommand, type ClusterEvalReport } from '../../src/eval/cluster-eval.js';
import { repoRoot } from '../helpers/fixtures.js';

describe('clusterQuality', () => {
  it('pairwise and BCubed on a worked example', () => {
    // People 0 0 0 1 1 2; predicted groups {0,1}, {2,3,4}, face 5 unclustered.
    const q = clusterQuality([5, 5, 7, 7, 7, -1], [0, 0, 0, 1, 1, 2]);
    // Predicted pairs: (0,1) (2,3) (2,4) (3,4); true pairs: (0,1) (0,2) (1,2) (3,4); both share 2.
    expect(q.pairwise.precision).toBeCloseTo(0.5, 12);
    expect(q.pairwise.recall).toBeCloseTo(0.5, 12);
    expect(q.pairwise.f).toBeCloseTo(0.5, 12);
    // BCubed precision per face: 1, 1, 1/3, 2/3, 2/3, 1; recall: 2/3, 2/3, 1/3, 1, 1, 1.
    expect(q.bcubed.precision).toBeCloseTo(7 / 9, 12);
    expect(q.bcubed.recall).toBeCloseTo(7 / 9, 12);
    expect(q.bcubed.f).toBeCloseTo(7 / 9, 12);
    expect(q.people).toBe(3);
    expect(q.clusters).toBe(3);
    expect(q.clustersOfTwoOrMore).toBe(2);
    expect(q.unclustered).toBe(1);
    // {2,3,4} mixes two people; person 0 is split over two groups, person 1 is not.
    expect(q.impureClusterFraction).toBeCloseTo(0.5, 12);
    expect(q.splitPersonFraction).toBeCloseTo(0.5, 12);
  });

  it('a perfect clustering scores 1; leaving everyone unclustered has no recall', () => {
    const perfect = clusterQuality([3, 3, 9, -1], [0, 0, 1, 2]);
    expect([perfect.pairwise.f, perfect.bcubed.f, perfect.impureClusterFraction, perfect.splitPersonFraction]).toEqual([1, 1, 0, 0]);
    const none = clusterQuality([-1, -1, -1, -1], [0, 0, 1, 1]);
    expect(none.pairwise.precision).toBe(1);
    expect(none.pairwise.recall).toBe(0);
    expect(none.pairwise.f).toBe(0);
    expect(none.bcubed.recall).toBeCloseTo(0.5, 12);
    expect(none.splitPersonFraction).toBe(1);
    // Everything in one group: all true pairs found, precision = true pairs / all pairs.
    const one = clusterQuality([0, 0, 0, 0], [0, 0, 1, 1]);
    expect(one.pairwise.recall).toBe(1);
    expect(one.pairwise.precision).toBeCloseTo(2 / 6, 12);
    expect(one.bcubed.precision).toBeCloseTo(0.5, 12);
  });

  it('rejects predictions and truth of different lengths', () => {
    expect(() => clusterQuality([0, 1], [0])).toThrow(/2 predictions for 1 true labels/);
  });
});

describe('cosface eval cluster', () => {
  const run = async (args: string[]): Promise<{ out: string; err: string }> => {
    const io = { out: '', err: '' };
    await evalClusterCommand(args, { out: (s) => void (io.out += s), err: (s) => void (io.err += s), errIsTTY: false });
    return io;
  };

  /** Three people of the example gallery (5 photos) plus one ORL subject as three binary PGMs. */
  async function labelledFolder(): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'cosface-eval-cluster-'));
    const data = join(dir, 'people');
    for (const person of ['alex_lacamoire', 'biden', 'obama']) cpSync(join(repoRoot, 'examples/gallery', person), join(data, person), { recursive: true });
    mkdirSync(join(data, 'orl_s1'));
    for (const shot of ['1', '2', '6']) {
      const { data: grey, info } = await sharp(join(repoRoot, 'test/fixtures/orl/s1', `${shot}.png`)).greyscale().raw().toBuffer({ resolveWithObject: true });
      writeFileSync(join(data, 'orl_s1', `${shot}.pgm`), Buffer.concat([Buffer.from(`P5\n${info.width} ${info.height}\n255\n`), grey.subarray(0, info.width * info.height)]));
    }
    return data;
  }

  it('clusters a labelled folder (JPEG and PGM) into its people, and reuses the cache', async () => {
    const data = await labelledFolder();
    const cache = join(data, '..', 'cache.json');
    const first = await run(['--data', data, '--backend', 'wasm', '--workers', '2', '--cache', cache, '--json']);
    const r = JSON.parse(first.out) as ClusterEvalReport;
    expect(r.images).toBe(8);
    expect(r.people).toBe(4);
    expect(r.runs).toHaveLength(1);
    expect(r.runs[0]!.algorithm).toBe('average');
    // Three people with two or three photos each, one with a single photo: all found, none mixed.
    expect(r.runs[0]!.pairwise.f).toBe(1);
    expect(r.runs[0]!.clustersOfTwoOrMore).toBe(3);
    expect(r.runs[0]!.unclustered).toBe(1);
    expect(existsSync(cache)).toBe(true);
    // From the cache: no pipeline, same answer, and every algorithm in the text report.
    const again = await run(['--data', data, '--cache', cache, '--algorithm', 'all', '--threshold', '0.4,0.5']);
    expect(again.err).not.toContain('backend:');
    expect(again.out).toContain('8 images of 4 people');
    for (const a of ['average', 'union-find', 'dbscan', 'chinese-whispers']) expect(again.out).toContain(`${a}, threshold 0.5`);
    expect(again.out).toMatch(/average, threshold 0\.4, k 16 \([\d.]+ s\):\n {2}pairwise {2}precision 1\.0000 {2}recall 1\.0000 {2}F 1\.0000/);
    // A library that grows: half the photos first, the rest in two imports, same people.
    const grown = JSON.parse((await run(['--data', data, '--cache', cache, '--incremental', '0.5', '--batches', '2', '--json'])).out) as ClusterEvalReport;
    expect(grown.runs[0]!.incremental).toEqual({ first: 0.5, batches: 2 });
    expect(grown.runs[0]!.pairwise.f).toBe(1);
    expect(grown.runs[0]!.clustersOfTwoOrMore).toBe(3);
  });

  it('bad input: a clear error and nothing written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cosface-eval-cluster-bad-'));
    const expectBad = async (args: string[], message: RegExp, code = 'BAD_INPUT') => {
      let err: unknown;
      try {
        await run(args);
      } catch (e) {
        err = e;
      }
      expect(isCosfaceError(err, code as 'BAD_INPUT')).toBe(true);
      expect((err as Error).message).toMatch(message);
    };
    await expectBad([], /--data <dir> is required/);
    await expectBad(['--data', join(dir, 'missing')], /is not a folder/);
    mkdirSync(join(dir, 'empty'));
    await expectBad(['--data', join(dir, 'empty')], /no images/);
    await expectBad(['--data', dir, '--algorithm', 'kmeans'], /unknown algorithm 'kmeans'/);
    await expectBad(['--data', dir, '--threshold', '1.5'], /--threshold must be cosines/);
    await expectBad(['--data', dir, '--incremental', '1'], /--incremental must be a fraction/);
    await expectBad(['--data', dir, '--backend', 'cuda'], /unknown backend/, 'UNKNOWN_BACKEND');
    mkdirSync(join(dir, 'people/a'), { recursive: true });
    copyFileSync(join(repoRoot, 'examples/gallery/obama/obama.jpg'), join(dir, 'people/a/1.jpg'));
    writeFileSync(join(dir, 'cache.json'), '{ not json');
    await expectBad(['--data', join(dir, 'people'), '--cache', join(dir, 'cache.json')], /not valid JSON/);
    expect(readdirSync(dir).sort()).toEqual(['cache.json', 'empty', 'people']);
  });
});
