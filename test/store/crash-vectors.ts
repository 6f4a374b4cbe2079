// Deterministic embeddings shared by the crash test and its child process.
import { ClusterGenerator } from '../../src/bench/search-bench.js';

export const CRASH_DIM = 64;
export const CRASH_GALLERY = 'crash';

/** A random unit vector determined by its seed. */
export function crashTestVector(seed: number): Float32Array {
  return new ClusterGenerator({ dim: CRASH_DIM, qualityMean: 0.8, qualitySd: 0 }, seed).centre();
}
