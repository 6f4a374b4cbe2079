// The compiled WebAssembly the edge entries need: the cosface kernels (build/cosface.wasm, plain
// SIMD: runs on V8 and JavaScriptCore alike) and the two photo codecs. Bun and Deno read and compile
// the files at startup; workerd imports them as modules (workerd.ts). Runtime-neutral.
import { WasmImageDecoder } from '../pipeline/decode-wasm.js';
import type { PhotoPipeline } from '../server/face-finder.js';

export interface EdgeWasmModules {
  kernels: WebAssembly.Module;
  jpeg: WebAssembly.Module;
  png: WebAssembly.Module;
}

/** Paths relative to src/runtime/ (where the Bun and Deno entries are). */
export const WASM_FILES = {
  kernels: '../../build/cosface.wasm',
  jpeg: '../../node_modules/@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm',
  png: '../../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm',
} as const;

export async function readWasmModules(read: (relativeToRuntimeDir: string) => Promise<Uint8Array>): Promise<EdgeWasmModules> {
  const [kernels, jpeg, png] = await Promise.all([WASM_FILES.kernels, WASM_FILES.jpeg, WASM_FILES.png].map(async (f) => WebAssembly.compile((await read(f)) as BufferSource)));
  return { kernels: kernels!, jpeg: jpeg!, png: png! };
}

export function photoDecoder(m: EdgeWasmModules): WasmImageDecoder {
  return new WasmImageDecoder({ jpeg: m.jpeg, png: m.png });
}

/** The face pipeline for runtimes that hold the models (null until the edge pipeline is wired). */
export function edgePhotoPipeline(_m: EdgeWasmModules): PhotoPipeline | null {
  return null;
}
