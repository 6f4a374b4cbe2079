// Hand-written WGSL of the margin losses (used by webgpu-margin-loss.ts).

/** Row normalisation forward (normalize_rows) and backward (normalize_backward). */
export const LOSS_NORMALIZE_WGSL = /* wgsl */ `// loss-normalize: row L2 normalisation for the margin losses, forward and backward.
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
`;

/** Strided tiled matmul (A B, A B^T, A^T B). */
export const LOSS_MATMUL_WGSL = /* wgsl */ `// loss-matmul: out[r, c] = sum_k A[r * sar + k * sak] * B[k * sbk + c * sbc], r < R, c < C,
// with strides in the uniforms so one pipeline serves A B, A B^T and A^T B (the cosine matrix
// and both gradient products of the margin losses). Bindings: 0 a, 1 b, 2 out [R, C], 3 params.
// Dispatch: (ceil(C / 16), ceil(R / 16)) workgroups of 16 x 16, through 16 x 16 shared tiles.
struct Params {
  R: u32,
  C: u32,
  K: u32,
  sar: u32,
  sak: u32,
  sbk: u32,
  sbc: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> tileA: array<array<f32, 16>, 16>;
var<workgroup> tileB: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wg.y * 16u + lid.y;
  let c = wg.x * 16u + lid.x;
  var acc = 0.0;
  let tiles = (p.K + 15u) / 16u;
  for (var t = 0u; t < tiles; t = t + 1u) {
    // Thread (lx, ly) loads A[r, t*16 + lx] and B[t*16 + ly, c].
    let ka = t * 16u + lid.x;
    let kb = t * 16u + lid.y;
    tileA[lid.y][lid.x] = select(0.0, a[r * p.sar + ka * p.sak], r < p.R && ka < p.K);
    tileB[lid.y][lid.x] = select(0.0, b[kb * p.sbk + c * p.sbc], c < p.C && kb < p.K);
    workgroupBarrier();
    for (var k = 0u; k < 16u; k = k + 1u) {
      acc = acc + tileA[lid.y][k] * tileB[k][lid.x];
    }
    workgroupBarrier();
  }
  if (r < p.R && c < p.C) {
    out[r * p.C + c] = acc;
  }
}
`;

/** Per-row softmax cross-entropy with the margin (margin_rows) and column sums (column_sum). */
export const LOSS_MARGIN_WGSL = /* wgsl */ `// loss-margin: the softmax cross-entropy of the margin losses, per sample row.
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
`;
