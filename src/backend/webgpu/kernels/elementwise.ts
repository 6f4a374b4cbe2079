// Hand-written WGSL of the elementwise kernels (planned in ops/elementwise.ts).

/** add, affine, activation and pad: one thread per element. */
export const ELEMENTWISE_WGSL = /* wgsl */ `// elementwise: the small ops left after fusion. Entry points: add (a + b, then activation),
// affine (x * scale[c] + shift[c]), activation (relu/prelu), pad (zero border of NHWC).
// Bindings: 0 a, 1 b (add: second operand; affine: scale; activation: alpha), 2 c (affine: shift),
// 3 out, 4 params. Dispatch: (min(ceil(total / 256), 65535), ceil(...)) workgroups of 256,
// one output element per invocation (these ops read each input once, so there is nothing to tile).
struct Params {
  total: u32, C: u32, act: u32, H: u32,
  W: u32, OH: u32, OW: u32, padTop: u32,
  padLeft: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn index(wg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wg.x + wg.y * 65535u) * 256u + lid.x;
}

fn activate(v: f32, ch: u32) -> f32 {
  if (p.act == 1u) {
    return max(v, 0.0);
  }
  if (p.act == 2u) {
    return select(v * b[ch], v, v > 0.0);
  }
  return v;
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  var v = a[i] + b[i];
  if (p.act == 1u) {
    v = max(v, 0.0);
  } else if (p.act == 2u) {
    v = select(v * c[i % p.C], v, v > 0.0);
  }
  out[i] = v;
}

@compute @workgroup_size(256)
fn affine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  let ch = i % p.C;
  out[i] = a[i] * b[ch] + c[ch];
}

@compute @workgroup_size(256)
fn activation(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  out[i] = activate(a[i], i % p.C);
}

@compute @workgroup_size(256)
fn pad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  let ch = i % p.C;
  let ox = (i / p.C) % p.OW;
  let oy = (i / (p.C * p.OW)) % p.OH;
  let n = i / (p.C * p.OW * p.OH);
  let ix = i32(ox) - i32(p.padLeft);
  let iy = i32(oy) - i32(p.padTop);
  var v = 0.0;
  if (ix >= 0 && iy >= 0 && ix < i32(p.W) && iy < i32(p.H)) {
    v = a[((n * p.H + u32(iy)) * p.W + u32(ix)) * p.C + ch];
  }
  out[i] = v;
}
`;

/** Row-wise L2 normalisation: one workgroup per row. */
export const L2NORMALIZE_WGSL = /* wgsl */ `// l2normalize: each sample (row of F values) divided by its L2 norm (0 stays 0).
// Bindings: 0 x [n, F], 1 out [n, F], 2 params. Dispatch: (n) workgroups of 64; the workgroup
// reduces the sum of squares in shared memory, then scales its row.
struct Params {
  F: u32,
  n: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wg.x + wg.y * 65535u;
  let inRange = row < p.n;
  let base = row * p.F;
  var s = 0.0;
  if (inRange) {
    for (var i = lid.x; i < p.F; i = i + 64u) {
      let v = x[base + i];
      s = s + v * v;
    }
  }
  partial[lid.x] = s;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride = stride / 2u) {
    if (lid.x < stride) {
      partial[lid.x] = partial[lid.x] + partial[lid.x + stride];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  let inv = select(0.0, inverseSqrt(total), total > 0.0);
  if (inRange) {
    for (var i = lid.x; i < p.F; i = i + 64u) {
      out[base + i] = x[base + i] * inv;
    }
  }
}
`;
