// Web Worker body (bundled to dist/web/wasm-worker.js): the request handler of wasm-protocol.ts,
// the same one Node's worker threads run, over its own instance of the kernels.
import { createWorkerHandler, type WorkerRequest, type WorkerResponse } from '../backend/wasm/wasm-protocol.js';
import type { WorkerInit } from './web-workers.js';

interface WorkerScope {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (ev: MessageEvent<WorkerInit | WorkerRequest>) => void): void;
}

const scope = globalThis as unknown as WorkerScope;
let handle: ReturnType<typeof createWorkerHandler> | null = null;

scope.addEventListener('message', (ev) => {
  const msg = ev.data;
  if (msg.type === 'init') {
    try {
      handle = createWorkerHandler(msg.module);
      scope.postMessage({ id: -1, ok: true, value: 'ready' } satisfies WorkerResponse);
    } catch (e) {
      scope.postMessage({ id: -1, ok: false, code: 'WASM_ERROR', message: (e as Error).message });
    }
    return;
  }
  if (!handle) {
    scope.postMessage({ id: msg.id, ok: false, code: 'WASM_ERROR', message: 'worker not initialised' } satisfies WorkerResponse);
    return;
  }
  const { response, transfer } = handle(msg);
  scope.postMessage(response, transfer);
});
