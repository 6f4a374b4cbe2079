// Exact top-k by inner product on the WASM kernels, split over a worker pool and chunked over the
// gallery. score() is the shared entry point; WasmScorer binds it to a pool of chosen size.
import type { TopK } from '../backend.js';
import { CosfaceError } from '../../errors.js';
import { loadSharedWasmModule, loadWasmBuild, loadWasmModule, WasmKernels, type WasmSimd, type WasmSimdChoice } from './wasm-kernels.js';
import { defaultWorkerCount, splitRanges, WorkerPool, type RequestBody } from './wasm-pool.js';
import type { GalleryShare } from './wasm-protocol.js';
import { badRowError, checkGalleryArgs, checkQueryArgs, checkScoreArgs, firstBadRow, mergeTopK, residentScanBytes, scoreOnInstance, scoreResident, type PartialTopK } from './wasm-topk.js';

/** Below this many multiply-adds the calling thread answers alone: messages would cost more. */
export const SPLIT_MIN_MACS = 4_000_000;

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

/** Largest linear memory (64 KiB pages): 4 GiB, the most a 32-bit WASM memory addresses. */
const MAX_PAGES = 65536;
const PAGE = 65536;
/** The shared-memory build asks for at least this many pages (its initialMemory, 16 MiB). */
const SHARED_INITIAL_PAGES = 256;

export interface WasmGalleryOptions {
  /** Kernel build (default 'auto', see loadWasmBuild). */
  simd?: WasmSimdChoice;
  /** Rows to reserve room for (default n); the room grows by half when an append needs more. */
  capacity?: number;
  /**
   * Keep the rows in a shared WebAssembly.Memory (where the runtime has the shared-memory build),
   * so that worker threads can scan them in place (WasmPoolGallery). Default false.
   */
  shared?: boolean;
}

/**
 * A gallery kept in the linear memory of its own kernel instance, scored in place. score() on a
 * plain Float32Array must copy every row into linear memory on every call (a WASM kernel can read
 * nothing else), which costs more than the scan; a resident gallery pays that copy once, at
 * create() or append(), and each scan then reads the rows straight from memory. Same results and
 * errors as score() (see scoreOnPool); row i of the gallery is index i of the results.
 *
 * Rows can be appended, overwritten and removed in place. Layout of the memory: the module's
 * static data, then room for `capacity` rows, then the scratch of the scans in flight (each scan
 * gets a region of its own, so several threads can scan a shared memory at once). A mutation
 * while a scan is in flight (a WasmPoolGallery's workers still reading) fails with WASM_ERROR:
 * callers order their updates after the scans they started.
 */
export class WasmGallery {
  private disposed = false;
  private rows: number;
  private cap: number;
  /** Scans in flight and the first free scratch byte above the rows' room. */
  private scans = 0;
  private scratchTop = 0;

  private constructor(
    /** The calling thread's instance over the gallery's memory. */
    private readonly kernels: WasmKernels,
    /** Byte offset of row 0. */
    readonly ptr: number,
    n: number,
    cap: number,
    /** Floats per row. */
    readonly dim: number,
    /** The build the instance runs. */
    readonly simd: WasmSimd,
    /** For a shared gallery: its memory and the module that instantiates over it (for workers). */
    readonly shared: { module: WebAssembly.Module; memory: WebAssembly.Memory } | null,
  ) {
    this.rows = n;
    this.cap = cap;
  }

