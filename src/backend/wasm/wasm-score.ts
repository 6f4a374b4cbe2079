// Exact top-k by inner product on the WASM kernels, split over a worker pool and chunked over the
// gallery. score() is the shared entry point; WasmScorer binds it to a pool of chosen size.
import type { TopK } from '../backend.js';
import { CosfaceError } from '../../errors.js';
import { loadWasmBuild, loadWasmModule, WasmKernels, type WasmSimd, type WasmSimdChoice } from './wasm-kernels.js';
import { defaultWorkerCount, splitRanges, WorkerPool } from './wasm-pool.js';
import { badRowError, checkGalleryArgs, checkQueryArgs, checkScoreArgs, mergeTopK, scoreOnInstance, scoreResident, type PartialTopK } from './wasm-topk.js';

/** Below this many multiply-adds the calling thread answers alone: messages would cost more. */
const SPLIT_MIN_MACS = 4_000_000;

const local = new Map<WasmSimd, WasmKernels>();

/** An instance of the kernels on the calling thread, for galleries that workers cannot share. */
function localKernels(simd: WasmSimd): WasmKernels {
  let k = local.get(simd);
  if (!k) {
    k = new WasmKernels(loadWasmModule(simd));
    local.set(simd, k);
  }
  return k;
}

/**
 * Scores q queries against n gallery rows on the given pool. Contract:
 * - queries: q x dim floats, gallery: n x dim floats, row-major. Any other length:
 *   CosfaceError DIMENSION_MISMATCH. q, n >= 0, dim >= 1, k >= 1 integers, else BAD_INPUT.
 * - Scores are inner products (cosine similarities when the rows are unit vectors), in float32.
 * - Returns, per query, the min(k, n) best rows, best first (TopK.k says how many; with n = 0 it
 *   is 0 and the arrays are empty). Equal scores are ordered by the lower gallery index first.
 * - NaN or infinite values in a query: BAD_INPUT naming the query. In the gallery: BAD_INPUT
 *   naming the first row whose score is not finite (detected while scanning, at no extra pass).
 * - Galleries backed by a SharedArrayBuffer are split over the workers, which read them in place.
 *   Others, and small jobs, are scored on the calling thread: handing a plain buffer to workers
 *   would copy the whole gallery on every call, which costs more than the scan itself. Keep a
 *   large gallery in a SharedArrayBuffer to score it on every core.
 */
export async function scoreOnPool(pool: WorkerPool, queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK> {
  const kOut = checkScoreArgs(queries, q, gallery, n, dim, k);
  if (q === 0 || n === 0) return { k: kOut, scores: new Float32Array(0), indices: new Int32Array(0) };
  let results: PartialTopK[];
  if (!(gallery.buffer instanceof SharedArrayBuffer) || q * n * dim < SPLIT_MIN_MACS) {
    results = [scoreOnInstance(localKernels(pool.simd), queries, q, gallery, n, dim, kOut, 0)];
  } else {
    results = await Promise.all(
      splitRanges(n, pool.size, 4).map((r, i) =>
        pool.request<PartialTopK>(i, { type: 'score', queries, q, gallery: gallery.subarray(r.start * dim, (r.start + r.count) * dim), count: r.count, dim, k: kOut, base: r.start }),
      ),
    );
  }
  const bad = results.find((r) => r.badRow >= 0);
  if (bad) throw badRowError(bad.badRow);
  return mergeTopK(results, q, kOut, kOut);
}

/**
 * A gallery kept in the linear memory of its own kernel instance on the calling thread, scored in
 * place. score() on a plain Float32Array must copy every row into linear memory on every call (a
 * WASM kernel can read nothing else), which costs more than the scan; a resident gallery pays that
 * copy once, at create(), and each scan then reads the rows straight from memory. Same results
 * and errors as score() (see scoreOnPool).
 */
export class WasmGallery {
  private disposed = false;

  private constructor(
    private readonly kernels: WasmKernels,
    private readonly ptr: number,
    /** Rows held. */
    readonly n: number,
    /** Floats per row. */
    readonly dim: number,
  ) {}

  /**
   * Copies gallery (n x dim floats, row-major) into a new instance's memory. BAD_INPUT or
   * DIMENSION_MISMATCH as for score(); WASM_ERROR when linear memory cannot hold it (4 GiB at most).
   */
  static create(gallery: Float32Array, n: number, dim: number, opts: { simd?: WasmSimdChoice } = {}): WasmGallery {
    checkGalleryArgs(gallery, n, dim);
    const kernels = new WasmKernels(loadWasmBuild(opts.simd).module);
    return new WasmGallery(kernels, kernels.allocF32(gallery), n, dim);
  }

  /** Exact top-k of q queries (q x dim floats) against the resident rows; contract as score(). */
  score(queries: Float32Array, q: number, k: number): TopK {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this gallery has been disposed');
    checkQueryArgs(queries, q, this.dim, k);
    const kOut = Math.min(k, this.n);
    if (q === 0 || this.n === 0) return { k: kOut, scores: new Float32Array(0), indices: new Int32Array(0) };
    const r = scoreResident(this.kernels, queries, q, this.ptr, this.n, this.dim, kOut);
    if (r.badRow >= 0) throw badRowError(r.badRow);
    return mergeTopK([r], q, kOut, kOut);
  }

  /**
   * Sum of every resident float by a plain SIMD read loop: the memory bandwidth a scan of these
   * rows cannot beat (the reference `bench score` puts beside score()).
   */
  sumAll(): number {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this gallery has been disposed');
    return this.kernels.k.sumFloats(this.ptr, this.n * this.dim);
  }

  /** Drops the instance and its memory (the garbage collector frees it). */
  dispose(): void {
    this.disposed = true;
  }
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
