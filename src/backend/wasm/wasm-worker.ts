// Worker thread body (Node): the request handler of wasm-protocol.ts over its own instance of the
// kernels, answering the pool in wasm-pool.ts. Every answer carries the request id.
import { parentPort, workerData } from 'node:worker_threads';
import { createWorkerHandler, type SplitSetup, type WorkerRequest, type WorkerResponse } from './wasm-protocol.js';

const port = parentPort!;
const handle = createWorkerHandler(workerData.module as WebAssembly.Module, workerData.split as SplitSetup | undefined);

port.on('message', (req: WorkerRequest) => {
  const { response, transfer } = handle(req);
  port.postMessage(response, transfer);
});
port.postMessage({ id: -1, ok: true, value: 'ready' } satisfies WorkerResponse);
