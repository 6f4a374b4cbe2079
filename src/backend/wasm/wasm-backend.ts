// The WebAssembly CPU backend: graphs planned once on the main thread, then laid out in the linear
// memory of every worker of a pool; a batch is split into contiguous runs of samples, one per
// worker, so all cores work on one call.
import { CosfaceError } from '../../errors.js';
import type { Graph } from '../../graph/ir.js';
import { numel } from '../../graph/ir.js';
import type { Backend, CompiledGraph, TopK } from '../backend.js';
import { planGraph } from './wasm-plan.js';
import { defaultWorkerCount, splitRanges, WorkerPool } from './wasm-pool.js';
import type { WasmSimdChoice } from './wasm-kernels.js';
import { scoreOnPool } from './wasm-score.js';
import { warpOnPool } from './wasm-warp.js';

export interface WasmBackendOptions {
  /** Worker threads, each with its own WASM instance (default: os.availableParallelism()). */
  workers?: number;
  /**
   * Kernel build: 'auto' (default) takes the relaxed-SIMD build (fused multiply-add) where the
   * runtime supports it (Node >= 22, or Node 20 started with --experimental-wasm-relaxed-simd)
   * and the plain SIMD build otherwise; 'simd' or 'relaxed' force one (WASM_ERROR if unsupported).
   */
  simd?: WasmSimdChoice;
}

export interface WasmBackend extends Backend {
  readonly name: 'wasm';
  readonly workers: number;
  /** Exact top-k by inner product on this backend's workers; contract as in wasm-score.ts. */
  score(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK>;
}

let nextGraphId = 1;

class WasmCompiledGraph implements CompiledGraph {
  private disposed = false;
  private readonly inSize: number;
  private readonly outSize: number;

  constructor(readonly graph: Graph, private readonly pool: WorkerPool, private readonly graphId: number) {
    this.inSize = numel(graph.input.shape);
    this.outSize = numel(graph.output.shape);
  }

  async run(input: Float32Array, n: number): Promise<Float32Array> {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this compiled graph has been disposed');
    if (!Number.isInteger(n) || n < 1) throw new CosfaceError('EMPTY_BATCH', `batch size must be an integer >= 1, got ${n}`);
    if (input.length !== n * this.inSize) {
      throw new CosfaceError('BAD_INPUT', `input holds ${input.length} floats, expected ${n} x ${this.inSize}`);
    }
    const parts = await Promise.all(
      splitRanges(n, this.pool.size).map((r, i) => {
        const slice = input.slice(r.start * this.inSize, (r.start + r.count) * this.inSize);
        return this.pool.request<Float32Array>(i, { type: 'run', graphId: this.graphId, input: slice, n: r.count }, [slice.buffer as ArrayBuffer]);
      }),
    );
    if (parts.length === 1) return parts[0]!;
    const out = new Float32Array(n * this.outSize);
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // Fire and forget: a pool that is already closed has nothing left to free.
    this.pool.broadcast({ type: 'release', graphId: this.graphId }).catch(() => undefined);
  }
}

/** Starts the worker pool and returns the backend; fails with WASM_ERROR if the kernels cannot load. */
export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  const workers = opts.workers ?? defaultWorkerCount();
  const pool = await WorkerPool.create(workers, opts.simd);
  const simd = pool.simd === 'relaxed' ? 'relaxed SIMD' : 'SIMD';
  return {
    name: 'wasm',
    workers,
    describe: () => `wasm (${simd}, ${workers} worker${workers === 1 ? '' : 's'})`,
    async compile(graph: Graph): Promise<CompiledGraph> {
      const plan = planGraph(graph);
      const graphId = nextGraphId++;
      await pool.broadcast({ type: 'compile', graphId, plan });
      return new WasmCompiledGraph(graph, pool, graphId);
    },
    score: (queries, q, gallery, n, dim, k) => scoreOnPool(pool, queries, q, gallery, n, dim, k),
    warp: (img, transforms, outW, outH, warpOpts) => warpOnPool(pool, img, transforms, outW, outH, warpOpts),
    dispose: () => pool.close(),
  };
}
