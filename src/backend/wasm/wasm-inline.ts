// The WASM backend on the calling thread: one instance of the kernels, no workers. For runtimes
// without worker_threads (workerd) or where one isolate is all there is; the same kernels, plans and
// warp as the worker pool, so the results are the same. Runtime-neutral: it takes the compiled
// WebAssembly.Module from the caller (workerd imports the .wasm as a module; Deno and Bun compile
// the file at startup).
import { CosfaceError } from '../../errors.js';
import type { Graph } from '../../graph/ir.js';
import { numel } from '../../graph/ir.js';
import type { Backend, CompiledGraph, TopK } from '../backend.js';
import { planWarp } from '../warp.js';
import { WasmKernels } from './wasm-instance.js';
import { planGraph } from './wasm-plan.js';
import { WasmGraphRunner } from './wasm-runner.js';
import { badRowError, checkScoreArgs, mergeTopK, scoreOnInstance } from './wasm-topk.js';
import { warpJobs, warpOnInstance } from './wasm-warp.js';

export interface InlineWasmBackend extends Backend {
  readonly name: 'wasm';
  readonly workers: 0;
  /** Exact top-k by inner product on this thread; contract as score() in wasm-score.ts. */
  score(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK>;
  /** The same, synchronous (the scan runs on this thread either way). */
  scoreSync(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): TopK;
  /** The kernel instance, for callers that stage data in its memory themselves (the exact index). */
  readonly kernels: WasmKernels;
}

/** Exact top-k on one kernel instance, with the argument checks and errors of score(). */
export function scoreInline(kernels: WasmKernels, queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): TopK {
  const kOut = checkScoreArgs(queries, q, gallery, n, dim, k);
  if (q === 0 || n === 0) return { k: kOut, scores: new Float32Array(0), indices: new Int32Array(0) };
  const part = scoreOnInstance(kernels, queries, q, gallery, n, dim, kOut, 0);
  if (part.badRow >= 0) throw badRowError(part.badRow);
  return mergeTopK([part], q, kOut, kOut);
}

/** A backend on one instance of `module` (build/cosface.wasm, compiled by the caller). */
export function createInlineWasmBackend(module: WebAssembly.Module, label = 'SIMD'): InlineWasmBackend {
  const kernels = new WasmKernels(module);
  // Graphs in allocation order: memory is a stack, so a graph's memory is reclaimed once it and
  // every graph compiled after it are released (as in wasm-worker.ts).
  const graphs: { runner: WasmGraphRunner; released: boolean }[] = [];
  let disposed = false;
  const alive = () => {
    if (disposed) throw new CosfaceError('WASM_ERROR', 'the WASM backend has been disposed');
  };
  return {
    name: 'wasm',
    workers: 0,
    kernels,
    describe: () => `wasm (${label}, in-process, no workers)`,
    async compile(graph: Graph): Promise<CompiledGraph> {
      alive();
      const plan = planGraph(graph);
      const runner = new WasmGraphRunner(kernels, plan);
      const entry = { runner, released: false };
      graphs.push(entry);
      const inSize = numel(graph.input.shape);
      return {
        graph,
        async run(input: Float32Array, n: number): Promise<Float32Array> {
          alive();
          if (entry.released) throw new CosfaceError('WASM_ERROR', 'this compiled graph has been disposed');
          if (!Number.isInteger(n) || n < 1) throw new CosfaceError('EMPTY_BATCH', `batch size must be an integer >= 1, got ${n}`);
          if (input.length !== n * inSize) throw new CosfaceError('BAD_INPUT', `input holds ${input.length} floats, expected ${n} x ${inSize}`);
          return runner.run(input, n);
        },
        dispose() {
          entry.released = true;
          while (graphs.length > 0 && graphs[graphs.length - 1]!.released) graphs.pop()!.runner.dispose();
        },
      };
    },
    scoreSync: (queries, q, gallery, n, dim, k) => {
      alive();
      return scoreInline(kernels, queries, q, gallery, n, dim, k);
    },
    async score(queries, q, gallery, n, dim, k) {
      return this.scoreSync(queries, q, gallery, n, dim, k);
    },
    async warp(img, transforms, outW, outH, opts) {
      alive();
      return warpOnInstance(kernels, warpJobs(img, planWarp(img, transforms, outW, outH, opts), transforms, 1, false)[0]!);
    },
    async dispose() {
      disposed = true;
    },
  };
}
