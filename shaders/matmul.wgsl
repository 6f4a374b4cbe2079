// matmul.wgsl: out[M, N] = act(A[M, K] B[K, N] + bias) (+ residual), for 1x1 convolutions
// (M = batch * H * W pixels, NHWC) and fully connected layers (M = batch).
// Bindings: 0 A (vec4 along K), 1 B packed [K, N/4] vec4, 2 bias, 3 alpha (PReLU), 4 residual,
// 5 out, 6 params. Needs K % 4 == 0 and N % 4 == 0 (the planner uses conv2d.wgsl otherwise).
// Dispatch: (ceil(N/8 / 8), ceil(M/4 / 8)) workgroups of 8x8 (y over 65535 wraps into z); each invocation computes a
// 4-row x 8-column register tile, so every loaded A and B vector is used 8 and 4 times.
struct Params {
  M: u32,
  K4: u32,
  N4: u32,
  act: u32, // 0 none, 1 relu, 2 prelu
  hasResidual: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alpha: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> p: Params;

fn finish(acc: vec4<f32>, row: u32, j: u32) {
  var v = acc + bias[j];
  if (p.act == 1u) {
    v = max(v, vec4<f32>(0.0));
  } else if (p.act == 2u) {
    v = select(v * alpha[j], v, v > vec4<f32>(0.0));
  }
  let o = row * p.N4 + j;
  if (p.hasResidual != 0u) {
    v = v + residual[o];
  }
  out[o] = v;
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j0 = gid.x * 2u;
  let r0 = (gid.y + gid.z * 65535u * 8u) * 4u; // grids taller than 65535 workgroups wrap into z
  if (j0 >= p.N4 || r0 >= p.M) {
    return;
  }
  // Out-of-range rows and columns of the tile are computed on clamped indices and not written.
  let j1 = min(j0 + 1u, p.N4 - 1u);
  let last = p.M - 1u;
  let a0b = r0 * p.K4;
  let a1b = min(r0 + 1u, last) * p.K4;
  let a2b = min(r0 + 2u, last) * p.K4;
  let a3b = min(r0 + 3u, last) * p.K4;
  var c00 = vec4<f32>(0.0); var c01 = vec4<f32>(0.0);
  var c10 = vec4<f32>(0.0); var c11 = vec4<f32>(0.0);
  var c20 = vec4<f32>(0.0); var c21 = vec4<f32>(0.0);
  var c30 = vec4<f32>(0.0); var c31 = vec4<f32>(0.0);
  for (var k4 = 0u; k4 < p.K4; k4 = k4 + 1u) {
    let a0 = A[a0b + k4];
    let a1 = A[a1b + k4];
    let a2 = A[a2b + k4];
    let a3 = A[a3b + k4];
    let kb = k4 * 4u * p.N4;
    let b00 = B[kb + j0];
    let b01 = B[kb + j1];
    let b10 = B[kb + p.N4 + j0];
    let b11 = B[kb + p.N4 + j1];
    let b20 = B[kb + 2u * p.N4 + j0];
    let b21 = B[kb + 2u * p.N4 + j1];
    let b30 = B[kb + 3u * p.N4 + j0];
    let b31 = B[kb + 3u * p.N4 + j1];
    c00 = c00 + a0.x * b00 + a0.y * b10 + a0.z * b20 + a0.w * b30;
    c01 = c01 + a0.x * b01 + a0.y * b11 + a0.z * b21 + a0.w * b31;
    c10 = c10 + a1.x * b00 + a1.y * b10 + a1.z * b20 + a1.w * b30;
    c11 = c11 + a1.x * b01 + a1.y * b11 + a1.z * b21 + a1.w * b31;
    c20 = c20 + a2.x * b00 + a2.y * b10 + a2.z * b20 + a2.w * b30;
    c21 = c21 + a2.x * b01 + a2.y * b11 + a2.z * b21 + a2.w * b31;
    c30 = c30 + a3.x * b00 + a3.y * b10 + a3.z * b20 + a3.w * b30;
    c31 = c31 + a3.x * b01 + a3.y * b11 + a3.z * b21 + a3.w * b31;
  }
  let has1 = j0 + 1u < p.N4;
  finish(c00, r0, j0);
  if (has1) { finish(c01, r0, j1); }
  if (r0 + 1u < p.M) { finish(c10, r0 + 1u, j0); if (has1) { finish(c11, r0 + 1u, j1); } }
  if (r0 + 2u < p.M) { finish(c20, r0 + 2u, j0); if (has1) { finish(c21, r0 + 2u, j1); } }
  if (r0 + 3u < p.M) { finish(c30, r0 + 3u, j0); if (has1) { finish(c31, r0 + 3u, j1); } }
}
