// The sign-code kernel (generated WebAssembly) against bit-by-bit Hamming distances and a sort, on
// random vectors of several widths, through capacity growth and row removal; and the exact re-rank
// against an independent loop.
import { describe, expect, it } from 'vitest';
import { codeBytes, hammingReference, rerankRows, signCode, SignCodes } from '../../src/bench/sign-codes.js';
import { mulberry32 } from '../../src/random.js';

function randomVectors(n: number, dim: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const v = new Float32Array(n * dim);
  for (let i = 0; i < v.length; i++) v[i] = rand() - 0.5;
  return v;
}

describe('sign codes', () => {
  for (const dim of [128, 100, 200]) {
    it(`shortlists exactly the rows within the Hamming distance of the N-th nearest (dim ${dim})`, () => {
      const n = 3000;
      const bytes = codeBytes(dim);
      const g = randomVectors(n, dim, dim);
      const codes = new SignCodes(dim, 16); // grows past its capacity while filled
      for (let r = 0; r < n; r++) codes.push(g.subarray(r * dim, (r + 1) * dim));
      // Remove a few rows as the gallery matrix does (the last row moves into the hole).
      const rows = Array.from({ length: n }, (_, r) => r);
      for (const r of [5, 100, 2000]) {
        codes.removeRow(r);
        rows[r] = rows.pop()!;
      }
      const all = new Uint8Array(n * bytes);
      for (let r = 0; r < n; r++) signCode(g.subarray(r * dim, (r + 1) * dim), all, r * bytes);
      const probes = randomVectors(5, dim, 99);
      const pc = new Uint8Array(bytes);
      for (let q = 0; q < 5; q++) {
        const p = probes.subarray(q * dim, (q + 1) * dim);
        signCode(p, pc);
        const d = rows.map((src) => hammingReference(pc, 0, all, src * bytes, bytes));
        for (const want of [1, 37, 500]) {
          const t = [...d].sort((a, b) => a - b)[want - 1]!;
          const expected = d.flatMap((x, r) => (x <= t ? [r] : []));
          expect(Array.from(codes.shortlist(p, want))).toEqual(expected);
        }
      }
    });
  }

  it('refuses widths whose distances do not fit a byte', () => {
    expect(() => new SignCodes(512)).toThrow(RangeError);
  });

  it('re-ranks a shortlist by exact inner product, best first', () => {
    const dim = 64;
    const g = randomVectors(500, dim, 3);
    const p = randomVectors(1, dim, 4);
    const cand = Array.from({ length: 200 }, (_, i) => (i * 7) % 500);
    const got = rerankRows(cand, p, g, dim, 10);
    const want = cand
      .map((r) => ({ r, s: g.subarray(r * dim, (r + 1) * dim).reduce((a, x, i) => a + x * p[i]!, 0) }))
      .sort((a, b) => b.s - a.s)
      .slice(0, 10);
    expect(got.rows).toEqual(want.map((w) => w.r));
    got.scores.forEach((s, i) => expect(s).toBeCloseTo(want[i]!.s, 5));
  });
});
