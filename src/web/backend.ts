// Choosing a backend in a browser, by the rule engine.ts applies in Node: 'webgpu' (navigator.gpu;
// NO_ADAPTER without one), 'wasm' (the AssemblyScript kernels on Web Workers), 'auto' (WebGPU on a
// hardware adapter; WASM when there is none or the adapter is a software one such as SwiftShader).
import type { Backend } from '../backend/backend.js';
import { wasmBackendOnWorkers } from '../backend/wasm/wasm-backend-core.js';
import type { WasmSimd } from '../backend/wasm/wasm-instance.js';
import { createWebGpuBackend, type WebGpuBackend } from '../backend/webgpu/webgpu-backend.js';
import { CosfaceError } from '../errors.js';
import type { AssetLoader } from './assets.js';
import { WebWorkerPool } from './web-workers.js';

export type BrowserBackendChoice = 'auto' | 'webgpu' | 'wasm';
export const BROWSER_BACKENDS: readonly BrowserBackendChoice[] = ['auto', 'webgpu', 'wasm'];

export interface BrowserBackendOptions {
  /** Web Workers for WASM (default: navigator.hardwareConcurrency, at most 8). */
  workers?: number;
  /** Where the worker script is (default: wasm-worker.js beside the bundle). */
  workerUrl: URL;
  /** Reads wasm/cosface.wasm and wasm/cosface-relaxed.wasm. */
  assets: AssetLoader;
}

export interface BrowserBackend {
  backend: Backend;
  /** Why auto chose it (empty when a backend was named). */
  reason: string;
}

export function parseBrowserBackend(name: string | null | undefined): BrowserBackendChoice {
  const n = name ?? 'auto';
  if ((BROWSER_BACKENDS as readonly string[]).includes(n)) return n as BrowserBackendChoice;
  throw new CosfaceError('UNKNOWN_BACKEND', `unknown backend '${n}': choose one of ${BROWSER_BACKENDS.join(', ')}`);
}

/** The WASM kernels compiled from the server's build: relaxed SIMD (fused multiply-add) where this browser validates it. */
async function wasmModule(assets: AssetLoader): Promise<{ module: WebAssembly.Module; simd: WasmSimd }> {
  if (assets.has('wasm/cosface-relaxed.wasm')) {
    const relaxed = await assets.bytes('wasm/cosface-relaxed.wasm');
    if (WebAssembly.validate(relaxed as unknown as BufferSource)) return { module: await WebAssembly.compile(relaxed as unknown as BufferSource), simd: 'relaxed' };
  }
  const plain = await assets.bytes('wasm/cosface.wasm');
  try {
    return { module: await WebAssembly.compile(plain as unknown as BufferSource), simd: 'simd' };
  } catch (e) {
    throw new CosfaceError('WASM_ERROR', `this browser cannot compile the WASM kernels (needs WebAssembly SIMD): ${(e as Error).message}`, { cause: e });
  }
}

export async function createWasmWebBackend(opts: BrowserBackendOptions): Promise<Backend> {
  const { module, simd } = await wasmModule(opts.assets);
  const count = opts.workers ?? Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
  return wasmBackendOnWorkers(await WebWorkerPool.create(count, module, simd, opts.workerUrl));
}

export async function createBrowserBackend(choice: BrowserBackendChoice, opts: BrowserBackendOptions): Promise<BrowserBackend> {
  const c = parseBrowserBackend(choice);
  if (c === 'webgpu') return { backend: await createWebGpuBackend(), reason: '' };
  if (c === 'wasm') return { backend: await createWasmWebBackend(opts), reason: '' };
  let gpu: WebGpuBackend;
  try {
    gpu = await createWebGpuBackend();
  } catch (e) {
    if (e instanceof CosfaceError && e.code === 'NO_ADAPTER') return { backend: await createWasmWebBackend(opts), reason: `no WebGPU adapter (${e.message})` };
    throw e;
  }
  if (gpu.gpu.software) {
    await gpu.dispose();
    return { backend: await createWasmWebBackend(opts), reason: `WebGPU adapter is software (${gpu.gpu.adapterName}); WASM is faster on this CPU` };
  }
  return { backend: gpu, reason: '' };
}
