// The LFW protocol's arithmetic: pair-list parsing, thresholds chosen on the other folds only,
// accuracy and spread, TAR at FAR 1e-3 with its resolution note, and the ROC image.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { bestThreshold, lfwFolds, lfwJson, parseLfwPairs, rocSvg, scoreLfw, tarAtFar, type LfwImageEmbedding, type LfwPair } from '../../src/eval/lfw.js';

describe('LFW protocol', () => {
  it('parses fold,img_a,img_b,same and names the bad line', () => {
    const pairs = parseLfwPairs('fold,img_a,img_b,same\n1,a.jpg,b.jpg,1\n2,c.jpg,d.jpg,0\n');
    expect(pairs).toEqual([{ fold: 1, a: 'a.jpg', b: 'b.jpg', same: true }, { fold: 2, a: 'c.jpg', b: 'd.jpg', same: false }]);
    let err: unknown;
    try {
      parseLfwPairs('fold,img_a,img_b,same\n1,a.jpg,b.jpg,yes\n', 'p.csv');
    } catch (e) {
      err = e;
    }
    expect(isCosfaceError(err, 'BAD_INPUT')).toBe(true);
    expect((err as Error).message).toContain('p.csv line 2');
  });

  it('picks the accuracy-maximising threshold between scores', () => {
    expect(bestThreshold([0.1, 0.2, 0.6, 0.7], [false, false, true, true])).toBeCloseTo(0.4, 10);
    // One overlap: the best threshold still separates 3 of 4.
    const t = bestThreshold([0.1, 0.5, 0.4, 0.8], [false, false, true, true]);
    expect(t > 0.1 && t < 0.8).toBe(true);
  });

  it("chooses each fold's threshold on the other folds only", () => {
    // Fold 1 is separable at 0.5; fold 2 at 0.3. Trained on fold 2, fold 1 is tested at ~0.3.
    const pairs: LfwPair[] = [];
    const scores: number[] = [];
    const add = (fold: number, s: number, same: boolean) => { pairs.push({ fold, a: `${pairs.length}a`, b: `${pairs.length}b`, same }); scores.push(s); };
    for (const s of [0.6, 0.7, 0.8]) add(1, s, true);
    for (const s of [0.35, 0.4, 0.1]) add(1, s, false); // 0.35 and 0.4 are above fold 2's threshold
    for (const s of [0.32, 0.55, 0.9]) add(2, s, true); // at fold 1's 0.5, 0.32 is missed
    for (const s of [0.0, 0.1, 0.28]) add(2, s, false);
    const folds = lfwFolds(pairs, scores);
    expect(folds[0]!.threshold).toBeGreaterThan(0.28);
    expect(folds[0]!.threshold).toBeLessThan(0.32);
    expect(folds[0]!.accuracy).toBeCloseTo(100 * 4 / 6, 6);
    expect(folds[1]!.threshold).toBeGreaterThan(0.4);
    expect(folds[1]!.accuracy).toBeCloseTo(100 * 5 / 6, 6);
  });

  it('says when the impostor pairs cannot resolve FAR = 1e-3', () => {
    const pairs: LfwPair[] = [];
    const scores: number[] = [];
    for (let i = 0; i < 900; i++) { pairs.push({ fold: 1, a: 'x', b: 'y', same: false }); scores.push(i / 3000); }
    for (let i = 0; i < 900; i++) { pairs.push({ fold: 1, a: 'x', b: 'y', same: true }); scores.push(0.2 + i / 1000); }
    const r = tarAtFar(pairs, scores, 1e-3);
    // Max impostor 0.2997: genuine scores above it are 0.2 + i/1000 > 0.2997 -> i >= 100.
    expect(r.tar).toBeCloseTo(800 / 900, 6);
    expect(r.note).toMatch(/cannot resolve/);
    expect(r.note).toContain('900 impostor pairs');
  });

  it('scores embeddings into the JSON the CLI prints and writes a ROC image', async () => {
    const unit = (angle: number) => { const v = new Float32Array(128); v[0] = Math.cos(angle); v[1] = Math.sin(angle); return v; };
    const emb = new Map<string, LfwImageEmbedding>();
    const put = (name: string, angle: number, source: 'face' | 'fallback' = 'face') => emb.set(name, { embedding: unit(angle), source, landmarks: [], width: 250, height: 250 });
    const pairs: LfwPair[] = [];
    for (let f = 1; f <= 3; f++) {
      for (let i = 0; i < 10; i++) {
        put(`p${f}_${i}a`, i); put(`p${f}_${i}b`, i + 0.3 + 0.02 * f, f === 3 && i === 0 ? 'fallback' : 'face');
        pairs.push({ fold: f, a: `p${f}_${i}a`, b: `p${f}_${i}b`, same: true });
        put(`n${f}_${i}a`, i + 100); put(`n${f}_${i}b`, i + 101.5);
        pairs.push({ fold: f, a: `n${f}_${i}a`, b: `n${f}_${i}b`, same: false });
      }
    }
    const { scores, report } = scoreLfw(pairs, emb);
    expect(scores.length).toBe(60);
    expect(report.accuracy).toBe(100);
    expect(report.std).toBe(0);
    expect(report.noFace).toMatchObject({ count: 1, images: ['p3_0b'] });
    const json = lfwJson(report);
    expect(Object.keys(json).sort()).toEqual(['accuracy', 'folds', 'noFace', 'pairs', 'std', 'tarAtFar1e3']);
    expect(json.folds.map((f) => f.pairs).reduce((a, b) => a + b, 0)).toBe(60);
    for (const f of json.folds) expect(f.threshold).toBeGreaterThan(-1);
    expect(json.pairs).toBe(60);
    const dir = mkdtempSync(join(tmpdir(), 'cosface-roc-'));
    const png = join(dir, 'roc.png');
    await sharp(Buffer.from(rocSvg(pairs, scores, 'test'))).png().toFile(png);
    const meta = await sharp(readFileSync(png)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 640, 480]);
  });
});
