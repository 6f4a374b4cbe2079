// Exact top-k by inner product on the WASM kernels, split over a worker pool and chunked over the
// gallery. score() is the shared entry point; WasmScorer binds it to a pool of chosen size.
import type { TopK } from '../backend.js';
import { defaultWorkerCount, splitRanges, WorkerPool } from './wasm-pool.js';
import { badRowError, checkScoreArgs, mergeTopK, type PartialTopK } from './wasm-topk.js';

/** Below this many multiply-adds one worker answers alone: messages would cost more than they save. */
const SPLIT_MIN_MACS = 4_000_000;

/**
 * Scores q queries against n gallery rows on the given pool. Contract:
 * - queries: q x dim floats, gallery: n x dim floats, row-major. Any other length:
 *   CosfaceError DIMENSION_MISMATCH. q, n >= 0, dim >= 1, k >= 1 integers, else BAD_INPUT.
 * - Scores are inner products (cosine similarities when the rows are unit vectors), in float32.
 * - Returns, per query, the min(k, n) best rows, best first (TopK.k says how many; with n = 0 it
 *   is 0 and the arrays are empty). Equal scores are ordered by the lower gallery index first.
 * - NaN or infinite values in a query: BAD_INPUT naming the query. In the gallery: BAD_INPUT
 *   naming the first row whose score is not finite (detected while scanning, at no extra pass).
 * - Galleries backed by a SharedArrayBuffer are read by the workers in place; others are copied
 *   to the workers in slices (one copy per call).
 */
export async function scoreOnPool(pool: WorkerPool, queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK> {
  const kOut = checkScoreArgs(queries, q, gallery, n, dim, k);
  if (q === 0 || n === 0) return { k: kOut, scores: new Float32Array(0), indices: new Int32Array(0) };
  const parts = q * n * dim < SPLIT_MIN_MACS ? 1 : pool.size;
  const ranges = splitRanges(n, parts, 4);
  const shared = gallery.buffer instanceof SharedArrayBuffer;
  const results = await Promise.all(
    ranges.map((r, i) => {
      const slice = shared ? gallery.subarray(r.start * dim, (r.start + r.count) * dim) : gallery.slice(r.start * dim, (r.start + r.count) * dim);
      return pool.request<PartialTopK>(i, { type: 'score', queries, q, gallery: slice, count: r.count, dim, k: kOut, base: r.start }, shared ? [] : [slice.buffer as ArrayBuffer]);
    }),
  );
  const bad = results.find((r) => r.badRow >= 0);
  if (bad) throw badRowError(bad.badRow);
  return mergeTopK(results, q, kOut, kOut);
}

/** A worker pool dedicated to scoring. */
export class WasmScorer {
  private constructor(private readonly pool: WorkerPool) {}

  static async create(opts: { workers?: number } = {}): Promise<WasmScorer> {
    return new WasmScorer(await WorkerPool.create(opts.workers ?? defaultWorkerCount()));
  }

  get workers(): number {
    return this.pool.size;
  }

  /** See scoreOnPool for the contract. */
  score(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK> {
    return scoreOnPool(this.pool, queries, q, gallery, n, dim, k);
  }

  dispose(): Promise<void> {
    return this.pool.close();
  }
}

let shared: Promise<WasmScorer> | undefined;

/**
 * Exact top-k of q queries against n gallery rows (both dim floats per row) by inner product, on
 * a process-wide pool of os.availableParallelism() workers started on first use (its idle workers
 * do not keep the process alive). Errors and results as documented on scoreOnPool:
 * DIMENSION_MISMATCH for wrong lengths, BAD_INPUT for NaN/infinite values (naming the query or
 * gallery row) and for k < 1, and min(k, n) results per query when k > n.
 */
export async function score(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK> {
  // Check arguments before starting any worker, so bad calls fail fast and start nothing.
  checkScoreArgs(queries, q, gallery, n, dim, k);
  shared ??= WasmScorer.create().catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return (await shared).score(queries, q, gallery, n, dim, k);
}
