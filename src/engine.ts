// Choosing a backend and loading a model: the two entry points every caller (CLI, server,
// library, benchmarks) goes through. `auto` takes WebGPU when an adapter exists, else WASM.
import { readFile } from 'node:fs/promises';
import { CosfaceError } from './errors.js';
import { BACKEND_NAMES, type Backend, type BackendName, type CompiledGraph } from './backend/backend.js';
import { numel, type Graph } from './graph/ir.js';
import { readTflite } from './import/tflite/read-tflite.js';
import { readOnnx } from './import/onnx/read-onnx.js';

export type BackendChoice = BackendName | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', ...BACKEND_NAMES];

export interface BackendOptions {
  /** WASM worker threads (default: the number of cores). */
  workers?: number;
}

export function parseBackendChoice(name: string): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(name)) return name as BackendChoice;
  throw new CosfaceError('UNKNOWN_BACKEND', `unknown backend '${name}': choose one of ${BACKEND_CHOICES.join(', ')}`);
}

async function createWasm(opts: BackendOptions): Promise<Backend> {
  const mod = await import('./backend/wasm/index.js');
  return mod.createWasmBackend(opts);
}

async function createWebGpu(): Promise<Backend> {
  const mod = await import('./backend/webgpu/webgpu-backend.js');
  return mod.createWebGpuBackend();
}

/**
 * Creates a backend. 'webgpu' fails with NO_ADAPTER when there is no adapter. 'auto' takes WebGPU
 * when there is a hardware adapter, and WASM when there is none or when the only adapter is a
 * software rasteriser (lavapipe, SwiftShader): those run the same WGSL 2-3x slower than the WASM
 * kernels on the same cores (batch 16 on 2 cores: 57 against 138 faces/s, 1.55 against 4.11
 * photos/s for the whole pipeline; BENCHMARKS.md). `--backend webgpu` still selects them.
 * The chosen backend's describe() says which one it is and why.
 */
export async function createBackend(choice: BackendChoice | string = 'auto', opts: BackendOptions = {}): Promise<Backend> {
  const c = parseBackendChoice(choice);
  if (c === 'webgpu') return createWebGpu();
  if (c === 'wasm') return createWasm(opts);
  // Look before opening: Dawn prints notices to stderr on some adapters as soon as it is loaded,
  // so the adapter is probed aside and Dawn is loaded here only when WebGPU will be used.
  const { probeAdapter } = await import('./backend/webgpu/device.js');
  const probe = await probeAdapter();
  if (probe.adapterName === null) return withReason(await createWasm(opts), probe.reason ?? 'no WebGPU adapter');
  if (probe.software) return withReason(await createWasm(opts), `WebGPU adapter is software (${probe.adapterName}); WASM is faster on this CPU`);
  let gpu: Backend & { gpu?: { software: boolean; adapterName: string } };
  try {
    gpu = await createWebGpu();
  } catch (e) {
    if (e instanceof CosfaceError && e.code === 'NO_ADAPTER') return withReason(await createWasm(opts), 'no WebGPU adapter');
    throw e;
  }
  if (gpu.gpu?.software) {
    const reason = `WebGPU adapter is software (${gpu.gpu.adapterName}); WASM is faster on this CPU`;
    await gpu.dispose();
    return withReason(await createWasm(opts), reason);
  }
  return gpu;
}

/** The same backend, with describe() saying why auto chose it. */
function withReason(backend: Backend, reason: string): Backend {
  const describe = backend.describe.bind(backend);
  return Object.assign(backend, { describe: () => `${describe()} [auto: ${reason}]` });
}

/**
 * Reads a model file into a Graph, the format from its content: TFLite by its 'TFL3' identifier,
 * ONNX by its first protobuf field (ir_version, field 1 varint: byte 0x08) or an .onnx name.
 */
export async function loadModelFile(path: string): Promise<Graph> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new CosfaceError('BAD_MODEL', `cannot read model file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const name = path.split(/[\\/]/).pop() ?? path;
  if (bytes.byteLength >= 8 && String.fromCharCode(...bytes.subarray(4, 8)) === 'TFL3') return readTflite(bytes, name);
  if (path.endsWith('.tflite')) return readTflite(bytes, name); // gives the precise BAD_MODEL message
  if (bytes[0] === 0x08 || /\.onnx$/i.test(path)) return readOnnx(bytes, name);
  throw new CosfaceError('BAD_MODEL', `${path}: unrecognised model format (expected a TFLite or ONNX file)`);
}

/** Validates a batch before it reaches a backend: n >= 1, the right length, finite values. */
export function checkBatch(graph: Graph, input: Float32Array, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new CosfaceError('BAD_INPUT', `batch size must be a non-negative integer, got ${n}`);
  if (n === 0) throw new CosfaceError('EMPTY_BATCH', 'empty batch: nothing to run (give at least one input)');
  const per = numel(graph.input.shape);
  if (input.length !== n * per) {
    throw new CosfaceError('DIMENSION_MISMATCH', `expected ${n} inputs of [${graph.input.shape.join(', ')}] = ${n * per} values, got ${input.length}`);
  }
  for (let i = 0; i < input.length; i++) {
    if (!Number.isFinite(input[i]!)) throw new CosfaceError('BAD_INPUT', `input value ${i} (sample ${Math.floor(i / per)}) is ${input[i]}`);
  }
}

/** Runs a compiled graph after validating its input. */
export async function runGraph(compiled: CompiledGraph, input: Float32Array, n: number): Promise<Float32Array> {
  checkBatch(compiled.graph, input, n);
  return compiled.run(input, n);
}
