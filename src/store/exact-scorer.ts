// Exact top-k inner-product scoring: the scorer interface the store uses for exact scans and
// re-ranking, and a plain TypeScript implementation (the default when no backend scorer is given).
import type { TopK } from '../backend/backend.js';

/**
 * Scores q queries (q x dim, row-major) against n gallery rows (n x dim) and returns, per query,
 * the k best rows by inner product, best first. Rows beyond n are padded with index -1 and
 * score -Infinity when k > n.
 */
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
      const go = r * dim;
      // Four accumulators break the add dependency chain (about 2x faster in V8).
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let d = 0;
      for (; d + 4 <= dim; d += 4) {
        s0 += queries[qo + d]! * gallery[go + d]!;
        s1 += queries[qo + d + 1]! * gallery[go + d + 1]!;
        s2 += queries[qo + d + 2]! * gallery[go + d + 2]!;
        s3 += queries[qo + d + 3]! * gallery[go + d + 3]!;
      }
      for (; d < dim; d++) s0 += queries[qo + d]! * gallery[go + d]!;
      const s = Math.fround(s0 + s1 + s2 + s3);
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
