// The WASM backend's workers in a browser: Web Workers running wasm-worker.ts, each with its own
// instance of the same kernels (build/cosface*.wasm), answering the requests of wasm-protocol.ts.
// The browser counterpart of wasm-pool.ts (Node worker threads).
import { CosfaceError, type ErrorCode } from '../errors.js';
import type { WasmSimd } from '../backend/wasm/wasm-instance.js';
import type { RequestBody, WasmWorkers, WorkerResponse } from '../backend/wasm/wasm-protocol.js';

/** What the page sends a fresh worker first: the compiled kernels. */
export interface WorkerInit {
  type: 'init';
  module: WebAssembly.Module;
}

class WebPoolWorker {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.addEventListener('message', (ev: MessageEvent<WorkerResponse>) => {
      const msg = ev.data;
      if (msg.id === -1) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new CosfaceError(msg.code as ErrorCode, msg.message));
    });
    worker.addEventListener('error', (ev) => {
      this.failure = new CosfaceError('WASM_ERROR', `WASM worker failed: ${ev.message}`);
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    });
  }

  request<T>(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...body, id }, transfer);
    });
  }
}

export class WebWorkerPool implements WasmWorkers {
  private closed = false;
  private constructor(
    private readonly workers: WebPoolWorker[],
    readonly simd: WasmSimd,
  ) {}

  /** Starts count module workers from scriptUrl and waits until each has instantiated the kernels. */
  static async create(count: number, module: WebAssembly.Module, simd: WasmSimd, scriptUrl: URL): Promise<WebWorkerPool> {
    if (!Number.isInteger(count) || count < 1) throw new CosfaceError('BAD_INPUT', `workers must be an integer >= 1, got ${count}`);
    const started = Array.from({ length: count }, (_, i) => {
      const worker = new Worker(scriptUrl, { type: 'module', name: `cosface-wasm-${i}` });
      return new Promise<Worker>((resolve, reject) => {
        const onMessage = (ev: MessageEvent<WorkerResponse>) => {
          if (ev.data.id !== -1) return;
          worker.removeEventListener('message', onMessage);
          worker.removeEventListener('error', onError);
          if (ev.data.ok) resolve(worker);
          else reject(new CosfaceError('WASM_ERROR', `WASM worker failed to start: ${(ev.data as { message?: string }).message}`));
        };
        const onError = (ev: ErrorEvent) => reject(new CosfaceError('WASM_ERROR', `WASM worker failed to start: ${ev.message || scriptUrl.href}`));
        worker.addEventListener('message', onMessage);
        worker.addEventListener('error', onError);
        worker.postMessage({ type: 'init', module } satisfies WorkerInit);
      });
    });
    const results = await Promise.allSettled(started);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const workers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed) {
      for (const w of workers) w.terminate();
      throw failed.reason;
    }
    return new WebWorkerPool(workers.map((w) => new WebPoolWorker(w)), simd);
  }

  get size(): number {
    return this.workers.length;
  }

  request<T>(worker: number, body: RequestBody, transfer?: ArrayBuffer[]): Promise<T> {
    if (this.closed) return Promise.reject(new CosfaceError('WASM_ERROR', 'the WASM backend has been disposed'));
    return this.workers[worker]!.request<T>(body, transfer);
  }

  broadcast<T>(body: RequestBody): Promise<T[]> {
    return Promise.all(this.workers.map((_, i) => this.request<T>(i, body)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.workers) w.worker.terminate();
  }
}
