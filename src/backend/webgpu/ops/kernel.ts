// What an op descriptor returns: the shader variant, what to bind, and how uniforms and the
// dispatch grid follow from the batch size. Shapes go into uniforms, never into the cache key.
import type { ShaderSpec } from '../pipeline-cache.js';
import type { Activation, GraphNode } from '../../../graph/ir.js';

/**
 * A binding: a graph tensor (activation buffer), a constant uploaded once, nothing (a 16-byte
 * dummy, for a binding the shader declares but this node does not need), or 'unused' for a
 * binding the entry point never references (layout 'auto' leaves it out, so it is not bound).
 */
export type BindingRef = { kind: 'tensor'; name: string } | { kind: 'const'; data: Float32Array; label: string } | { kind: 'dummy' } | { kind: 'unused' };

/** What the planner knows about the device when it picks a kernel variant. */
export interface PlanContext {
  /** Fixed subgroup size with the 'subgroups' feature on, else null (no subgroup variants). */
  subgroupSize: number | null;
  /** Tile of the subgroup GEMM (rows per subgroup, vec4 columns per lane) instead of the default (for A/B measurements). */
  subgroupGemm?: { rows: number; cols: number } | null;
}

/** Subgroup sizes the subgroup kernels (kernels/matmul.ts, kernels/conv2d.ts) are generated for. */
export const SUBGROUP_ENTRY_SIZES: ReadonlySet<number> = new Set([8, 16, 32]);

export interface KernelPlan {
  node: GraphNode;
  shader: ShaderSpec;
  /** Storage bindings in @binding order; the uniform params buffer is bound after them. */
  bindings: BindingRef[];
  /** Uniform contents for batch size n (16-byte aligned u32 words). */
  params(n: number): Uint32Array;
  /** Workgroup counts for batch size n. */
  dispatch(n: number): [number, number, number];
}

/** An entry point of a hand-written module (kernels/elementwise.ts, kernels/pool.ts). */
export function shader(name: string, code: string, entryPoint = 'main'): ShaderSpec {
  return { name, code, entryPoint };
}

export const ACT_CODE: Record<Activation, number> = { none: 0, relu: 1, prelu: 2 };

export const MAX_GRID = 65535;

/** A 2-D grid whose y count may exceed the per-dimension limit: the excess wraps into z. */
export function grid(x: number, y: number): [number, number, number] {
  if (x > MAX_GRID) throw new Error(`dispatch of ${x} workgroups in x exceeds ${MAX_GRID}`);
  return [Math.max(1, x), Math.max(1, Math.min(y, MAX_GRID)), Math.max(1, Math.ceil(y / MAX_GRID))];
}

/** A 1-D count of workgroups laid out as x + y * 65535. */
export function grid1d(count: number): [number, number, number] {
  return [Math.max(1, Math.min(count, MAX_GRID)), Math.max(1, Math.ceil(count / MAX_GRID)), 1];
}

/** Per-channel vector padded with zeros to a multiple of 4 (for vec4 bindings). */
export function padTo4(v: Float32Array | undefined, len: number): Float32Array {
  const out = new Float32Array(Math.ceil(len / 4) * 4);
  if (v) out.set(v.subarray(0, len));
  return out;
}

export function params(words: number[]): Uint32Array {
  const out = new Uint32Array(Math.ceil(words.length / 4) * 4);
  out.set(words);
  return out;
}
