// What the WASM backend says to its workers, whatever they are (Node worker threads in
// wasm-pool.ts, Web Workers in src/web/): the request and answer messages, the handler a worker
// runs over its own instance of the kernels, and the pool interface the backend is written against.
import { isCosfaceError } from '../../errors.js';
import { WasmKernels, type WasmSimd } from './wasm-instance.js';
import type { WasmPlan } from './wasm-plan.js';
import { WasmGraphRunner } from './wasm-runner.js';
import { scoreOnInstance, scoreResidentClaimed, type PartialTopK } from './wasm-topk.js';
import { warpOnInstance, type WarpJob } from './wasm-warp.js';

export type WorkerRequest =
  | { id: number; type: 'compile'; graphId: number; plan: WasmPlan }
  | { id: number; type: 'run'; graphId: number; input: Float32Array; n: number }
  /** One sample split over all workers layer by layer; only worker 0 gets the input and answers it. */
  | { id: number; type: 'runSplit'; graphId: number; input: Float32Array | null }
  | { id: number; type: 'release'; graphId: number }
  | { id: number; type: 'score'; queries: Float32Array; q: number; gallery: Float32Array; count: number; dim: number; k: number; base: number }
  | { id: number; type: 'warp'; job: WarpJob }
  /**
   * A worker's share of a resident gallery's scan (wasm-score.ts, WasmPoolGallery): the rows at
   * byte offset `rows` of the gallery's shared memory, n of them, in chunks of chunkRows that the
   * workers claim one at a time from control[0] (an Int32 counter shared by the scan) until none
   * is left, with this worker's scratch from byte offset `scratch`. setup (the shared-memory build
   * and the memory) comes with a worker's first request for the gallery `key`. op 'sum' runs the
   * plain read loop instead. Answers a GalleryShare.
   */
  | {
      id: number; type: 'galleryScan'; key: number; setup: { module: WebAssembly.Module; memory: WebAssembly.Memory } | null;
      op: 'score' | 'sum'; rows: number; n: number; dim: number; chunkRows: number; control: SharedArrayBuffer;
      queries: Float32Array | null; q: number; k: number; scratch: number;
    }
  /** Forget the instance over gallery `key`'s memory. */
  | { id: number; type: 'galleryRelease'; key: number };

export type WorkerResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; code: string; message: string }
  | { id: -1; ok: true; value: 'ready' };

/** What a worker scanned of a resident gallery: how many chunks, their top-k (null if it got none) or sum. */
export interface GalleryShare {
  chunks: number;
  part: PartialTopK | null;
  sum: number;
}

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
  /**
   * True when the workers also share one memory (SplitSetup) and can run one sample together
   * ('runSplit', sent to every worker at once); absent or false otherwise (browsers without
   * cross-origin isolation, one worker).
   */
  readonly canSplit?: boolean;
}

/** What a worker needs to take part in split runs: the shared-memory build, the memory, its place. */
export interface SplitSetup {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** 2 Int32 of barrier state (arrivals, generation) shared by the workers. */
  sync: SharedArrayBuffer;
  index: number;
  count: number;
}

/**
 * How long a worker spins at a layer barrier before it sleeps. A layer's share lasts 10-1000 us;
 * a sleeping worker needs a futex wake-up (tens of microseconds, more where another process holds
 * the core), and one face crosses 51 barriers, so a spin shorter than a layer turns every small
 * imbalance into a wake-up: 2,000 loads (about 4 us) made a face 11.5-14 ms instead of 5.6-6.2 ms
 * on this 2-core VM (2026-12-06). Spinning costs a core only while a split run is in progress.
 */
export const BARRIER_SPIN_MS = 1;

/** A barrier for `count` threads over sync: spins up to BARRIER_SPIN_MS, then sleeps in Atomics.wait. */
function makeBarrier(sync: SharedArrayBuffer, count: number): () => void {
  const state = new Int32Array(sync, 0, 2);
  return () => {
    const gen = Atomics.load(state, 1);
    if (Atomics.add(state, 0, 1) === count - 1) {
      Atomics.store(state, 0, 0);
      Atomics.add(state, 1, 1);
      Atomics.notify(state, 1);
      return;
    }
    let spins = 0;
    const start = performance.now();
    let sleeping = false;
    let waited = 0;
    while (Atomics.load(state, 1) === gen) {
      if (!sleeping) {
        // The clock is read every 256 loads (a read costs more than a load).
        if ((++spins & 255) === 0 && performance.now() - start > BARRIER_SPIN_MS) sleeping = true;
        continue;
      }
      Atomics.wait(state, 1, gen, 5);
      // A worker that died mid-run never arrives: fail this run rather than wait forever.
      if (++waited > 6000) throw new Error('a split run waited 30 s for another worker at a layer barrier');
    }
  };
}

