// The one interface both compute backends implement (WebGPU: src/backend/webgpu, WASM:
// src/backend/wasm). The planner, the tests and the benchmarks are written against it once.
import type { Graph } from '../graph/ir.js';

export type BackendName = 'webgpu' | 'wasm';
export const BACKEND_NAMES: readonly BackendName[] = ['webgpu', 'wasm'];

/** A graph planned onto a backend: weights uploaded, pipelines/kernels ready, any batch size. */
export interface CompiledGraph {
  readonly graph: Graph;
  /**
   * Runs n samples. input holds n * numel(graph.input.shape) floats (per-sample layout of the
   * graph input, samples back to back); returns n * numel(graph.output.shape) floats.
   * Callers validate n >= 1 and the input length (see runGraph in engine.ts).
   */
  run(input: Float32Array, n: number): Promise<Float32Array>;
  dispose(): void;
}

/** Exact top-k by inner product. indices/scores are q x k, each row best first. */
export interface TopK {
  k: number;
  indices: Int32Array;
  scores: Float32Array;
}

export interface Backend {
  readonly name: BackendName;
  /** One line for people: the adapter and driver, or the WASM threads and SIMD. */
  describe(): string;
  compile(graph: Graph): Promise<CompiledGraph>;
  dispose(): Promise<void>;
}
