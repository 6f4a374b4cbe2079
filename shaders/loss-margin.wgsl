// loss-margin.wgsl: the softmax cross-entropy of the margin losses, per sample row.
// margin_rows: 0 cos [n, c] (cosines, or raw logits when normalize = 0), 1 labels [n] (i32, -1 =
// ignore), 2 bias [c] (used when normalize = 0), 3 dcos [n, c] = d loss / d cos (already divided
// by the number of counted samples), 4 rowOut [n, 2] = (loss, 1 if the target logit is the largest),
// 5 params. Dispatch: one workgroup of 64 per row (x + y * 65535).
// Target logit: s * (cos(m1 * theta + m2) - m3); others s * cos; softmax: cos + bias.
// column_sum: 3 dcos, 6 dbias[c] = sum over rows, 5 params; dispatch ceil(c / 64).
struct Params {
  n: u32,
  c: u32,
  normalize: u32,
  valid: u32,
  s: f32,
  m1: f32,
  m2: f32,
  m3: f32,
}

@group(0) @binding(0) var<storage, read> cosm: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> dcos: array<f32>;
@group(0) @binding(4) var<storage, read_write> rowOut: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;

var<workgroup> red: array<f32, 64>;

// psi(c) and d psi / d c, as in src/train/margin-loss.ts (targetMargin).
fn target_margin(c: f32) -> vec2<f32> {
  if (p.m1 == 1.0) {
    if (p.m2 == 0.0) {
      return vec2<f32>(c - p.m3, 1.0);
    }
    let cm = cos(p.m2);
    let sm = sin(p.m2);
    let sinT = sqrt(max(0.0, 1.0 - c * c));
    return vec2<f32>(c * cm - sinT * sm - p.m3, cm + c * sm / max(sinT, 1e-7));
  }
  let cc = clamp(c, -1.0, 1.0);
  let t = acos(cc);
  let sinT = sqrt(max(0.0, 1.0 - cc * cc));
  return vec2<f32>(cos(p.m1 * t + p.m2) - p.m3, p.m1 * sin(p.m1 * t + p.m2) / max(sinT, 1e-7));
}

fn logit(row: u32, j: u32, y: u32) -> f32 {
  let v = cosm[row * p.c + j];
  if (p.normalize == 0u) {
    return v + bias[j];
  }
  if (j == y) {
    return p.s * target_margin(v).x;
  }
  return p.s * v;
}

@compute @workgroup_size(64)
fn margin_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wg.x + wg.y * 65535u;
  // Whole workgroups leave together, so the barriers below stay uniform.
  if (row >= p.n) {
    return;
  }
  let label = labels[row];
  let base = row * p.c;
  if (label < 0) {
    for (var j = lid.x; j < p.c; j = j + 64u) {
      dcos[base + j] = 0.0;
    }
    if (lid.x == 0u) {
      rowOut[2u * row] = 0.0;
      rowOut[2u * row + 1u] = 0.0;
    }
    return;
  }
  let y = u32(label);
  // Largest logit other than the target (for the accuracy flag), then the overall maximum.
  var mo = -3.4e38;
  for (var j = lid.x; j < p.c; j = j + 64u) {
    if (j != y) {
      mo = max(mo, logit(row, j, y));
    }
  }
  red[lid.x] = mo;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride = stride / 2u) {
    if (lid.x < stride) {
      red[lid.x] = max(red[lid.x], red[lid.x + stride]);
    }
    workgroupBarrier();
  }
  let maxOther = red[0];
  workgroupBarrier();
  let zy = logit(row, y, y);
  let mx = max(maxOther, zy);
  var se = 0.0;
  for (var j = lid.x; j < p.c; j = j + 64u) {
    se = se + exp(logit(row, j, y) - mx);
  }
  red[lid.x] = se;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride = stride / 2u) {
    if (lid.x < stride) {
      red[lid.x] = red[lid.x] + red[lid.x + stride];
    }
    workgroupBarrier();
  }
  let lse = mx + log(red[0]);
  let invValid = 1.0 / f32(p.valid);
  let dpsi = select(1.0, target_margin(cosm[base + y]).y, p.normalize != 0u);
  let scale = select(1.0, p.s, p.normalize != 0u);
  for (var j = lid.x; j < p.c; j = j + 64u) {
    let prob = exp(logit(row, j, y) - lse);
    var g = (prob - select(0.0, 1.0, j == y)) * invValid;
    g = g * scale * select(1.0, dpsi, j == y);
    dcos[base + j] = g;
  }
  if (lid.x == 0u) {
    rowOut[2u * row] = lse - zy;
    rowOut[2u * row + 1u] = select(0.0, 1.0, zy > maxOther);
  }
}

@compute @workgroup_size(64)
fn column_sum(@builtin(global_invocation_id) gid: vec3<u32>) {
  let j = gid.x;
  if (j >= p.c) {
    return;
  }
  var s = 0.0;
  for (var i = 0u; i < p.n; i = i + 1u) {
    s = s + dcos[i * p.c + j];
  }
  dbias[j] = s;
}
