// Held-out evaluation for the training experiments: verification accuracy on genuine and
// impostor pairs (threshold chosen on the other folds, as in the LFW protocol) and leave-one-out
// rank-1 identification, both by cosine similarity of unit vectors.
import { CosfaceError } from '../errors.js';
import { bestThreshold } from '../eval/lfw.js';
import { seededRandom } from './head.js';

export interface Pair {
  a: number;
  b: number;
  same: boolean;
}

/** Every genuine pair among rows, and as many impostor pairs drawn without repetition (seeded). */
export function balancedPairs(labels: ArrayLike<number>, rows: readonly number[], seed = 1): Pair[] {
  const genuine: Pair[] = [];
  const impostor: Pair[] = [];
  for (let i = 0; i < rows.length; i++) {
    for (let j = i + 1; j < rows.length; j++) {
      const a = rows[i]!;
      const b = rows[j]!;
      (labels[a] === labels[b] ? genuine : impostor).push({ a, b, same: labels[a] === labels[b] });
    }
  }
  const r = seededRandom(seed);
  for (let i = impostor.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [impostor[i], impostor[j]] = [impostor[j]!, impostor[i]!];
  }
  return [...genuine, ...impostor.slice(0, genuine.length)];
}

export function cosine(emb: Float32Array, dim: number, a: number, b: number): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let k = 0; k < dim; k++) {
    const x = emb[a * dim + k]!;
    const y = emb[b * dim + k]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/**
 * Verification accuracy (%) over scored pairs: pairs dealt into `folds` folds (seeded); each
 * fold is judged with the threshold that is best on the others. Returns mean and std over folds.
 */
export function verificationAccuracy(scores: readonly number[], same: readonly boolean[], folds = 10, seed = 1): { accuracy: number; std: number } {
  if (scores.length !== same.length || scores.length < folds) throw new CosfaceError('BAD_INPUT', `verification: ${scores.length} scores for ${same.length} pairs, need at least ${folds}`);
  const idx = scores.map((_, i) => i);
  const r = seededRandom(seed);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const fold = new Int32Array(scores.length);
  idx.forEach((p, k) => (fold[p] = k % folds));
  const accs: number[] = [];
  for (let f = 0; f < folds; f++) {
    const train = idx.filter((p) => fold[p] !== f);
    const test = idx.filter((p) => fold[p] === f);
    const t = bestThreshold(train.map((p) => scores[p]!), train.map((p) => same[p]!));
    accs.push((100 * test.filter((p) => (scores[p]! > t) === same[p]).length) / test.length);
  }
  const mean = accs.reduce((s, a) => s + a, 0) / folds;
  const std = Math.sqrt(accs.reduce((s, a) => s + (a - mean) ** 2, 0) / folds);
  return { accuracy: mean, std };
}

/** Leave-one-out rank-1 (%): each row's nearest other row (by cosine) among `rows` has its label. */
export function leaveOneOutRank1(emb: Float32Array, dim: number, labels: ArrayLike<number>, rows: readonly number[]): number {
  let hits = 0;
  for (const q of rows) {
    let best = -Infinity;
    let bestRow = -1;
    for (const g of rows) {
      if (g === q) continue;
      const s = cosine(emb, dim, q, g);
      if (s > best) {
        best = s;
        bestRow = g;
      }
    }
    if (bestRow >= 0 && labels[bestRow] === labels[q]) hits++;
  }
  return (100 * hits) / rows.length;
}
