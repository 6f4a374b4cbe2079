// The benchmark's reference runtimes: onnxruntime-node (CPU execution provider) and
// onnxruntime-web (its WebAssembly backend) running the ONNX export of the graph under test.
// onnxruntime-web's thread count (env.wasm.numThreads) is fixed once per module instance, so each
// thread count gets its own worker thread with its own instance; onnxruntime-node takes its
// intra-op thread count per session and runs on the calling thread.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CosfaceError } from '../errors.js';

/** Times of the timed runs (ms, warm-up excluded) and the output of the first timed run. */
export interface TimedRuns {
  times: number[];
  output: Float32Array;
}

export interface OrtReference {
  readonly kind: 'onnxruntime-web' | 'onnxruntime-node';
  readonly label: string;
  /** Threads the runtime actually uses (onnxruntime-web may fall back to 1). */
  readonly threads: number;
  /** The runtime's version, e.g. '1.30.0'. */
  readonly version: string;
  /** input: n samples NHWC back to back, as the engines take them. */
  measure(input: Float32Array, n: number, inputShape: number[], warmupRuns: number, runs: number): Promise<TimedRuns>;
  dispose(): Promise<void>;
}

function missing(pkg: string, e: unknown): CosfaceError {
  return new CosfaceError('BAD_INPUT', `benchmark references need the '${pkg}' package, which could not be loaded (${(e as Error).message})`, { cause: e });
}

export async function createOrtNodeReference(model: Uint8Array, threads: number): Promise<OrtReference> {
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    throw missing('onnxruntime-node', e);
  }
  // interOp 1: the graph is a chain, and a second pool would only compete for the same cores.
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' });
  const inputName = session.inputNames[0]!;
  const outputName = session.outputNames[0]!;
  return {
    kind: 'onnxruntime-node',
    label: 'onnxruntime-node cpu',
    threads,
    version: ort.env.versions.node ?? ort.env.versions.common ?? 'unknown',
    async measure(input, n, inputShape, warmupRuns, runs) {
      const feeds = { [inputName]: new ort.Tensor('float32', input, [n, ...inputShape]) };
      for (let i = 0; i < warmupRuns; i++) await session.run(feeds);
      const times: number[] = [];
      let output: Float32Array | undefined;
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const r = await session.run(feeds);
        times.push(performance.now() - t0);
        output ??= new Float32Array(r[outputName]!.data as Float32Array);
      }
      return { times, output: output ?? new Float32Array(0) };
    },
    dispose: () => session.release(),
  };
}

/**
 * Worker body (plain ESM, loaded from a data: URL so it needs no build step or TS loader). It
 * imports onnxruntime-web by absolute URL, sets the thread count before the first session, and
 * times session.run itself so that message passing is not counted against the reference.
 */
const ORT_WEB_WORKER = `
import { parentPort, workerData } from 'node:worker_threads';
const fail = (e) => parentPort.postMessage({ type: 'error', message: String(e && e.message || e) });
try {
  const ort = await import(workerData.ortUrl);
  ort.env.wasm.numThreads = workerData.threads;
  ort.env.wasm.simd = true;
  const session = await ort.InferenceSession.create(workerData.model, { executionProviders: ['wasm'] });
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  parentPort.postMessage({ type: 'ready', threads: ort.env.wasm.numThreads, version: ort.env.versions.web || ort.env.versions.common });
  parentPort.on('message', async (m) => {
    try {
      if (m.type === 'dispose') { await session.release(); parentPort.postMessage({ type: 'disposed' }); return; }
      const feeds = { [inputName]: new ort.Tensor('float32', m.input, [m.n, ...m.inputShape]) };
      for (let i = 0; i < m.warmupRuns; i++) await session.run(feeds);
      const times = [];
      let output;
      for (let i = 0; i < m.runs; i++) {
        const t0 = performance.now();
        const r = await session.run(feeds);
        times.push(performance.now() - t0);
        if (!output) output = new Float32Array(r[outputName].data);
      }
      parentPort.postMessage({ type: 'result', times, output }, output ? [output.buffer] : []);
    } catch (e) { fail(e); }
  });
} catch (e) { fail(e); }
`;

function ortWebModuleUrl(): string {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve('onnxruntime-web'); // .../dist/ort.node.min.js (the CommonJS entry)
  } catch (e) {
    throw missing('onnxruntime-web', e);
  }
  // The ESM Node build sits beside it; its .wasm/.mjs files are found relative to its own URL.
  return pathToFileURL(join(dirname(main), 'ort.node.min.mjs')).href;
}

type WorkerReply =
  | { type: 'ready'; threads: number; version: string }
  | { type: 'result'; times: number[]; output: Float32Array }
  | { type: 'disposed' }
  | { type: 'error'; message: string };

export async function createOrtWebReference(model: Uint8Array, threads: number): Promise<OrtReference> {
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(ORT_WEB_WORKER)}`), {
    workerData: { ortUrl: ortWebModuleUrl(), threads, model },
  });
  const reply = () =>
    new Promise<WorkerReply>((resolve, reject) => {
      const onMessage = (m: WorkerReply) => {
        cleanup();
        if (m.type === 'error') reject(new CosfaceError('BAD_MODEL', `onnxruntime-web (${threads} threads): ${m.message}`));
        else resolve(m);
      };
      const onError = (e: Error) => {
        cleanup();
        reject(new CosfaceError('BAD_MODEL', `onnxruntime-web worker (${threads} threads) failed: ${e.message}`, { cause: e }));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new CosfaceError('BAD_MODEL', `onnxruntime-web worker (${threads} threads) exited with code ${code}`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  let ready: WorkerReply;
  try {
    ready = await reply();
  } catch (e) {
    await worker.terminate();
    throw e;
  }
  if (ready.type !== 'ready') throw new CosfaceError('BAD_MODEL', `onnxruntime-web worker: unexpected reply ${ready.type}`);
  return {
    kind: 'onnxruntime-web',
    label: 'onnxruntime-web wasm',
    threads: ready.threads,
    version: ready.version,
    async measure(input, n, inputShape, warmupRuns, runs) {
      const pending = reply();
      worker.postMessage({ type: 'run', input, n, inputShape, warmupRuns, runs });
      const r = await pending;
      if (r.type !== 'result') throw new CosfaceError('BAD_MODEL', `onnxruntime-web worker: unexpected reply ${r.type}`);
      return { times: r.times, output: r.output ?? new Float32Array(0) };
    },
    async dispose() {
      const pending = reply().catch(() => undefined);
      worker.postMessage({ type: 'dispose' });
      await pending;
      await worker.terminate();
    },
  };
}
