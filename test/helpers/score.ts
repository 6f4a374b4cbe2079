// Shared checks for exact top-k scorers (WASM and WebGPU): a float64 brute force and error codes.
import { expect } from 'vitest';
import type { TopK } from '../../src/backend/backend.js';
import { isCosfaceError, type ErrorCode } from '../../src/errors.js';

/** Brute force in float64: every score, the k best kept best first, ties to the lower index. */
export function bruteForce(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number) {
  const rows: { index: number; score: number }[][] = [];
  const kOut = Math.min(k, n);
  for (let i = 0; i < q; i++) {
    const best: { index: number; score: number }[] = [];
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += queries[i * dim + d]! * gallery[j * dim + d]!;
      // Rows come in index order, so a later row displaces an equal score only when strictly better.
      if (best.length === kOut && !(s > best[kOut - 1]!.score)) continue;
      let pos = best.length === kOut ? kOut - 1 : best.length;
      if (best.length < kOut) best.push({ index: j, score: s });
      while (pos > 0 && best[pos - 1]!.score < s) {
        best[pos] = best[pos - 1]!;
        pos--;
      }
      best[pos] = { index: j, score: s };
    }
    rows.push(best);
  }
  return rows;
}

export function expectMatchesBruteForce(got: TopK, queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): void {
  const want = bruteForce(queries, q, gallery, n, dim, k);
  const kOut = Math.min(k, n);
  expect(got.k).toBe(kOut);
  expect(got.indices.length).toBe(q * kOut);
  expect(got.scores.length).toBe(q * kOut);
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < kOut; j++) {
      expect(got.indices[i * kOut + j], `query ${i} rank ${j}`).toBe(want[i]![j]!.index);
      expect(Math.abs(got.scores[i * kOut + j]! - want[i]![j]!.score)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[i]![j]!.score)));
    }
  }
}

export async function expectCode(p: Promise<unknown>, code: ErrorCode, text?: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(isCosfaceError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
  if (text) expect((err as Error).message).toContain(text);
}
