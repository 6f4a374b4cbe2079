// The halved copies the detector cuts a large photo's views from (src/pipeline/pyramid.ts): the box
// filter against a plain reference on odd sizes, the level a view's shrink factor picks, and what
// a user sees: a photo enlarged 3x (a 3840x2658 JPEG, whose whole view is cut from a copy 8 times
// smaller) gives the same six people at three times the coordinates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createWasmBackend, type WasmBackend } from '../../src/backend/wasm/index.js';
import { decodeImage, type RgbImage } from '../../src/pipeline/decode.js';
import { iou, planDetectorViews } from '../../src/pipeline/detect.js';
import { createFacePipeline, type FacePipeline } from '../../src/pipeline/face-pipeline.js';
import { cropSource, halveImage, shrinkingWarp } from '../../src/pipeline/pyramid.js';
import { warpCrops, warpToCrop, type Similarity } from '../../src/pipeline/align.js';
import { mulberry32 } from '../helpers/fixtures.js';

function randomImage(width: number, height: number, seed: number): RgbImage {
  const r = mulberry32(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(r() * 256)) };
}

/** The mean of the (up to) 2x2 block of each output pixel, rounded half up, written plainly. */
function halveReference(img: RgbImage): RgbImage {
  const w = Math.ceil(img.width / 2);
  const h = Math.ceil(img.height / 2);
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let count = 0;
        for (let dy = 0; dy < 2; dy++) {
          for (let dx = 0; dx < 2; dx++) {
            const sx = 2 * x + dx;
            const sy = 2 * y + dy;
            if (sx < img.width && sy < img.height) {
              sum += img.data[(sy * img.width + sx) * 3 + c]!;
              count++;
            }
          }
        }
        data[(y * w + x) * 3 + c] = Math.floor(sum / count + 0.5);
      }
    }
  }
  return { width: w, height: h, data };
}

describe('halveImage', () => {
  it.each([
    [1, 1], [2, 2], [3, 5], [5, 3], [37, 23], [64, 64], [1, 7],
  ])('equals the plain box filter on a random %ix%i image', (w, h) => {
    const img = randomImage(w, h, w * 100 + h);
    const got = halveImage(img);
    const want = halveReference(img);
    expect([got.width, got.height]).toEqual([want.width, want.height]);
    expect(Buffer.from(got.data).equals(Buffer.from(want.data))).toBe(true);
  });
});

describe('cropSource', () => {
  const img = randomImage(64, 48, 3);
  const m = { a: 2, b: 1, tx: 10, ty: -6 };
  it.each([
    [1.3, 0], [3.9, 0], [4, 1], [7.9, 1], [8, 2], [20, 3],
  ])('a crop shrinking the image %fx is cut from the copy halved %i times, on the transform divided by as much', (scale, level) => {
    const levels: RgbImage[] = [];
    const { image, transform } = cropSource(img, levels, m, scale);
    expect(image.width).toBe(Math.ceil(64 / 2 ** level));
    const f = 2 ** level;
    expect(transform).toEqual({ a: 2 / f, b: 1 / f, tx: 10 / f, ty: -6 / f });
    expect(levels.length).toBe(level);
    // Asked again, the copies are reused.
    expect(cropSource(img, levels, m, scale).image).toBe(image);
  });

  it('stops halving before the image would be smaller than a pixel', () => {
    const tiny = randomImage(3, 2, 4);
    expect(cropSource(tiny, [], m, 64).image.height).toBe(1);
  });
});

describe('shrinkingWarp', () => {
  it('cuts each crop from the copy its shrink factor picks, in order; crops of other images and small factors as warpToCrop does', async () => {
    const img = randomImage(301, 203, 5);
    // Shrink factors 1.5 (the photo), 5 (halved once), 1.2, 9 (halved twice): three sources, interleaved.
    const ts: Similarity[] = [1.5, 5, 1.2, 9].map((s, i) => ({ a: s * Math.cos(i), b: s * Math.sin(i), tx: 100 + 7 * i, ty: 60 - 5 * i }));
    const got = await shrinkingWarp(img)(img, ts, 24, 16);
    const half = halveImage(img);
    const quarter = halveImage(half);
    const div = (t: Similarity, f: number): Similarity => ({ a: t.a / f, b: t.b / f, tx: t.tx / f, ty: t.ty / f });
    const want = [warpToCrop(img, ts[0]!, 24, 16), warpToCrop(half, div(ts[1]!, 2), 24, 16), warpToCrop(img, ts[2]!, 24, 16), warpToCrop(quarter, div(ts[3]!, 4), 24, 16)];
    const per = 24 * 16 * 3;
    want.forEach((w, i) => expect(Array.from(got.subarray(i * per, (i + 1) * per))).toEqual(Array.from(w)));
    // Another image's crops are not shrunk.
    const other = randomImage(301, 203, 6);
    expect(Array.from(await shrinkingWarp(img)(other, ts.slice(3), 24, 16))).toEqual(Array.from(await warpCrops(other, ts.slice(3), 24, 16)));
  });
});

describe('a large photo', () => {
  let backend: WasmBackend;
  let pipeline: FacePipeline;
  beforeAll(async () => {
    backend = await createWasmBackend({ workers: 2 });
    pipeline = await createFacePipeline({ backend });
  });
  afterAll(async () => backend?.dispose());

  it('t1.jpg enlarged 3x gives the same six people at three times the coordinates', async () => {
    const small = await decodeImage('test/fixtures/photos/t1.jpg');
    const bytes = await sharp('test/fixtures/photos/t1.jpg').resize(small.width * 3, small.height * 3, { kernel: 'lanczos3' }).jpeg({ quality: 95 }).toBuffer();
    const big = await decodeImage(new Uint8Array(bytes));
    // The whole view of the large photo shrinks it about 20x: cut from the copy halved 3 times.
    const whole = planDetectorViews(big.width, big.height)[0]!;
    expect(cropSource(big, [], { a: whole.side / 256, b: 0, tx: whole.x, ty: whole.y }, whole.side / 256).image.width).toBe(Math.ceil(big.width / 8));
    const want = await pipeline.detect(small);
    const got = await pipeline.detect(big);
    expect(want.length).toBe(6);
    expect(got.length).toBe(6);
    for (const d of want) {
      const scaled = d.box.map((v) => v * 3);
      const best = Math.max(...got.map((g) => iou(g.box, scaled)));
      expect(best, `face at ${d.box.map((v) => v.toFixed(0))}`).toBeGreaterThan(0.8);
    }
  }, 60_000);
});