/**
 * A worker's side: its own instance of the kernels and the graphs compiled onto it. Returns the
 * function that answers one request (the answer, or the failure with its CosfaceError code).
 */
export function createWorkerHandler(module: WebAssembly.Module, split?: SplitSetup): (req: WorkerRequest) => { response: WorkerResponse; transfer: ArrayBuffer[] } {
  const kernels = new WasmKernels(module);
  // Every worker lays out every graph a second time in the shared memory, in the same order, so
  // all workers' runners there have the same addresses (they write the same constants).
  const shared = split ? new WasmKernels(split.module, split.memory) : null;
  const barrier = split ? makeBarrier(split.sync, split.count) : () => undefined;
  // Graphs in allocation order: memory is a stack, so a graph's memory is reclaimed once it and
  // every graph compiled after it are released.
  const graphs: { id: number; runner: WasmGraphRunner; splitRunner: WasmGraphRunner | null; released: boolean }[] = [];
  /** An instance of the shared-memory build over each resident gallery's memory, by key. */
  const galleries = new Map<number, WasmKernels>();

  function handle(req: WorkerRequest): { value: unknown; transfer: ArrayBuffer[] } {
    switch (req.type) {
      case 'compile': {
        const runner = new WasmGraphRunner(kernels, req.plan);
        // One sample through every kernel, so the engine has optimised them before the first real batch.
        runner.run(new Float32Array(req.plan.inputSize), 1);
        const splitRunner = shared && split ? new WasmGraphRunner(shared, req.plan, 1, split.count) : null;
        if (splitRunner && split) {
          // Every worker gets this compile at once (a broadcast), so they can run blank samples
          // split together: the shared build's kernels are then optimised before the first call.
          const blank = split.index === 0 ? new Float32Array(req.plan.inputSize) : null;
          for (let i = 0; i < 2; i++) splitRunner.runPart(blank, split.index, split.count, barrier);
        }
        graphs.push({ id: req.graphId, runner, splitRunner, released: false });
        return { value: null, transfer: [] };
      }
      case 'run': {
        const g = graphs.find((e) => e.id === req.graphId && !e.released);
        if (!g) throw new Error(`graph ${req.graphId} is not compiled on this worker`);
        const out = g.runner.run(req.input, req.n);
        return { value: out, transfer: [out.buffer as ArrayBuffer] };
      }
      case 'runSplit': {
        const g = graphs.find((e) => e.id === req.graphId && !e.released);
        if (!g?.splitRunner || !split) throw new Error(`graph ${req.graphId} cannot run split on this worker`);
        const out = g.splitRunner.runPart(req.input, split.index, split.count, barrier);
        return { value: out, transfer: out ? [out.buffer as ArrayBuffer] : [] };
      }
      case 'release': {
        const g = graphs.find((e) => e.id === req.graphId);
        if (g) g.released = true;
        while (graphs.length > 0 && graphs[graphs.length - 1]!.released) {
          const done = graphs.pop()!;
          done.runner.dispose();
          done.splitRunner?.dispose();
        }
        return { value: null, transfer: [] };
      }
      case 'score': {
        const r = scoreOnInstance(kernels, req.queries, req.q, req.gallery, req.count, req.dim, req.k, req.base);
        return { value: r, transfer: [r.scores.buffer as ArrayBuffer, r.indices.buffer as ArrayBuffer] };
      }
      case 'galleryScan': {
        let g = galleries.get(req.key);
        if (!g) {
          if (!req.setup) throw new Error(`gallery ${req.key} is not set up on this worker`);
          g = new WasmKernels(req.setup.module, req.setup.memory);
          galleries.set(req.key, g);
        }
        const control = new Int32Array(req.control);
        const chunks = Math.ceil(req.n / req.chunkRows);
        // Claim chunks until none is left: a worker that starts late (its core busy) takes fewer.
        const claim = (): { r0: number; rows: number } | null => {
          const c = Atomics.add(control, 0, 1);
          return c < chunks ? { r0: c * req.chunkRows, rows: Math.min(req.chunkRows, req.n - c * req.chunkRows) } : null;
        };
        if (req.op === 'sum') {
          const share: GalleryShare = { chunks: 0, part: null, sum: 0 };
          for (let c = claim(); c; c = claim()) {
            share.sum += g.k.sumFloats(req.rows + c.r0 * req.dim * 4, c.rows * req.dim);
            share.chunks++;
          }
          return { value: share, transfer: [] };
        }
        g.reset(req.scratch);
        const { part, claimed } = scoreResidentClaimed(g, req.queries!, req.q, req.rows, req.dim, req.k, req.chunkRows, claim);
        const share: GalleryShare = { chunks: claimed, part, sum: 0 };
        return { value: share, transfer: part ? [part.scores.buffer as ArrayBuffer, part.indices.buffer as ArrayBuffer] : [] };
      }
      case 'galleryRelease': {
        galleries.delete(req.key);
        return { value: null, transfer: [] };
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
