// Alignment geometry (a known similarity is recovered and undone by the warp) and the quality
// score (monotonic in blur, in face size and in pose).
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { alignFace, applySimilarity, ARCFACE_TEMPLATE_112, fitSimilarity, invertSimilarity, warpToCrop, type Point, type Similarity } from '../../src/pipeline/align.js';
import type { RgbImage } from '../../src/pipeline/decode.js';
import { faceQuality, laplacianVariance } from '../../src/pipeline/quality.js';

const crop112 = async (file: string): Promise<RgbImage> => {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
};

function similarity(scale: number, angleDeg: number, tx: number, ty: number): Similarity {
  const t = (angleDeg * Math.PI) / 180;
  return { a: scale * Math.cos(t), b: scale * Math.sin(t), tx, ty };
}

describe('fitSimilarity', () => {
  it('recovers a known rotation, scale and translation from five points', () => {
    const m = similarity(2.7, -23, 140.5, -31.25);
    const dst = ARCFACE_TEMPLATE_112.map((p) => applySimilarity(m, p));
    const fit = fitSimilarity(ARCFACE_TEMPLATE_112, dst);
    expect(fit.a).toBeCloseTo(m.a, 10);
    expect(fit.b).toBeCloseTo(m.b, 10);
    expect(fit.tx).toBeCloseTo(m.tx, 8);
    expect(fit.ty).toBeCloseTo(m.ty, 8);
    const back = invertSimilarity(fit);
    const p = applySimilarity(back, applySimilarity(fit, [3, 4]));
    expect(p[0]).toBeCloseTo(3, 10);
    expect(p[1]).toBeCloseTo(4, 10);
  });

  it('is the least-squares fit: noise moves it little and it beats a perturbed transform', () => {
    const m = similarity(1.3, 12, 5, 7);
    const noise = [[0.4, -0.2], [-0.3, 0.1], [0.2, 0.5], [-0.1, -0.4], [0.3, 0.2]];
    const dst = ARCFACE_TEMPLATE_112.map((p, i) => { const q = applySimilarity(m, p); return [q[0] + noise[i]![0]!, q[1] + noise[i]![1]!] as Point; });
    const fit = fitSimilarity(ARCFACE_TEMPLATE_112, dst);
    const err = (s: Similarity) => ARCFACE_TEMPLATE_112.reduce((e, p, i) => { const q = applySimilarity(s, p); return e + (q[0] - dst[i]![0]) ** 2 + (q[1] - dst[i]![1]) ** 2; }, 0);
    for (const d of [{ a: 1e-3 }, { b: 1e-3 }, { tx: 0.05 }, { ty: -0.05 }]) expect(err(fit)).toBeLessThan(err({ ...fit, ...Object.fromEntries(Object.entries(d).map(([k, v]) => [k, fit[k as keyof Similarity] + v])) }));
    expect(Math.abs(Math.hypot(fit.a, fit.b) - 1.3)).toBeLessThan(0.01);
  });
});

describe('alignFace', () => {
  it('undoes a known similarity: a face placed rotated and scaled comes back as the original crop', async () => {
    const face = await crop112('test/fixtures/aligned/Aaron_Sorkin_0001.png');
    // Place the aligned face into a 400x300 "photo", rotated 25 degrees and scaled 2.2x.
    const toPhoto = similarity(2.2, 25, 190, 20);
    const photoF = warpToCrop(face, invertSimilarity(toPhoto), 400, 300, { supersample: 1 });
    const photo: RgbImage = { width: 400, height: 300, data: Uint8Array.from(photoF, (v) => Math.round(v)) };
    // The template points in that photo (template uses pixel centres at integers).
    const landmarks = ARCFACE_TEMPLATE_112.map((p) => applySimilarity(toPhoto, [p[0] + 0.5, p[1] + 0.5]));
    const { crop, toAligned } = alignFace(photo, landmarks);
    for (const [k, p] of landmarks.entries()) {
      const q = applySimilarity(toAligned, p);
      expect(Math.hypot(q[0] - ARCFACE_TEMPLATE_112[k]![0] - 0.5, q[1] - ARCFACE_TEMPLATE_112[k]![1] - 0.5)).toBeLessThan(1e-6);
    }
    const meanDiff = (c: Float32Array) => {
      let diff = 0, n = 0;
      for (let y = 8; y < 104; y++) for (let x = 8; x < 104; x++) for (let ch = 0; ch < 3; ch++) {
        diff += Math.abs(c[(y * 112 + x) * 3 + ch]! - face.data[(y * 112 + x) * 3 + ch]!);
        n++;
      }
      return diff / n;
    };
    // Two resamplings (up 2.2x, rotated, then back) soften the crop a little (~5 grey levels);
    // landmarks half a pixel off already do visibly worse, one pixel off about twice as bad.
    const exact = meanDiff(crop);
    const shifted = meanDiff(alignFace(photo, ARCFACE_TEMPLATE_112.map((p) => applySimilarity(toPhoto, [p[0] + 1, p[1] + 0.5]))).crop);
    expect(exact).toBeLessThan(6);
    expect(shifted).toBeGreaterThan(exact * 1.3);
  });
});

describe('faceQuality', () => {
  const frontal = ARCFACE_TEMPLATE_112.map((p) => [p[0] * 2 + 100, p[1] * 2 + 50] as Point);
  const toAligned = fitSimilarity(frontal, ARCFACE_TEMPLATE_112);

  it('falls as the aligned crop gets blurrier', async () => {
    const file = 'test/fixtures/aligned/Amber_Tamblyn_0001.png';
    const qs: number[] = [];
    const lv: number[] = [];
    for (const sigma of [0, 0.8, 1.5, 2.5, 4]) {
      const img = sigma === 0 ? sharp(file) : sharp(file).blur(sigma);
      const { data } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const crop = Float32Array.from(data);
      lv.push(laplacianVariance(crop, 112, 112));
      qs.push(faceQuality(0.95, frontal, toAligned, crop).quality);
    }
    for (let i = 1; i < qs.length; i++) {
      expect(lv[i]!).toBeLessThan(lv[i - 1]!);
      expect(qs[i]!).toBeLessThan(qs[i - 1]!);
    }
    expect(qs[0]!).toBeGreaterThan(0.6);
    expect(qs.every((q) => q >= 0 && q <= 1)).toBe(true);
  });

  it('falls for small faces, turned heads and low detector scores', async () => {
    const { data } = await sharp('test/fixtures/aligned/Amber_Tamblyn_0001.png').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const crop = Float32Array.from(data);
    const base = faceQuality(0.95, frontal, toAligned, crop);
    const small = frontal.map((p) => [p[0] / 4, p[1] / 4] as Point);
    expect(faceQuality(0.95, small, fitSimilarity(small, ARCFACE_TEMPLATE_112), crop).quality).toBeLessThan(base.quality);
    // Nose shifted towards one eye: a head turned sideways.
    const turned = frontal.map((p, i) => (i === 2 ? [p[0] + 25, p[1]] : p) as Point);
    const qt = faceQuality(0.95, turned, toAligned, crop);
    expect(qt.parts.pose).toBeLessThan(base.parts.pose);
    expect(qt.quality).toBeLessThan(base.quality);
    expect(faceQuality(0.55, frontal, toAligned, crop).quality).toBeLessThan(base.quality);
  });
});
