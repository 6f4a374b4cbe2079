// What the WASM backend says to its workers, whatever they are (Node worker threads in
// wasm-pool.ts, Web Workers in src/web/): the request and answer messages, the handler a worker
// runs over its own instance of the kernels, and the pool interface the backend is written against.
import { isCosfaceError } from '../../errors.js';
import { WasmKernels, type WasmSimd } from './wasm-instance.js';
import type { WasmPlan } from './wasm-plan.js';
import { WasmGraphRunner } from './wasm-runner.js';
import { scoreOnInstance } from './wasm-topk.js';
import { warpOnInstance, type WarpJob } from './wasm-warp.js';

export type WorkerRequest =
  | { id: number; type: 'compile'; graphId: number; plan: WasmPlan }
  | { id: number; type: 'run'; graphId: number; input: Float32Array; n: number }
  | { id: number; type: 'release'; graphId: number }
  | { id: number; type: 'score'; queries: Float32Array; q: number; gallery: Float32Array; count: number; dim: number; k: number; base: number }
  | { id: number; type: 'warp'; job: WarpJob };

export type WorkerResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; code: string; message: string }
  | { id: -1; ok: true; value: 'ready' };

type Body<T> = T extends unknown ? Omit<T, 'id'> : never;
export type RequestBody = Body<WorkerRequest>;

/** A fixed set of workers, each with its own instance of the kernels (requests go to one by index). */
export interface WasmWorkers {
  readonly size: number;
  /** The kernel build every worker runs. */
  readonly simd: WasmSimd;
  request<T>(worker: number, body: RequestBody, transfer?: ArrayBuffer[]): Promise<T>;
  /** The same request on every worker. */
  broadcast<T>(body: RequestBody): Promise<T[]>;
  close(): Promise<void>;
}

/**
 * A worker's side: its own instance of the kernels and the graphs compiled onto it. Returns the
 * function that answers one request (the answer, or the failure with its CosfaceError code).
 */
export function createWorkerHandler(module: WebAssembly.Module): (req: WorkerRequest) => { response: WorkerResponse; transfer: ArrayBuffer[] } {
  const kernels = new WasmKernels(module);
  // Graphs in allocation order: memory is a stack, so a graph's memory is reclaimed once it and
  // every graph compiled after it are released.
  const graphs: { id: number; runner: WasmGraphRunner; released: boolean }[] = [];

  function handle(req: WorkerRequest): { value: unknown; transfer: ArrayBuffer[] } {
    switch (req.type) {
      case 'compile': {
        const runner = new WasmGraphRunner(kernels, req.plan);
        // One sample through every kernel, so the engine has optimised them before the first real batch.
        runner.run(new Float32Array(req.plan.inputSize), 1);
        graphs.push({ id: req.graphId, runner, released: false });
        return { value: null, transfer: [] };
      }
      case 'run': {
        const g = graphs.find((e) => e.id === req.graphId && !e.released);
        if (!g) throw new Error(`graph ${req.graphId} is not compiled on this worker`);
        const out = g.runner.run(req.input, req.n);
        return { value: out, transfer: [out.buffer as ArrayBuffer] };
      }
      case 'release': {
        const g = graphs.find((e) => e.id === req.graphId);
        if (g) g.released = true;
        while (graphs.length > 0 && graphs[graphs.length - 1]!.released) graphs.pop()!.runner.dispose();
        return { value: null, transfer: [] };
      }
      case 'score': {
        const r = scoreOnInstance(kernels, req.queries, req.q, req.gallery, req.count, req.dim, req.k, req.base);
        return { value: r, transfer: [r.scores.buffer as ArrayBuffer, r.indices.buffer as ArrayBuffer] };
      }
      case 'warp': {
        const out = warpOnInstance(kernels, req.job);
        return { value: out, transfer: [out.buffer as ArrayBuffer] };
      }
    }
  }

  return (req) => {
    try {
      const { value, transfer } = handle(req);
      return { response: { id: req.id, ok: true, value }, transfer };
    } catch (e) {
      const code = isCosfaceError(e) ? e.code : 'WASM_ERROR';
      return { response: { id: req.id, ok: false, code, message: (e as Error).message ?? String(e) }, transfer: [] };
    }
  };
}
