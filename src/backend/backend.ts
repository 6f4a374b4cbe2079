// The one interface both compute backends implement (WebGPU: src/backend/webgpu, WASM:
// src/backend/wasm). The planner, the tests and the benchmarks are written against it once.
import type { Graph } from '../graph/ir.js';
import type { Similarity, WarpOptions } from '../pipeline/align.js';
import type { RgbImage } from '../pipeline/decode.js';

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
  /**
   * The alignment warp of warpToCrop (src/pipeline/align.ts) for n crops of one image in one call:
   * crop i is outW x outH pixels with transforms[i] mapping crop pixel-centre coordinates to image
   * coordinates; bilinear, taps outside the image take opts.fill, ceil(scale) (at most 8) samples
   * per axis unless opts.supersample says otherwise. Returns n * outH * outW * 3 floats (RGB 0..255,
   * HWC, crops back to back). WASM equals warpToCrop exactly; WebGPU computes in float32 (the
   * tests allow 1e-3 on the 0..255 scale; lavapipe measured 5e-5). Bad image, sizes, options or
   * non-finite transforms, or an empty list: CosfaceError BAD_INPUT.
   */
  warp(img: RgbImage, transforms: readonly Similarity[], outW: number, outH: number, opts?: WarpOptions): Promise<Float32Array>;
  dispose(): Promise<void>;
}
