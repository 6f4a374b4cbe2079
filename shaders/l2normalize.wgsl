// l2normalize.wgsl: each sample (row of F values) divided by its L2 norm (0 stays 0).
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
