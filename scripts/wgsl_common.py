# Pieces shared by the WGSL generators (scripts/gen-*.py).

# The fused epilogue of the vec4 GEMM-style kernels: bias, activation (0 none, 1 relu, 2 prelu),
# optional residual add, store. The caller loads bias/alpha/act/hasResidual once per invocation and
# passes them in: after a store to `out` the compiler may not assume they are unchanged, and
# reloading them per output row cost about a tenth of the matmul time on lavapipe.
FINISH_VEC4 = '''fn finish(acc: vec4<f32>, o: u32, bv: vec4<f32>, av: vec4<f32>, act: u32, hasRes: u32) {
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
'''
