// A pool of worker threads, each running wasm-worker with its own instance of the kernels.
// Requests are matched to answers by id; a worker keeps the process alive only while it has
// requests in flight, so a forgotten pool never stops a program from exiting.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CosfaceError, type ErrorCode } from '../../errors.js';
import { loadSharedWasmModule, loadWasmBuild, type WasmSimd, type WasmSimdChoice } from './wasm-kernels.js';
import type { RequestBody, SplitSetup, WasmWorkers, WorkerResponse } from './wasm-protocol.js';

/** Pages (64 KiB) the shared memory of split runs may grow to: the graphs' layouts, not galleries. */
const SHARED_MAX_PAGES = 16384;

export { splitRanges } from './split-ranges.js';
export type { RequestBody } from './wasm-protocol.js';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

class PoolWorker {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on('message', (msg: WorkerResponse) => {
      if (msg.id === -1) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (this.pending.size === 0) worker.unref();
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new CosfaceError(msg.code as ErrorCode, msg.message));
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      worker.unref();
    };
    worker.on('error', (e) => fail(new CosfaceError('WASM_ERROR', `WASM worker failed: ${e.message}`, { cause: e })));
    worker.on('exit', (code) => fail(new CosfaceError('WASM_ERROR', `WASM worker exited (code ${code})`)));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
  }

  request<T>(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ ...body, id }, transfer);
    });
  }
}

/**
 * What a worker runs: wasm-worker.js beside this module when compiled. From source (tsx, vitest)
 * Node 20 cannot start a worker on a .ts file (loader flags in a worker's execArgv do not reach
 * its entry module), so a small bootstrap loads wasm-worker.ts through tsx's tsImport (tsx is a
 * dev dependency, present wherever the sources run).
 */
function workerScript(): { script: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts')) return { script: new URL('./wasm-worker.js', import.meta.url), eval: false };
  // The ESM build of tsx's API (its CommonJS build resolves its loader wrongly from a worker).
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const entry = new URL('./wasm-worker.ts', import.meta.url).href;
  return { script: `import(${JSON.stringify(tsxApi)}).then((tsx) => tsx.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(import.meta.url)}));`, eval: true };
}

export function defaultWorkerCount(): number {
  return availableParallelism();
}

export class WorkerPool implements WasmWorkers {
  private closed = false;

  private constructor(
    private readonly workers: PoolWorker[],
    /** The build every worker runs. */
    readonly simd: WasmSimd,
    /** Whether the workers share a memory for runs of one sample split layer by layer. */
    readonly canSplit: boolean,
  ) {}

  /** Starts count workers and waits until each has instantiated the kernels. */
  static async create(count: number, simdChoice: WasmSimdChoice = 'auto'): Promise<WorkerPool> {
    if (!Number.isInteger(count) || count < 1) throw new CosfaceError('BAD_INPUT', `workers must be an integer >= 1, got ${count}`);
    const { module, simd } = loadWasmBuild(simdChoice);
    const { script, eval: isEval } = workerScript();
    // With 2 or more workers, a memory they all share (where the shared-memory build loads), so
    // that one sample can run split over all of them; otherwise each worker only has its own.
    const sharedModule = count >= 2 ? loadSharedWasmModule(simd) : null;
    const memory = sharedModule ? new WebAssembly.Memory({ initial: 256, maximum: SHARED_MAX_PAGES, shared: true }) : null;
    const sync = sharedModule ? new SharedArrayBuffer(8) : null;
    const started = Array.from({ length: count }, (_, index) => {
      const split: SplitSetup | undefined = sharedModule && memory && sync ? { module: sharedModule, memory, sync, index, count } : undefined;
      const worker = new Worker(script, { workerData: { module, split }, eval: isEval });
      return new Promise<Worker>((resolve, reject) => {
        const onMessage = (m: WorkerResponse) => {
          if (m.id === -1) {
            worker.off('error', onError);
            worker.off('message', onMessage);
            resolve(worker);
          }
        };
        const onError = (e: Error) => reject(new CosfaceError('WASM_ERROR', `WASM worker failed to start: ${e.message}`, { cause: e }));
        worker.on('message', onMessage);
        worker.once('error', onError);
      });
    });
    const results = await Promise.allSettled(started);
    const workers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw failed.reason;
    }
    return new WorkerPool(workers.map((w) => new PoolWorker(w)), simd, sharedModule !== null);
  }

  get size(): number {
    return this.workers.length;
  }

  request<T>(worker: number, body: RequestBody, transfer?: ArrayBuffer[]): Promise<T> {
    if (this.closed) return Promise.reject(new CosfaceError('WASM_ERROR', 'the WASM backend has been disposed'));
    return this.workers[worker]!.request<T>(body, transfer);
  }

  /** The same request on every worker. */
  broadcast<T>(body: RequestBody): Promise<T[]> {
    return Promise.all(this.workers.map((_, i) => this.request<T>(i, body)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
