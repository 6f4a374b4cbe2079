// The WGSL margin losses against the TypeScript float64 reference on random data: loss, accuracy
// count and every gradient, for each loss, with ignored labels and thousands of classes.
import { beforeAll, describe, expect, it } from 'vitest';
import { marginLoss, type LossConfig } from '../../src/train/margin-loss.js';
import { WebGpuMarginLoss } from '../../src/train/webgpu-margin-loss.js';
import { skipWebGpu } from '../helpers/webgpu.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomBatch(seed: number, n: number, d: number, c: number) {
  const r = rng(seed);
  const x = new Float64Array(n * d).map(() => r() - 0.5);
  const w = new Float64Array(c * d).map(() => r() - 0.5);
  const bias = new Float64Array(c).map(() => r() - 0.5);
  // Every fifth sample ignored; a few labels pushed towards their class so some rows are correct.
  const labels = new Int32Array(n).map((_, i) => (i % 5 === 4 ? -1 : Math.floor(r() * c)));
  for (let i = 0; i < n; i += 3) if (labels[i]! >= 0) for (let k = 0; k < d; k++) x[i * d + k] = x[i * d + k]! + 2 * w[labels[i]! * d + k]!;
  return { x, w, bias, labels, n, d, c };
}

/** max |a - b| over max |b|: the error relative to the gradient's scale. */
function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / s;
}

// Stated tolerances (float32 on the GPU against float64): loss 1e-5 relative; gradients 1e-4 of
// their largest entry; the general combined margin (acos in float32) 1e-3.
const CASES: [string, LossConfig, number][] = [
  ['softmax', { kind: 'softmax' }, 1e-4],
  ['nsl', { kind: 'nsl', s: 64 }, 1e-4],
  ['lmcl', { kind: 'lmcl', s: 64, m: 0.35 }, 1e-4],
  ['combined (ArcFace m2 = 0.5)', { kind: 'combined', s: 64, m1: 1, m2: 0.5, m3: 0 }, 1e-4],
  ['combined (m1 = 1.3, m2 = 0.1, m3 = 0.1)', { kind: 'combined', s: 32, m1: 1.3, m2: 0.1, m3: 0.1 }, 1e-3],
];

describe.skipIf(skipWebGpu)('margin losses in WGSL', () => {
  let gpu: WebGpuMarginLoss;
  beforeAll(async () => {
    gpu = await WebGpuMarginLoss.create();
  });

  for (const [name, cfg, tol] of CASES) {
    it(`${name}: forward and backward match TypeScript float64`, async () => {
      const b = randomBatch(name.length, 37, 70, 300);
      const ref = marginLoss(cfg, b);
      const out = await gpu.run(cfg, { ...b, x: Float32Array.from(b.x), w: Float32Array.from(b.w), bias: Float32Array.from(b.bias) }, true);
      expect(out.valid).toBe(ref.valid);
      expect(Math.abs(out.loss - ref.loss) / ref.loss).toBeLessThan(tol / 10);
      expect(out.correct).toBe(ref.correct);
      expect(relMax(out.cos, ref.cos)).toBeLessThan(1e-5);
      expect(relMax(out.dx, ref.dx)).toBeLessThan(tol);
      expect(relMax(out.dw, ref.dw)).toBeLessThan(tol);
      if (cfg.kind === 'softmax') expect(relMax(out.dbias, ref.dbias)).toBeLessThan(tol);
      // Ignored samples get no gradient.
      expect(Array.from(out.dx.subarray(4 * 70, 5 * 70)).every((v) => v === 0)).toBe(true);
    });
  }

  it('LMCL with thousands of classes (n = 64, d = 128, C = 3000)', async () => {
    const b = randomBatch(99, 64, 128, 3000);
    const cfg: LossConfig = { kind: 'lmcl', s: 64, m: 0.35 };
    const ref = marginLoss(cfg, b);
    const out = await gpu.run(cfg, { ...b, x: Float32Array.from(b.x), w: Float32Array.from(b.w), bias: undefined });
    expect(Math.abs(out.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    expect(relMax(out.dx, ref.dx)).toBeLessThan(1e-4);
    expect(relMax(out.dw, ref.dw)).toBeLessThan(1e-4);
  });

  it('LMCL at m = 0 gives the same numbers as NSL on the GPU', async () => {
    const b = randomBatch(5, 20, 32, 50);
    const f = { ...b, x: Float32Array.from(b.x), w: Float32Array.from(b.w), bias: undefined };
    const nsl = await gpu.run({ kind: 'nsl', s: 64 }, f);
    const lmcl = await gpu.run({ kind: 'lmcl', s: 64, m: 0 }, f);
    expect(lmcl.loss).toBe(nsl.loss);
    expect(Array.from(lmcl.dx)).toEqual(Array.from(nsl.dx));
    expect(Array.from(lmcl.dw)).toEqual(Array.from(nsl.dw));
  });
});
