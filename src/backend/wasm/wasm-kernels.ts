// Loads build/cosface.wasm (or the relaxed-SIMD build) from the package in Node and compiles it once
// per thread; the instance wrapper itself (WasmKernels) is in wasm-instance.ts.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import { CosfaceError } from '../../errors.js';
import type { WasmSimd, WasmSimdChoice } from './wasm-instance.js';

export * from './wasm-instance.js';

const WASM_FILES: Record<WasmSimd, string> = { simd: 'build/cosface.wasm', relaxed: 'build/cosface-relaxed.wasm' };
/** The same kernels over an imported shared memory (threads feature), for splitting one face's layers. */
const SHARED_WASM_FILES: Record<WasmSimd, string> = { simd: 'build/cosface-shared.wasm', relaxed: 'build/cosface-relaxed-shared.wasm' };

/**
 * A build under the package root. This file runs from src/backend/wasm (TypeScript via
 * tsx/vitest) or dist/src/backend/wasm (compiled), 3 or 4 levels below the root, so walk up until
 * the build folder appears (not until a package.json: tsc copies one into dist/).
 */
export function wasmPath(simd: WasmSimd = 'simd', shared = false): string {
  const file = (shared ? SHARED_WASM_FILES : WASM_FILES)[simd];
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i <= 4; i++) {
    const candidate = path.join(dir, file);
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new CosfaceError('WASM_ERROR', `${file} not found above ${fileURLToPath(import.meta.url)}: run \`npm run build:wasm\``);
}

const modules = new Map<WasmSimd, WebAssembly.Module>();

function compile(simd: WasmSimd): WebAssembly.Module {
  let mod = modules.get(simd);
  if (!mod) {
    if (simd === 'relaxed') relaxedSimdSupported();
    const file = wasmPath(simd);
    try {
      mod = new WebAssembly.Module(readFileSync(file));
    } catch (e) {
      const needs = simd === 'relaxed' ? 'relaxed SIMD: Node >= 20 without COSFACE_WASM_SIMD=simd' : 'WebAssembly SIMD';
      throw new CosfaceError('WASM_ERROR', `cannot compile ${file} (needs ${needs}): ${(e as Error).message}`, { cause: e });
    }
    modules.set(simd, mod);
  }
  return mod;
}

let relaxedChecked: boolean | undefined;

/**
 * True when this runtime runs the relaxed-SIMD build (fused multiply-add). Node >= 22 has relaxed
 * SIMD on; Node 20-21 (V8 11.3-11.8) implement it completely behind `--experimental-wasm-relaxed-simd`,
 * so on those this turns the flag on for the process (it only adds instructions to the validator:
 * modules compiled before are unaffected) unless COSFACE_WASM_SIMD=simd asks for the plain build.
 * The kernels of both builds are checked against the scalar reference in the tests.
 */
export function relaxedSimdSupported(): boolean {
  if (relaxedChecked !== undefined) return relaxedChecked;
  if (process.env.COSFACE_WASM_SIMD === 'simd') return (relaxedChecked = false);
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = new Uint8Array(readFileSync(wasmPath('relaxed')));
  } catch {
    return (relaxedChecked = false);
  }
  if (WebAssembly.validate(bytes)) return (relaxedChecked = true);
  const major = Number(process.versions.node?.split('.')[0]);
  if (major === 20 || major === 21) {
    try {
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    } catch {
      return (relaxedChecked = false); // a runtime that reports a Node version but has no V8 flags
    }
    return (relaxedChecked = WebAssembly.validate(bytes));
  }
  return (relaxedChecked = false);
}

/** The chosen build, compiled once per thread (workers receive the module by postMessage). */
export function loadWasmBuild(choice: WasmSimdChoice = 'auto'): { module: WebAssembly.Module; simd: WasmSimd } {
  const simd: WasmSimd = choice === 'auto' ? (relaxedSimdSupported() ? 'relaxed' : 'simd') : choice;
  return { module: compile(simd), simd };
}

/** The compiled module of the chosen build (see loadWasmBuild). */
export function loadWasmModule(choice: WasmSimdChoice = 'auto'): WebAssembly.Module {
  return loadWasmBuild(choice).module;
}

const sharedModules = new Map<WasmSimd, WebAssembly.Module | null>();

/**
 * The shared-memory build of a kernel build (its instances import one WebAssembly.Memory with
 * shared: true), or null where the runtime or the package cannot run it: then one face stays on
 * one worker.
 */
export function loadSharedWasmModule(simd: WasmSimd): WebAssembly.Module | null {
  if (!sharedModules.has(simd)) {
    let mod: WebAssembly.Module | null = null;
    try {
      mod = new WebAssembly.Module(readFileSync(wasmPath(simd, true)));
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    } catch {
      mod = null;
    }
    sharedModules.set(simd, mod);
  }
  return sharedModules.get(simd)!;
}
