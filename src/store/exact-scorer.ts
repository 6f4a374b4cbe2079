// Exact top-k inner-product scoring: the scorer interface the store uses for exact scans and
// re-ranking, and a plain TypeScript implementation (the default when no backend scorer is given);
// and the rows a gallery keeps for repeated exact scans (ExactRows), with an implementation over a
// plain array for any ExactScorer.
import type { TopK } from '../backend/backend.js';

/**
 * Scores q queries (q x dim, row-major) against n gallery rows (n x dim) and returns, per query,
 * the k best rows by inner product, best first. Rows beyond n are padded with index -1 and
 * score -Infinity when k > n.
 */
/**
 * The inner product of a[ao, ao + dim) and b[bo, bo + dim), rounded to float32, as every exact
 * scan in TypeScript computes it (the same summation order, so equal inputs give equal scores).
 * Four accumulators break the add dependency chain (about 2x faster in V8).
 */
export function dotAt(a: Float32Array, ao: number, b: Float32Array, bo: number, dim: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 4 <= dim; d += 4) {
    s0 += a[ao + d]! * b[bo + d]!;
    s1 += a[ao + d + 1]! * b[bo + d + 1]!;
    s2 += a[ao + d + 2]! * b[bo + d + 2]!;
    s3 += a[ao + d + 3]! * b[bo + d + 3]!;
  }
  for (; d < dim; d++) s0 += a[ao + d]! * b[bo + d]!;
  return Math.fround(s0 + s1 + s2 + s3);
}

export type ExactScorer = (
  queries: Float32Array,
  q: number,
  gallery: Float32Array,
  n: number,
  dim: number,
  k: number,
) => Promise<TopK>;

/** Plain TypeScript exact scorer: one pass over the gallery per query, insertion into a k-list. */
export const scoreExactTs: ExactScorer = async (queries, q, gallery, n, dim, k) => {
  const indices = new Int32Array(q * k).fill(-1);
  const scores = new Float32Array(q * k).fill(-Infinity);
  for (let qi = 0; qi < q; qi++) {
    const qo = qi * dim;
    const base = qi * k;
    let worst = -Infinity; // score of the k-th entry once the list is full
    let filled = 0;
    for (let r = 0; r < n; r++) {
      const s = dotAt(queries, qo, gallery, r * dim, dim);
      if (filled === k && s <= worst) continue;
      // Insert keeping the list sorted best first; ties keep the earlier row first.
      let pos = filled < k ? filled : k - 1;
      while (pos > 0 && scores[base + pos - 1]! < s) {
        scores[base + pos] = scores[base + pos - 1]!;
        indices[base + pos] = indices[base + pos - 1]!;
        pos--;
      }
      scores[base + pos] = s;
      indices[base + pos] = r;
      if (filled < k) filled++;
      if (filled === k) worst = scores[base + k - 1]!;
    }
  }
  return { k, indices, scores };
};

/**
 * A gallery's vectors kept where its exact scans read them (e.g. resident in the WASM backend's
 * memory, scanned in place by its workers), one row per face in any order, kept in step with adds
 * and deletes. Changes must not overlap a score() in flight (callers order them; VectorMatrix does).
 */
export interface ExactRows {
  /** Rows held. */
  readonly n: number;
  /** Appends count rows (count x dim floats). */
  append(rows: Float32Array, count: number): void;
  /** Removes row `row`: the last row moves into its place. */
  removeSwap(row: number): void;
  /** Exact top-k of q queries against the n rows: indices are row numbers; contract as ExactScorer. */
  score(queries: Float32Array, q: number, k: number): Promise<TopK>;
  /** Frees what the rows hold (no call may follow). */
  dispose(): Promise<void>;
}

/** Makes the rows of one gallery: dim floats per row, room for capacity rows to start with. */
export type ExactRowsFactory = (dim: number, capacity: number) => Promise<ExactRows>;

/**
 * Rows in a plain growing array, every scan a call of `scorer` over it. The floats live in a
 * SharedArrayBuffer, so a scorer whose workers read shared memory reads them in place.
 */
export function arrayRows(scorer: ExactScorer): ExactRowsFactory {
  return async (dim, capacity) => {
    let data = new Float32Array(new SharedArrayBuffer(Math.max(1, capacity) * dim * 4));
    let n = 0;
    return {
      get n() {
        return n;
      },
      append(rows, count) {
        if ((n + count) * dim > data.length) {
          const grown = new Float32Array(new SharedArrayBuffer(Math.max(n + count, Math.ceil((data.length / dim) * 1.5)) * dim * 4));
          grown.set(data.subarray(0, n * dim));
          data = grown;
        }
        data.set(rows.subarray(0, count * dim), n * dim);
        n += count;
      },
      removeSwap(row) {
        const last = n - 1;
        if (row !== last) data.copyWithin(row * dim, last * dim, (last + 1) * dim);
        n = last;
      },
      score: (queries, q, k) => scorer(queries, q, data.subarray(0, n * dim), n, dim, Math.min(k, n)),
      dispose: async () => undefined,
    };
  };
}
