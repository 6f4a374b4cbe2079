// The losses in TypeScript: gradients against central finite differences in float64, the
// identities the paper relies on (LMCL at m = 0 is NSL; the combined form at m1 = 1, m2 = 0 is
// LMCL), ignored labels, float32 against float64, and bad input.
import { describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { marginLoss, targetMargin, type LossConfig, type LossInput } from '../../src/train/margin-loss.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function gaussian(r: () => number, len: number): Float64Array {
  const out = new Float64Array(len);
  for (let i = 0; i < len; i++) out[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return out;
}

function problem(seed: number, n: number, d: number, c: number, ignore: number[] = []): LossInput<Float64Array> {
  const r = rng(seed);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = ignore.includes(i) ? -1 : Math.floor(r() * c);
  return { x: gaussian(r, n * d), w: gaussian(r, c * d), bias: gaussian(r, c), labels, n, d, c };
}

/** Worst of |analytic - numeric| / max(|analytic|, |numeric|, floor) over every entry. */
function gradError(cfg: LossConfig, inp: LossInput<Float64Array>, which: 'x' | 'w' | 'bias', analytic: Float64Array): number {
  const h = 1e-6;
  const arr = inp[which]!;
  const floor = 1e-4 * Math.max(...Array.from(analytic, Math.abs));
  let worst = 0;
  for (let k = 0; k < arr.length; k++) {
    const keep = arr[k]!;
    arr[k] = keep + h;
    const up = marginLoss(cfg, inp).loss;
    arr[k] = keep - h;
    const down = marginLoss(cfg, inp).loss;
    arr[k] = keep;
    const num = (up - down) / (2 * h);
    const a = analytic[k]!;
    worst = Math.max(worst, Math.abs(a - num) / Math.max(Math.abs(a), Math.abs(num), floor));
  }
  return worst;
}

const CONFIGS: [string, LossConfig][] = [
  ['softmax', { kind: 'softmax' }],
  ['nsl s=16', { kind: 'nsl', s: 16 }],
  ['lmcl s=64 m=0.35', { kind: 'lmcl', s: 64, m: 0.35 }],
  ['lmcl s=30 m=0.2', { kind: 'lmcl', s: 30, m: 0.2 }],
  ['combined arcface m2=0.5', { kind: 'combined', s: 32, m1: 1, m2: 0.5, m3: 0 }],
  ['combined sphereface-like m1=1.35', { kind: 'combined', s: 16, m1: 1.35, m2: 0, m3: 0 }],
  ['combined all three', { kind: 'combined', s: 24, m1: 0.9, m2: 0.3, m3: 0.2 }],
];

describe('margin losses (float64 reference)', () => {
  for (const [name, cfg] of CONFIGS) {
    it(`${name}: gradients match finite differences (rel. error < 1e-3), ignored labels contribute nothing`, () => {
      const inp = problem(7 + name.length, 6, 5, 4, [2]);
      const out = marginLoss(cfg, inp);
      expect(out.valid).toBe(5);
      expect(Number.isFinite(out.loss)).toBe(true);
      expect(out.loss).toBeGreaterThan(0);
      expect(gradError(cfg, inp, 'x', out.dx)).toBeLessThan(1e-3);
      expect(gradError(cfg, inp, 'w', out.dw)).toBeLessThan(1e-3);
      if (cfg.kind === 'softmax') expect(gradError(cfg, inp, 'bias', out.dbias)).toBeLessThan(1e-3);
      // The ignored sample's features get no gradient.
      expect(Array.from(out.dx.subarray(2 * 5, 3 * 5)).every((v) => v === 0)).toBe(true);
    });
  }

  it('normalised losses are invariant to the scale of x and W, and their feature gradient is orthogonal to x', () => {
    const inp = problem(3, 5, 6, 7);
    const cfg: LossConfig = { kind: 'lmcl', s: 64, m: 0.35 };
    const a = marginLoss(cfg, inp);
    const scaled = { ...inp, x: inp.x.map((v) => v * 3.5), w: inp.w.map((v) => v * 0.2) };
    const b = marginLoss(cfg, scaled);
    expect(b.loss).toBeCloseTo(a.loss, 10);
    for (let i = 0; i < inp.n; i++) {
      let dot = 0;
      for (let k = 0; k < inp.d; k++) dot += inp.x[i * inp.d + k]! * a.dx[i * inp.d + k]!;
      expect(Math.abs(dot)).toBeLessThan(1e-12);
    }
  });

  it('LMCL with m = 0 equals NSL exactly (loss and every gradient, bit for bit)', () => {
    const inp = problem(11, 9, 16, 12, [4]);
    const nsl = marginLoss({ kind: 'nsl', s: 64 }, inp);
    const lmcl = marginLoss({ kind: 'lmcl', s: 64, m: 0 }, inp);
    expect(lmcl.loss).toBe(nsl.loss);
    expect(Array.from(lmcl.dx)).toEqual(Array.from(nsl.dx));
    expect(Array.from(lmcl.dw)).toEqual(Array.from(nsl.dw));
  });

  it('the combined form with m1 = 1, m2 = 0 equals LMCL exactly (m3 = m)', () => {
    const inp = problem(12, 9, 16, 12, [0]);
    for (const m of [0, 0.1, 0.35, 0.45]) {
      const lmcl = marginLoss({ kind: 'lmcl', s: 64, m }, inp);
      const comb = marginLoss({ kind: 'combined', s: 64, m1: 1, m2: 0, m3: m }, inp);
      expect(comb.loss).toBe(lmcl.loss);
      expect(Array.from(comb.dx)).toEqual(Array.from(lmcl.dx));
      expect(Array.from(comb.dw)).toEqual(Array.from(lmcl.dw));
    }
  });

  it('the ArcFace expansion agrees with cos(m1 acos(c) + m2) computed by angles', () => {
    for (const c of [-0.95, -0.3, 0, 0.4, 0.99]) {
      const viaExpansion = targetMargin(c, 1, 0.5, 0.1);
      const viaAngle = Math.cos(Math.acos(c) + 0.5) - 0.1;
      expect(viaExpansion.psi).toBeCloseTo(viaAngle, 14);
      // The general (m1 != 1) path near m1 = 1 approaches the same value.
      expect(targetMargin(c, 1 + 1e-9, 0.5, 0.1).psi).toBeCloseTo(viaAngle, 7);
    }
  });

  it('a larger margin raises the loss on the same batch, and accuracy counts the margin', () => {
    const inp = problem(5, 20, 8, 5);
    const losses = [0, 0.1, 0.25, 0.35, 0.45].map((m) => marginLoss({ kind: 'lmcl', s: 30, m }, inp).loss);
    for (let i = 1; i < losses.length; i++) expect(losses[i]!).toBeGreaterThan(losses[i - 1]!);
  });

  it('float32 inputs give float32 results within 1e-5 of float64 (thousands of classes)', () => {
    const inp = problem(21, 8, 32, 2000, [1, 5]);
    const cfg: LossConfig = { kind: 'lmcl', s: 64, m: 0.35 };
    const ref = marginLoss(cfg, inp);
    const f32 = marginLoss(cfg, { ...inp, x: Float32Array.from(inp.x), w: Float32Array.from(inp.w), bias: undefined });
    expect(f32.dx).toBeInstanceOf(Float32Array);
    expect(Math.abs(f32.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    const scale = Math.max(...Array.from(ref.dw, Math.abs));
    let worst = 0;
    for (let k = 0; k < ref.dw.length; k++) worst = Math.max(worst, Math.abs(f32.dw[k]! - ref.dw[k]!));
    expect(worst / scale).toBeLessThan(1e-5);
  });

  it('all labels ignored: loss 0 and zero gradients', () => {
    const inp = problem(2, 3, 4, 5, [0, 1, 2]);
    const out = marginLoss({ kind: 'lmcl' }, inp);
    expect(out.loss).toBe(0);
    expect(out.valid).toBe(0);
    expect(Array.from(out.dw).every((v) => v === 0)).toBe(true);
  });

  it('bad input is refused with a stable code', () => {
    const inp = problem(1, 3, 4, 5);
    const codes: string[] = [];
    const attempt = (f: () => unknown) => {
      try {
        f();
        codes.push('none');
      } catch (e) {
        codes.push(isCosfaceError(e) ? e.code : 'other');
      }
    };
    attempt(() => marginLoss({ kind: 'lmcl' }, { ...inp, labels: Int32Array.from([0, 5, 1]) }));
    attempt(() => marginLoss({ kind: 'lmcl' }, { ...inp, x: inp.x.subarray(1) }));
    attempt(() => marginLoss({ kind: 'lmcl', s: -1 }, inp));
    attempt(() => marginLoss({ kind: 'arcface' as 'lmcl' }, inp));
    expect(codes).toEqual(['BAD_INPUT', 'DIMENSION_MISMATCH', 'BAD_INPUT', 'BAD_INPUT']);
  });
});
