// Helpers shared by the WGSL generators in this folder. WGSL has no way to size private arrays
// that the compiler keeps in registers, so the register-tiled kernels are unrolled here, in
// TypeScript, for the variant a layer needs; the pipeline cache compiles each variant once.
import type { ShaderSpec } from '../pipeline-cache.js';

/** The integers 0 .. n-1. */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Lines joined with newlines, one per i in 0 .. n-1. */
export function lines(n: number, f: (i: number) => string): string {
  return range(n).map(f).join('\n');
}

/** A module with one entry point, `main`. The name identifies the variant (it keys the module cache). */
export function single(name: string, code: string): ShaderSpec {
  return { name, code, entryPoint: 'main' };
}

/**
 * The fused epilogue of the vec4 GEMM-style kernels: bias, activation (0 none, 1 relu, 2 prelu),
 * optional residual add, store. The caller loads bias/alpha/act/hasResidual once per invocation
 * and passes them in: after a store to `out` the compiler may not assume they are unchanged, and
 * reloading them per output row cost about a tenth of the matmul time on lavapipe.
 */
export const FINISH_VEC4 = `fn finish(acc: vec4<f32>, o: u32, bv: vec4<f32>, av: vec4<f32>, act: u32, hasRes: u32) {
  var v = acc + bv;
  if (act == 1u) {
    v = max(v, vec4<f32>(0.0));
  } else if (act == 2u) {
    v = select(v * av, v, v > vec4<f32>(0.0));
  }
  if (hasRes != 0u) {
    v = v + residual[o];
  }
  out[o] = v;
}
`;

/** Bindings 0-6 of the vec4 GEMM kernels (matmul, matmul-subgroup). */
export const GEMM_BINDINGS = `@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alpha: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> p: Params;
`;
