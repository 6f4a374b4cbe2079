// The WebAssembly CPU backend in Node: a pool of worker threads (wasm-pool.ts) running the backend of
// wasm-backend-core.ts, plus exact top-k scoring on the same workers.
import type { TopK } from '../backend.js';
import { wasmBackendOnWorkers, type WasmBackendCore } from './wasm-backend-core.js';
import type { WasmSimdChoice } from './wasm-kernels.js';
import { defaultWorkerCount, WorkerPool } from './wasm-pool.js';
import { scoreOnPool, uploadToPool, type PoolGalleryOptions, type WasmPoolGallery } from './wasm-score.js';

export interface WasmBackendOptions {
  /** Worker threads, each with its own WASM instance (default: os.availableParallelism()). */
  workers?: number;
  /**
   * Kernel build: 'auto' (default) takes the relaxed-SIMD build (fused multiply-add) where the
   * runtime supports it (Node >= 22; Node 20-21 behind a V8 flag that loading turns on, see
   * relaxedSimdSupported) and the plain SIMD build otherwise or with COSFACE_WASM_SIMD=simd; 'simd' or 'relaxed' force one (WASM_ERROR if unsupported).
   */
  simd?: WasmSimdChoice;
}

export interface WasmBackend extends WasmBackendCore {
  /** Exact top-k by inner product on this backend's workers; contract as in wasm-score.ts. */
  score(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK>;
  /** A gallery resident in a memory this backend's workers scan in place (see WasmPoolGallery). */
  upload(gallery: Float32Array, n: number, dim: number, opts?: PoolGalleryOptions): WasmPoolGallery;
}

/** Starts the worker pool and returns the backend; fails with WASM_ERROR if the kernels cannot load. */
export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  const pool = await WorkerPool.create(opts.workers ?? defaultWorkerCount(), opts.simd);
  return {
    ...wasmBackendOnWorkers(pool),
    score: (queries, q, gallery, n, dim, k) => scoreOnPool(pool, queries, q, gallery, n, dim, k),
    upload: (gallery, n, dim, o) => uploadToPool(pool, gallery, n, dim, o),
  };
}
