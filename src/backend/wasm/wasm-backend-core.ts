// The WebAssembly backend over any set of workers (Node worker threads, browser Web Workers):
// graphs planned once on the calling thread, then laid out in the linear memory of every worker;
// a batch is split into contiguous runs of samples, one per worker, so all cores work on one call.
import { CosfaceError } from '../../errors.js';
import type { Graph } from '../../graph/ir.js';
import { numel } from '../../graph/ir.js';
import type { Backend, CompiledGraph } from '../backend.js';
import { splitRanges } from './split-ranges.js';
import { planGraph } from './wasm-plan.js';
import type { WasmWorkers } from './wasm-protocol.js';
import { warpOnPool } from './wasm-warp.js';

export interface WasmBackendCore extends Backend {
  readonly name: 'wasm';
  readonly workers: number;
}

let nextGraphId = 1;

class WasmCompiledGraph implements CompiledGraph {
  private disposed = false;
  private readonly inSize: number;
  private readonly outSize: number;

  constructor(readonly graph: Graph, private readonly pool: WasmWorkers, private readonly graphId: number) {
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

/** The backend on started workers; dispose() closes them. */
export function wasmBackendOnWorkers(pool: WasmWorkers): WasmBackendCore {
  const workers = pool.size;
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
    warp: (img, transforms, outW, outH, warpOpts) => warpOnPool(pool, img, transforms, outW, outH, warpOpts),
    dispose: () => pool.close(),
  };
}
