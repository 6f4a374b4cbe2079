// Backend.warp (batched alignment warp: src/backend/webgpu/kernels/warp.ts, assembly/warp.ts) against the scalar
// reference warpToCrop (src/pipeline/align.ts) on random RGB images of odd sizes: random rotations
// and scales (upscales, downscales > 2 that supersample, k clamped at 8), crops reaching outside
// the image (fill), several crops per call, the ArcFace 112x112 alignment, a 1501x1203 photo
// (coordinates in the thousands). Tolerance on the 0..255 scale: WASM equal to the reference
// (max abs diff 0: the same f64 operations); WebGPU max abs diff <= 1e-3 (float32 arithmetic on
// random-noise images, the worst case for coordinate rounding). Then the validation errors.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { createWasmBackend } from '../../src/backend/wasm/index.js';
import { createWebGpuBackend } from '../../src/backend/webgpu/webgpu-backend.js';
import { planWarpGroups } from '../../src/backend/webgpu/webgpu-warp.js';
import { planWarp } from '../../src/backend/warp.js';
import { isCosfaceError } from '../../src/errors.js';
import { alignmentTransform, ARCFACE_TEMPLATE_112, invertSimilarity, warpToCrop, type Similarity, type WarpOptions } from '../../src/pipeline/align.js';
import type { RgbImage } from '../../src/pipeline/decode.js';
import { skipWebGpu } from '../helpers/webgpu.js';
import { mulberry32 } from '../helpers/fixtures.js';

const rng = mulberry32;

/** Random bytes (noise: the hardest case for interpolation error) with a smooth ramp mixed in. */
function randomImage(width: number, height: number, seed: number): RgbImage {
  const r = rng(seed);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = Math.floor(r() * 256);
      data[o + 1] = (x * 7 + y * 3) & 255;
      data[o + 2] = Math.floor(r() * 256);
    }
  }
  return { width, height, data };
}

/**
 * A transform (crop pixel -> image) mapping crop centre (outW/2, outH/2) to image point (cx, cy),
 * rotated by angle, `scale` image pixels per crop pixel.
 */
function transformAt(cx: number, cy: number, scale: number, angle: number, outW: number, outH: number): Similarity {
  const a = scale * Math.cos(angle);
  const b = scale * Math.sin(angle);
  const hx = outW / 2, hy = outH / 2;
  return { a, b, tx: cx - (a * hx - b * hy), ty: cy - (b * hx + a * hy) };
}

function randomTransforms(n: number, img: RgbImage, outW: number, outH: number, seed: number, scales: [number, number], reach = 0.3): Similarity[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    // Centres up to `reach` of the image size beyond its edges, so some crops leave it.
    const cx = (-reach + r() * (1 + 2 * reach)) * img.width;
    const cy = (-reach + r() * (1 + 2 * reach)) * img.height;
    const scale = scales[0] + r() * (scales[1] - scales[0]);
    return transformAt(cx, cy, scale, (r() - 0.5) * 2 * Math.PI, outW, outH);
  });
}

function reference(img: RgbImage, ts: readonly Similarity[], outW: number, outH: number, opts: WarpOptions = {}): Float32Array {
  const per = outW * outH * 3;
  const out = new Float32Array(ts.length * per);
  ts.forEach((t, i) => warpToCrop(img, t, outW, outH, opts, out, i * per));
  return out;
}

function maxDiff(got: Float32Array, want: Float32Array): { max: number; at: number } {
  let max = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= max)) {
      max = d;
      at = i;
    }
  }
  return { max, at };
}

interface BackendUnderTest {
  name: string;
  skip: boolean;
  /** Largest accepted max abs difference to warpToCrop on the 0..255 scale. */
  tolerance: number;
  create(): Promise<Backend>;
}

const backends: BackendUnderTest[] = [
  { name: 'webgpu', skip: skipWebGpu, tolerance: 1e-3, create: () => createWebGpuBackend() },
  { name: 'wasm', skip: false, tolerance: 0, create: () => createWasmBackend({ workers: 2 }) },
];

/** Measured differences, printed once per backend (for the record; the assertions are above). */
const measured = new Map<string, number[]>();

