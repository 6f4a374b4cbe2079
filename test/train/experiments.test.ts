// The experiment commands' building blocks on the 16 aligned fixture faces (8 people x 2): the
// margin sweep yields a row per margin beside the frozen-feature baselines, an identity-initialised
// head starts exactly at the centred features, and the toy figure renders to a PNG.
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { applyHead, trainHead } from '../../src/train/head.js';
import { marginSweep, sweepTable } from '../../src/train/margin-sweep.js';
import type { FeatureSet } from '../../src/train/orl.js';
import { toySvg, trainToyPanels } from '../../src/train/toy-figure.js';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/aligned/embeddings.json', import.meta.url), 'utf8')) as { files: string[]; embeddings: Record<string, number[]> };
const people = [...new Set(fixture.files.map((f) => f.replace(/_\d+\.png$/, '')))];
const n = fixture.files.length;
const set: FeatureSet = { source: 'fixture', dim: 128, features: new Float32Array(n * 128), labels: new Int32Array(n), mirrored: new Uint8Array(n), shots: new Int32Array(n) };
fixture.files.forEach((f, i) => {
  set.features.set(fixture.embeddings[f]!, i * 128);
  set.labels[i] = people.indexOf(f.replace(/_\d+\.png$/, ''));
});

describe('experiments', () => {
  it('margin sweep: baselines, then Softmax and one row per m, with accuracies in range', async () => {
    const res = await marginSweep(set, { margins: [0, 0.35], s: 30, dOut: 32, epochs: 3, batchSize: 8, lr: 0.05, lrSteps: [], weightDecay: 5e-4, seeds: 1, folds: 2, softmax: true, init: 'random' });
    expect(res.trainClasses).toBe(4);
    expect(res.rows.map((r) => r.label)).toEqual(['no head (the frozen features)', 'no head, centred by the training mean', 'Softmax', 'LMCL m = 0 (NSL)', 'LMCL m = 0.35']);
    for (const r of res.rows) {
      expect(r.verification).toBeGreaterThanOrEqual(0);
      expect(r.verification).toBeLessThanOrEqual(100);
      expect(r.rank1).toBeGreaterThanOrEqual(0);
    }
    // The frozen embeddings of these aligned faces are good: leave-one-out rank-1 within each 4-person fold is perfect.
    expect(res.rows[0]!.rank1).toBe(100);
    expect(sweepTable(res.rows).split('\n').length).toBe(2 + res.rows.length);
  });

  it('an identity-initialised head starts at the centred, normalised features', async () => {
    const t = await trainHead(set.features, set.labels, 128, { loss: { kind: 'lmcl', s: 30, m: 0.35 }, layers: [128], epochs: 1, batchSize: 16, lr: 1e-12, init: 'identity' });
    const e = applyHead(t.head, set.features, n);
    for (let i = 0; i < n; i++) {
      const c = Array.from(set.features.subarray(i * 128, (i + 1) * 128), (v, k) => v - t.head.inputMean[k]!);
      const nrm = Math.hypot(...c);
      for (let k = 0; k < 128; k += 17) expect(e[i * 128 + k]).toBeCloseTo(c[k]! / nrm, 5);
    }
  });

  it('toy figure: three panels of 2-D features drawn as SVG and PNG', async () => {
    const panels = await trainToyPanels(set, 4, { s: 8, m: 0.2, epochs: 20, lr: 0.1, seed: 1 });
    expect(panels.map((p) => p.loss.kind)).toEqual(['softmax', 'nsl', 'lmcl']);
    for (const p of panels) expect(p.points.length).toBe(8 * 2);
    const svg = toySvg(panels, 'test');
    expect((svg.match(/<circle /g) ?? []).length).toBeGreaterThanOrEqual(3 * 2 * 8);
    const png = await sharp(Buffer.from(svg)).png().toBuffer({ resolveWithObject: true });
    expect([png.info.width, png.info.height]).toEqual([900, 688]);
  });
});

describe('train head command', () => {
  it('trains on a feature file, saves a head that loads, and refuses unknown options', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { saveFeatures } = await import('../../src/train/orl.js');
    const { loadHead } = await import('../../src/train/head.js');
    const { trainHeadCommand } = await import('../../src/train/train-head.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'cosface-train-'));
    // Identities numbered sparsely in the file (10, 20, ...): the command renumbers them.
    saveFeatures(path.join(dir, 'f.json'), { ...set, labels: set.labels.map((l) => 10 * (l + 1)) });
    const lines: string[] = [];
    const t = await trainHeadCommand(['--features', path.join(dir, 'f.json'), '--out', path.join(dir, 'h.json'), '--dim', '16', '--epochs', '2', '--batch', '8'], (s) => lines.push(s));
    expect(t.classes).toBe(8);
    expect(loadHead(path.join(dir, 'h.json')).dOut).toBe(16);
    expect(lines.at(-1)).toMatch(/saved 128 -> 16 head \(8 identities, 16 rows\)/);
    await expect(trainHeadCommand(['--features', path.join(dir, 'f.json'), '--out', path.join(dir, 'h.json'), '--bogus', '1'])).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });
});
