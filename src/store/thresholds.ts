// Open-set thresholds calibrated from labelled score pairs: for each target false-accept rate,
// the lowest score threshold whose measured FAR on the impostor pairs does not exceed it.

/** The FARs calibrated by default, from lenient to strict. */
export const DEFAULT_FARS: readonly number[] = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6];

export interface ScoredPair {
  score: number;
  /** true: both faces are the same person (genuine pair); false: impostor pair. */
  same: boolean;
}

export interface FarThreshold {
  far: number;
  /** Decide "match" when score >= threshold. */
  threshold: number;
  /** Impostor pairs at or above the threshold, and that count over all impostor pairs. */
  falseAccepts: number;
  measuredFar: number;
  /** Fraction of genuine pairs at or above the threshold; null without genuine pairs. */
  tar: number | null;
}

export interface UnsupportedFar {
  far: number;
  /** Impostor pairs needed for at least one to be allowed through at this FAR. */
  impostorPairsNeeded: number;
}

export interface Calibration {
  genuinePairs: number;
  impostorPairs: number;
  thresholds: FarThreshold[];
  /** FARs the data cannot measure: fewer than 1/FAR impostor pairs. */
  unsupported: UnsupportedFar[];
}

/** The smallest double greater than x. */
function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Infinity) return x;
  if (x === 0) return Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const b = new BigInt64Array(f.buffer);
  b[0] = x > 0 ? b[0]! + 1n : b[0]! - 1n;
  return f[0]!;
}

/**
 * Calibrates thresholds. A FAR f is supported when there are at least 1/f impostor pairs; with N
 * impostor pairs sorted best first (s_0 >= s_1 >= ...), floor(f * N) of them may pass, so the
 * threshold is just above s_floor(f*N). Ties at that score are all rejected, which keeps the
 * measured FAR at or below f.
 */
export function calibrate(pairs: readonly ScoredPair[], fars: readonly number[] = DEFAULT_FARS): Calibration {
  const impostor: number[] = [];
  const genuine: number[] = [];
  for (const p of pairs) {
    if (!Number.isFinite(p.score)) throw new RangeError(`calibrate: pair score ${p.score} is not finite`);
    (p.same ? genuine : impostor).push(p.score);
  }
  impostor.sort((a, b) => b - a);
  genuine.sort((a, b) => a - b);
  const n = impostor.length;
  const thresholds: FarThreshold[] = [];
  const unsupported: UnsupportedFar[] = [];
  for (const far of fars) {
    if (!(far > 0 && far < 1)) throw new RangeError(`calibrate: FAR ${far} must be in (0, 1)`);
    // The tolerance absorbs 1e-3 * 1000 landing a hair under 1 in floating point.
    const allowed = Math.floor(far * n * (1 + 1e-9));
    if (allowed < 1) {
      unsupported.push({ far, impostorPairsNeeded: Math.ceil(1 / far - 1e-9) });
      continue;
    }
    const threshold = allowed >= n ? -Infinity : nextUp(impostor[allowed]!);
    const falseAccepts = countAtLeast(impostor, threshold, true);
    thresholds.push({
      far,
      threshold,
      falseAccepts,
      measuredFar: falseAccepts / n,
      tar: genuine.length ? countAtLeast(genuine, threshold, false) / genuine.length : null,
    });
  }
  return { genuinePairs: genuine.length, impostorPairs: n, thresholds, unsupported };
}

/** Scores >= t in a sorted array (descending when `desc`), by binary search. */
function countAtLeast(sorted: number[], t: number, desc: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const ok = sorted[mid]! >= t;
    if (desc ? ok : !ok) lo = mid + 1;
    else hi = mid;
  }
  return desc ? lo : sorted.length - lo;
}
