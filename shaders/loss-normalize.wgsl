// loss-normalize.wgsl: row L2 normalisation for the margin losses, forward and backward.
// normalize_rows: 0 src [rows, d], 1 dst [rows, d], 2 norms [rows], 3 params. Dispatch: one
// workgroup of 64 per row (x + y * 65535). normalize_backward: 1 u (normalised rows), 2 norms,
// 4 du, 5 dv = (du - u (u . du)) / |v|, 3 params; same dispatch. Zero rows stay zero.
struct Params {
  rows: u32,
  d: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read_write> norms: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> du: array<f32>;
@group(0) @binding(5) var<storage, read_write> dv: array<f32>;

var<workgroup> partial: array<f32, 64>;

fn reduce_sum(lane: u32) -> f32 {
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride = stride / 2u) {
    if (lane < stride) {
      partial[lane] = partial[lane] + partial[lane + stride];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(64)
fn normalize_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wg.x + wg.y * 65535u;
  let inRange = row < p.rows;
  let base = row * p.d;
  var s = 0.0;
  if (inRange) {
    for (var k = lid.x; k < p.d; k = k + 64u) {
      let v = src[base + k];
      s = s + v * v;
    }
  }
  partial[lid.x] = s;
  let total = reduce_sum(lid.x);
  let nrm = sqrt(total);
  let inv = select(0.0, 1.0 / nrm, nrm > 0.0);
  if (inRange) {
    for (var k = lid.x; k < p.d; k = k + 64u) {
      dst[base + k] = src[base + k] * inv;
    }
    if (lid.x == 0u) {
      norms[row] = nrm;
    }
  }
}

@compute @workgroup_size(64)
fn normalize_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wg.x + wg.y * 65535u;
  let inRange = row < p.rows;
  let base = row * p.d;
  var s = 0.0;
  if (inRange) {
    for (var k = lid.x; k < p.d; k = k + 64u) {
      s = s + dst[base + k] * du[base + k];
    }
  }
  partial[lid.x] = s;
  let dot = reduce_sum(lid.x);
  if (inRange) {
    let nrm = norms[row];
    let inv = select(0.0, 1.0 / nrm, nrm > 0.0);
    for (var k = lid.x; k < p.d; k = k + 64u) {
      dv[base + k] = (du[base + k] - dst[base + k] * dot) * inv;
    }
  }
}