for (const b of backends) {
  describe.skipIf(b.skip)(`${b.name} warp vs warpToCrop`, () => {
    let backend: Backend | null = null;
    const get = async () => (backend ??= await b.create());
    afterAll(async () => {
      console.log(`${b.name} warp: max abs diff to warpToCrop per case: ${(measured.get(b.name) ?? []).map((d) => d.toExponential(2)).join(', ')}`);
      await backend?.dispose();
    });

    async function check(img: RgbImage, ts: Similarity[], outW: number, outH: number, opts?: WarpOptions, via?: Backend) {
      const want = reference(img, ts, outW, outH, opts);
      const got = await (via ?? (await get())).warp(img, ts, outW, outH, opts);
      expect(got).toBeInstanceOf(Float32Array);
      expect(got.length).toBe(want.length);
      const { max, at } = maxDiff(got, want);
      measured.set(b.name, [...(measured.get(b.name) ?? []), max]);
      const px = Math.floor(at / 3);
      expect(max, `max abs diff ${max} at crop ${Math.floor(px / (outW * outH))} pixel ${px % (outW * outH)} channel ${at % 3}: got ${got[at]}, want ${want[at]}`).toBeLessThanOrEqual(b.tolerance);
    }

    it('5 crops 37x23 of a 97x61 image: rotations, scales 0.4..1.9, some leaving the image, fill 17.5', async () => {
      const img = randomImage(97, 61, 1);
      await check(img, randomTransforms(5, img, 37, 23, 2, [0.4, 1.9]), 37, 23, { fill: 17.5 });
    });

    it('7 downscaling crops 19x13 of a 211x157 image: scales 2.1..7.9 (k = 3..8), default fill', async () => {
      const img = randomImage(211, 157, 3);
      await check(img, randomTransforms(7, img, 19, 13, 4, [2.1, 7.9]), 19, 13);
    });

    it('scales over 8 (k clamped at 8), one crop wholly outside the image, fill 255', async () => {
      const img = randomImage(131, 97, 5);
      const ts = randomTransforms(3, img, 11, 9, 6, [8.5, 12]);
      ts.push(transformAt(-500, 40, 1.3, 0.7, 11, 9));
      await check(img, ts, 11, 9, { fill: 255 });
    });

    it('explicit supersample 1 and 3, a single crop and a 1x1 crop', async () => {
      const img = randomImage(45, 53, 7);
      const ts = randomTransforms(4, img, 17, 29, 8, [0.5, 4]);
      await check(img, ts, 17, 29, { supersample: 1 });
      await check(img, ts, 17, 29, { supersample: 3, fill: 3 });
      await check(img, ts.slice(0, 1), 17, 29);
      await check(img, ts.slice(1, 2), 1, 1);
    });

    it('ArcFace alignment: 6 faces of a 203x157 image to 112x112, as alignFace cuts them', async () => {
      const img = randomImage(203, 157, 9);
      const r = rng(10);
      const ts = Array.from({ length: 6 }, () => {
        // The template moved, scaled (0.4..3: up- and downscales) and rotated into the photo, jittered.
        const m = transformAt(r() * 203, r() * 157, 0.4 + r() * 2.6, (r() - 0.5) * 1.2, 112, 112);
        const five = ARCFACE_TEMPLATE_112.map(([x, y]) => [m.a * x - m.b * y + m.tx + r() - 0.5, m.b * x + m.a * y + m.ty + r() - 0.5] as [number, number]);
        return invertSimilarity(alignmentTransform(five));
      });
      await check(img, ts, 112, 112);
    });

    it("border 'replicate': crops leaving the image on every side, wholly outside it, up- and downscaled", async () => {
      const img = randomImage(83, 59, 21);
      const ts = randomTransforms(6, img, 23, 17, 22, [0.4, 5], 0.45);
      ts.push(transformAt(-300, -200, 1.1, 0.4, 23, 17), transformAt(500, 30, 2.5, -1, 23, 17), transformAt(40, 400, 0.7, 2, 23, 17));
      await check(img, ts, 23, 17, { border: 'replicate' });
      await check(img, ts.slice(0, 3), 23, 17, { border: 'replicate', supersample: 2 });
      // Wholly outside: every sample is an edge pixel, so a crop beyond the top-left corner is that pixel's colour.
      const corner = await (await get()).warp(img, [transformAt(-300, -200, 1.1, 0.4, 5, 5)], 5, 5, { border: 'replicate' });
      for (let i = 0; i < 25; i++) expect([corner[3 * i], corner[3 * i + 1], corner[3 * i + 2]]).toEqual([img.data[0], img.data[1], img.data[2]]);
    });

    it('one detector view: a whole 613x401 photo letterboxed past its edges to 256x256 (k = 4), its rows split between the workers', async () => {
      const img = randomImage(613, 401, 31);
      const side = 613 * 1.3;
      const view = { a: side / 256, b: 0, tx: (613 - side) / 2, ty: (401 - side) / 2 };
      await check(img, [view], 256, 256);
      await check(img, [view], 256, 256, { border: 'replicate' });
      // Three crops of 7 rows over two workers: the split falls inside the second crop.
      await check(img, randomTransforms(3, img, 9, 7, 32, [0.5, 3]), 9, 7, { fill: 9 });
    });

    it('a 1501x1203 image: crops far from the origin (coordinates in the thousands)', async () => {
      const img = randomImage(1501, 1203, 11);
      await check(img, randomTransforms(4, img, 64, 48, 12, [0.3, 3.2], 0.05), 64, 48, { fill: 100 });
    });

    if (b.name === 'webgpu') {
      it('split into several dispatches, and the CPU for crops over the binding limit', async () => {
        // 20 KiB per binding: groups of at most 3 crops of 29x19 (6.6 KiB of output each); a
        // crop reading more than ~6800 image pixels is cut by warpToCrop on the CPU.
        const small = await createWebGpuBackend({ maxWarpBindingBytes: 20 * 1024 });
        try {
          const img = randomImage(151, 113, 13);
          const ts = [...randomTransforms(6, img, 29, 19, 14, [0.5, 1.5]), ...randomTransforms(2, img, 29, 19, 15, [4, 6])];
          const { groups, cpu } = planWarpGroups(planWarp(img, ts, 29, 19), 20 * 1024);
          expect(groups.length).toBeGreaterThan(1);
          expect(cpu.length).toBeGreaterThan(0);
          await check(img, ts, 29, 19, { fill: 9 }, small);
          await check(img, ts, 29, 19, { border: 'replicate' }, small);
        } finally {
          await small.dispose();
        }
      });
    }

    it('many calls in parallel give the same answers as one by one', async () => {
      const img = randomImage(77, 55, 16);
      const sets = [0, 1, 2, 3].map((i) => randomTransforms(2 + i, img, 21, 15, 20 + i, [0.5, 3]));
      const be = await get();
      const got = await Promise.all(sets.map((ts) => be.warp(img, ts, 21, 15)));
      sets.forEach((ts, i) => expect(maxDiff(got[i]!, reference(img, ts, 21, 15)).max).toBeLessThanOrEqual(b.tolerance));
    });

    it('rejects bad input with BAD_INPUT', async () => {
      const be = await get();
      const img = randomImage(9, 7, 17);
      const ok: Similarity = { a: 1, b: 0, tx: 0, ty: 0 };
      const cases: [string, () => Promise<unknown>][] = [
        ['empty transform list', () => be.warp(img, [], 4, 4)],
        ['NaN coefficient', () => be.warp(img, [ok, { a: NaN, b: 0, tx: 0, ty: 0 }], 4, 4)],
        ['infinite translation', () => be.warp(img, [{ a: 1, b: 0, tx: Infinity, ty: 0 }], 4, 4)],
        ['missing coefficient', () => be.warp(img, [{ a: 1, b: 0, tx: 0 } as unknown as Similarity], 4, 4)],
        ['transform reaching beyond 2^23', () => be.warp(img, [{ a: 1, b: 0, tx: 1e7, ty: 0 }], 4, 4)],
        ['outW 0', () => be.warp(img, [ok], 0, 4)],
        ['fractional outH', () => be.warp(img, [ok], 4, 2.5)],
        ['NaN outW', () => be.warp(img, [ok], NaN, 4)],
        ['image data of the wrong length', () => be.warp({ width: 9, height: 7, data: new Uint8Array(10) }, [ok], 4, 4)],
        ['image of width 0', () => be.warp({ width: 0, height: 7, data: new Uint8Array(0) }, [ok], 4, 4)],
        ['supersample 0', () => be.warp(img, [ok], 4, 4, { supersample: 0 })],
        ['fractional supersample', () => be.warp(img, [ok], 4, 4, { supersample: 1.5 })],
        ['NaN fill', () => be.warp(img, [ok], 4, 4, { fill: NaN })],
        ['unknown border', () => be.warp(img, [ok], 4, 4, { border: 'wrap' as 'replicate' })],
      ];
      for (const [what, call] of cases) {
        const err = await call().then(() => null, (e: unknown) => e);
        expect(isCosfaceError(err, 'BAD_INPUT'), `${what}: ${String(err)}`).toBe(true);
      }
      // Still usable after the errors.
      expect((await be.warp(img, [ok], 4, 4)).length).toBe(48);
    });
  });
}