  /**
   * Copies gallery (n x dim floats, row-major) into a new instance's memory. BAD_INPUT or
   * DIMENSION_MISMATCH as for score(); WASM_ERROR when linear memory cannot hold it (4 GiB at
   * most, rows and scratch together) or when `shared` is asked where the runtime has no
   * shared-memory build.
   */
  static create(gallery: Float32Array, n: number, dim: number, opts: WasmGalleryOptions = {}): WasmGallery {
    checkGalleryArgs(gallery, n, dim);
    const capacity = opts.capacity ?? n;
    if (!Number.isInteger(capacity) || capacity < n) throw new CosfaceError('BAD_INPUT', `capacity must be an integer >= n (${n}), got ${String(capacity)}`);
    const { module, simd } = loadWasmBuild(opts.simd);
    let kernels: WasmKernels;
    let shared: WasmGallery['shared'] = null;
    if (opts.shared) {
      const sharedModule = loadSharedWasmModule(simd);
      if (!sharedModule) throw new CosfaceError('WASM_ERROR', 'this runtime cannot run the shared-memory WASM build (a gallery for worker threads needs it)');
      const memory = new WebAssembly.Memory({ initial: SHARED_INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
      kernels = new WasmKernels(sharedModule, memory);
      shared = { module: sharedModule, memory };
    } else kernels = new WasmKernels(module);
    const ptr = kernels.alloc(0);
    const g = new WasmGallery(kernels, ptr, 0, 0, dim, simd, shared);
    g.reserve(Math.max(capacity, 1));
    kernels.f32.set(gallery, ptr >> 2);
    g.rows = n;
    return g;
  }

  /** Rows held. */
  get n(): number {
    return this.rows;
  }

  /** Rows the memory has room for before an append grows it. */
  get capacity(): number {
    return this.cap;
  }

  /** Exact top-k of q queries (q x dim floats) against the resident rows; contract as score(). */
  score(queries: Float32Array, q: number, k: number): TopK {
    this.checkLive();
    checkQueryArgs(queries, q, this.dim, k);
    const kOut = Math.min(k, this.rows);
    if (q === 0 || this.rows === 0) return { k: kOut, scores: new Float32Array(0), indices: new Int32Array(0) };
    const [at] = this.beginScan([residentScanBytes(q, this.rows, this.dim, kOut)]);
    let r: PartialTopK;
    try {
      this.kernels.reset(at!);
      r = scoreResident(this.kernels, queries, q, this.ptr, this.rows, this.dim, kOut);
    } finally {
      this.endScan();
    }
    if (r.badRow >= 0) throw badRowError(r.badRow);
    return mergeTopK([r], q, kOut, kOut);
  }

  /**
   * Sum of every resident float by a plain SIMD read loop: the memory bandwidth a scan of these
   * rows cannot beat (the reference `bench score` puts beside score()).
   */
  sumAll(): number {
    this.checkLive();
    return this.kernels.k.sumFloats(this.ptr, this.rows * this.dim);
  }

  /** Appends count rows (count x dim floats), growing the room when needed. */
  append(rows: Float32Array, count = rows.length / this.dim): void {
    this.checkMutable();
    checkGalleryArgs(rows, count, this.dim);
    if (this.rows + count > this.cap) this.reserve(Math.max(this.rows + count, Math.ceil(this.cap * 1.5)));
    this.kernels.f32.set(rows, (this.ptr >> 2) + this.rows * this.dim);
    this.rows += count;
  }

  /** Overwrites row `row` (< n) with v (dim floats). */
  set(row: number, v: Float32Array): void {
    this.checkMutable();
    this.checkRow(row);
    checkGalleryArgs(v, 1, this.dim);
    this.kernels.f32.set(v, (this.ptr >> 2) + row * this.dim);
  }

  /** Removes row `row`: the last row moves into its place (row order carries no meaning). */
  removeSwap(row: number): void {
    this.checkMutable();
    this.checkRow(row);
    const last = this.rows - 1;
    if (row !== last) {
      const base = this.ptr >> 2;
      this.kernels.f32.copyWithin(base + row * this.dim, base + last * this.dim, base + (last + 1) * this.dim);
    }
    this.rows = last;
  }

  /** A copy of row `row`. */
  row(row: number): Float32Array {
    this.checkLive();
    this.checkRow(row);
    const o = (this.ptr >> 2) + row * this.dim;
    return this.kernels.f32.slice(o, o + this.dim);
  }

  /** Drops the instance and its memory (the garbage collector frees it). */
  dispose(): void {
    this.disposed = true;
  }

  /**
   * Reserves one scratch region per size for a scan, above the rows' room, growing memory to
   * hold them; returns their byte offsets. Each beginScan needs one endScan.
   */
  beginScan(bytes: readonly number[]): number[] {
    this.checkLive();
    if (this.scans === 0) this.scratchTop = this.rowsEnd();
    const at: number[] = [];
    for (const b of bytes) {
      at.push(this.scratchTop);
      this.scratchTop = Math.ceil((this.scratchTop + b) / 64) * 64;
    }
    this.ensureBytes(this.scratchTop);
    this.scans++;
    return at;
  }

  endScan(): void {
    this.scans = Math.max(0, this.scans - 1);
  }

  /** Scans in flight (begun and not ended). */
  get scansInFlight(): number {
    return this.scans;
  }

  private rowsEnd(): number {
    return Math.ceil((this.ptr + this.cap * this.dim * 4) / 64) * 64;
  }

  private reserve(cap: number): void {
    const end = this.ptr + cap * this.dim * 4;
    if (end > MAX_PAGES * PAGE) {
      throw new CosfaceError('WASM_ERROR', `a WASM gallery of ${cap} x ${this.dim} floats needs ${Math.ceil(end / 2 ** 20)} MiB of linear memory, above the 4 GiB a WASM memory holds`);
    }
    this.ensureBytes(end);
    this.cap = cap;
  }

  private ensureBytes(end: number): void {
    const memory = this.kernels.k.memory;
    const have = memory.buffer.byteLength;
    if (end <= have) return;
    try {
      memory.grow(Math.ceil((end - have) / PAGE));
    } catch (e) {
      throw new CosfaceError('WASM_ERROR', `WASM memory cannot grow to ${Math.ceil(end / 2 ** 20)} MiB: ${(e as Error).message}`, { cause: e });
    }
  }

  private checkLive(): void {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this gallery has been disposed');
  }

  private checkMutable(): void {
    this.checkLive();
    if (this.scans > 0) throw new CosfaceError('WASM_ERROR', 'a gallery cannot change while a scan of it is in flight: wait for the scan first');
  }

  private checkRow(row: number): void {
    if (!Number.isInteger(row) || row < 0 || row >= this.rows) throw new CosfaceError('BAD_INPUT', `row must be an integer in [0, ${this.rows}), got ${String(row)}`);
  }
}

let nextGalleryKey = 1;

/**
 * A gallery resident in a shared WebAssembly.Memory that every worker of a pool scans in place:
 * score() splits the rows into one contiguous part per worker (each worker scans its part with
 * the same kernels as WasmGallery, in a scratch region of its own) and merges the parts' top-k
 * exactly; small jobs run on the calling thread over the same memory. Rows are changed on the
 * calling thread (append, set, removeSwap) and are visible to the workers at once; a change while
 * a score() is in flight fails with WASM_ERROR (await the scan first). Results and errors as
 * score() (see scoreOnPool), row i being index i.
 */
export class WasmPoolGallery {
  private readonly key = nextGalleryKey++;
  /** Workers that have instantiated the kernels over this gallery's memory. */
  private readonly ready = new Set<number>();
  private disposed = false;

  constructor(
    private readonly pool: WorkerPool,
    /** The rows, in a shared memory. */
    readonly local: WasmGallery,
    /** Multiply-adds (q x n x dim) from which a scan is split over the workers (default 4M). */
    private readonly splitFrom = SPLIT_MIN_MACS,
  ) {
    if (!local.shared) throw new CosfaceError('WASM_ERROR', 'a pool gallery needs its rows in a shared memory');
  }

  get n(): number {
    return this.local.n;
  }

  get dim(): number {
    return this.local.dim;
  }

  /** Workers a large scan is split over. */
  get workers(): number {
    return this.pool.size;
  }

  append(rows: Float32Array, count?: number): void {
    this.local.append(rows, count);
  }

  set(row: number, v: Float32Array): void {
    this.local.set(row, v);
  }

  removeSwap(row: number): void {
    this.local.removeSwap(row);
  }

  row(row: number): Float32Array {
    return this.local.row(row);
  }

  /**
   * Exact top-k of q queries against the rows; contract as score(). Jobs of at least splitFrom
   * multiply-adds (default 4M) are split over the workers (opts.parts of them, default all);
   * smaller ones run on the calling thread.
   */
  async score(queries: Float32Array, q: number, k: number, opts: { parts?: number } = {}): Promise<TopK> {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this gallery has been disposed');
    const { n, dim } = this.local;
    checkQueryArgs(queries, q, dim, k);
    const kOut = Math.min(k, n);
    if (q === 0 || n === 0) return { k: kOut, scores: new Float32Array(0), indices: new Int32Array(0) };
    if (this.threadsFor(q) === 1 && opts.parts === undefined) return this.local.score(queries, q, k);
    const shares = await this.onWorkers(opts.parts, (chunkRows, scratch) => ({ op: 'score', queries, q, k: kOut, chunkRows, scratch }), residentScanBytes(q, this.chunkRows(), dim, kOut));
    const parts = shares.flatMap((s) => (s.part ? [s.part] : []));
    const bad = firstBadRow(parts);
    if (bad >= 0) throw badRowError(bad);
    return mergeTopK(parts, q, kOut, kOut);
  }

  /** Threads a score() of q queries runs on: 1 (the calling thread) below splitFrom multiply-adds, else the workers. */
  threadsFor(q: number): number {
    return q * this.local.n * this.local.dim < this.splitFrom ? 1 : this.pool.size;
  }

  /**
   * The plain SIMD read loop (sumFloats) over every row, split over `parts` workers (default
   * all) as score() splits them: the read bandwidth those threads reach together.
   */
  async sumAll(parts = this.pool.size): Promise<number> {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this gallery has been disposed');
    const shares = await this.onWorkers(parts, (chunkRows, scratch) => ({ op: 'sum', queries: null, q: 0, k: 1, chunkRows, scratch }), 0);
    return shares.reduce((a, s) => a + s.sum, 0);
  }

  /** Frees the workers' instances over this memory, then the memory. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const had = [...this.ready];
    this.ready.clear();
    await Promise.allSettled(had.map((w) => this.pool.request(w, { type: 'galleryRelease', key: this.key })));
    this.local.dispose();
  }

  /**
   * Rows per chunk that the workers claim: about CHUNKS_PER_WORKER chunks per worker, so that a
   * worker that starts late or runs slowly takes fewer (each worker keeps one running top-k over
   * the chunks it claims, in its linear memory).
   */
  private chunkRows(): number {
    const per = Math.ceil(this.local.n / (this.pool.size * CHUNKS_PER_WORKER));
    return Math.max(MIN_CHUNK_ROWS, Math.ceil(per / 4) * 4);
  }

  /**
   * Sends one scan to `parts` workers (default all) that claim its chunks from a shared counter,
   * and resolves with the shares of the workers that took any, as soon as every chunk is answered
   * for: a worker that wakes after the others took every chunk is not waited for (it finds none
   * and touches nothing). Each worker gets scratchBytes of scratch of its own.
   */
  private async onWorkers(
    parts: number | undefined,
    body: (chunkRows: number, scratch: number) => Pick<GalleryScanBody, 'op' | 'queries' | 'q' | 'k' | 'chunkRows' | 'scratch'>,
    scratchBytes: number,
  ): Promise<GalleryShare[]> {
    const local = this.local;
    const workers = Math.max(1, Math.min(parts ?? this.pool.size, this.pool.size));
    const chunkRows = this.chunkRows();
    const chunks = Math.ceil(local.n / chunkRows);
    const control = new SharedArrayBuffer(4);
    const at = local.beginScan(new Array<number>(workers).fill(scratchBytes));
    try {
      return await new Promise<GalleryShare[]>((resolve, reject) => {
        const shares: GalleryShare[] = [];
        let answered = 0;
        let covered = 0;
        let failure: unknown;
        for (let i = 0; i < workers; i++) {
          const setup = this.ready.has(i) ? null : local.shared!;
          this.ready.add(i);
          const request = { type: 'galleryScan' as const, key: this.key, setup, rows: local.ptr, n: local.n, dim: local.dim, control, ...body(chunkRows, at[i]!) };
          this.pool.request<GalleryShare>(i, request).then(
            (share) => {
              answered++;
              if (share.chunks > 0) shares.push(share);
              covered += share.chunks;
              if (covered === chunks && failure === undefined) resolve(shares);
              else if (answered === workers) reject(failure ?? new CosfaceError('WASM_ERROR', `a gallery scan answered ${covered} of ${chunks} chunks`));
            },
            (e: unknown) => {
              answered++;
              failure ??= e;
              this.ready.delete(i);
              // A failed worker may have claimed a chunk it never scanned: the scan cannot finish.
              if (answered === workers) reject(failure);
            },
          );
        }
      });
    } finally {
      // Every worker that claimed a chunk has answered by now; the others claim none and touch
      // nothing, so the scratch and the rows are free again (after a failure, only once all answered).
      local.endScan();
    }
  }
}

type GalleryScanBody = Extract<RequestBody, { type: 'galleryScan' }>;

/** Chunks per worker of a pool gallery's scan, and the fewest rows a chunk holds. */
const CHUNKS_PER_WORKER = 8;
const MIN_CHUNK_ROWS = 2048;

/** Options of a resident gallery on a pool: its room (rows) and the size from which scans are split. */
export interface PoolGalleryOptions {
  /** Rows to reserve room for (default n). */
  capacity?: number;
  /** Multiply-adds (queries x rows x dim) from which a scan is split over the workers (default 4M). */
  splitFrom?: number;
}

/** A resident gallery on a pool's workers (see WasmPoolGallery). */
export function uploadToPool(pool: WorkerPool, gallery: Float32Array, n: number, dim: number, opts: PoolGalleryOptions = {}): WasmPoolGallery {
  const local = WasmGallery.create(gallery, n, dim, { simd: pool.simd, shared: true, ...(opts.capacity !== undefined ? { capacity: opts.capacity } : {}) });
  return new WasmPoolGallery(pool, local, opts.splitFrom);
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

  /**
   * Copies gallery (n x dim floats) into a shared memory this scorer's workers scan in place
   * (WasmPoolGallery); errors as WasmGallery.create.
   */
  upload(gallery: Float32Array, n: number, dim: number, opts: PoolGalleryOptions = {}): WasmPoolGallery {
    return uploadToPool(this.pool, gallery, n, dim, opts);
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
  return (await sharedScorer()).score(queries, q, gallery, n, dim, k);
}

function sharedScorer(): Promise<WasmScorer> {
  shared ??= WasmScorer.create().catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

/**
 * A resident gallery (n x dim floats copied once into a shared memory) on the process-wide pool
 * that score() uses: scans split over its workers, rows changed in place. Errors as
 * WasmGallery.create; WASM_ERROR where the runtime has no shared-memory build.
 */
export async function upload(gallery: Float32Array, n: number, dim: number, opts: PoolGalleryOptions = {}): Promise<WasmPoolGallery> {
  checkGalleryArgs(gallery, n, dim);
  return (await sharedScorer()).upload(gallery, n, dim, opts);
}
