// Shared helpers for the kernels: fused activation epilogue and partial-vector loads/stores.
// Activation codes (the JS planner uses the same numbers): 0 none, 1 relu, 2 prelu, | 4 residual first.

export const ACT_NONE: i32 = 0;
export const ACT_RELU: i32 = 1;
export const ACT_PRELU: i32 = 2;
/**
 * Flag or-ed into the activation code of the GEMM: the residual is added before the activation,
 * act(conv + bias + res), as in BlazeFace's and FaceMesh's residual blocks (the IR's fused residual
 * comes after the activation; the planner fuses a following standalone activation this way).
 */
export const ACT_AFTER_RESIDUAL: i32 = 4;

/**
 * a * b + c on four lanes. In the relaxed-SIMD build (build/cosface-relaxed.wasm) one fused
 * multiply-add where the CPU has FMA, which halves the arithmetic instructions of the GEMM and
 * depthwise loops; in the plain SIMD build a multiply then an add. Chosen at compile time.
 */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** act(v) on four channels; alpha holds the PReLU slopes of those channels. */
// @ts-ignore: decorator
@inline export function activate(v: v128, act: i32, alpha: v128): v128 {
  if (act == ACT_RELU) return f32x4.max(v, f32x4.splat(0));
  if (act == ACT_PRELU) return v128.bitselect(v, f32x4.mul(v, alpha), f32x4.gt(v, f32x4.splat(0)));
  return v;
}

/** Scalar activation, for channel tails. */
// @ts-ignore: decorator
@inline export function activateScalar(v: f32, act: i32, alpha: f32): f32 {
  if (act == ACT_RELU) return v > 0 ? v : 0;
  if (act == ACT_PRELU) return v > 0 ? v : v * alpha;
  return v;
}

/** Loads the first cnt (0..4) floats at ptr into a vector, zeros in the other lanes. */
// @ts-ignore: decorator
@inline export function loadPartial(ptr: usize, cnt: i32): v128 {
  if (cnt >= 4) return v128.load(ptr);
  let v = f32x4.splat(0);
  if (cnt > 0) v = f32x4.replace_lane(v, 0, load<f32>(ptr));
  if (cnt > 1) v = f32x4.replace_lane(v, 1, load<f32>(ptr, 4));
  if (cnt > 2) v = f32x4.replace_lane(v, 2, load<f32>(ptr, 8));
  return v;
}

/** Stores the first cnt (0..4) lanes of v at ptr. */
// @ts-ignore: decorator
@inline export function storePartial(ptr: usize, v: v128, cnt: i32): void {
  if (cnt >= 4) {
    v128.store(ptr, v);
    return;
  }
  if (cnt > 0) store<f32>(ptr, f32x4.extract_lane(v, 0));
  if (cnt > 1) store<f32>(ptr, f32x4.extract_lane(v, 1), 4);
  if (cnt > 2) store<f32>(ptr, f32x4.extract_lane(v, 2), 8);
}

/** First byte of free linear memory: the JS side allocates weights and buffers from here up. */
export function heapBase(): usize {
  return __heap_base;
}
