// Hand-written WGSL of the exact top-k scan (used by webgpu-score.ts).

/** score, merge, scores and readSum entry points. */
export const SCORE_WGSL = /* wgsl */ `// score: exact top-k by inner product over one gallery chunk (rows of dim4 vec4s).
// Bindings: 0 gallery [rows, dim4], 1 queries [q, dim4], 2 partS / 3 partI [q, blocks, k]
// (per-workgroup lists), 4 bad [chunks] (first row with a non-finite score, atomic min),
// 5 params, 6 outS / 7 outI (chunk results, or raw scores for the 'scores' entry).
// Entries and dispatch shapes:
//   score   (ceil(q / QB), blocks): 64 threads score rowsPerThread * 64 rows for QB queries, keep
//           a top-k per thread, merge the 64 lists in workgroup memory, write one list per query.
//   merge   (q, as x + y * 65535): 64 threads merge one query's block lists into its top-k.
//   scores  (ceil(rowsN / 64), q): raw scores of rows [rowStart, rowStart + rowsN), for k > KMAX.
//   readSum (blocks): every gallery value summed, one partial per workgroup into outS[outBase..] (a plain
//           streaming read: the memory bandwidth reference of the score benchmark).
// Order: higher score first, equal scores by lower row index, so results are deterministic.

const WG: u32 = 64u;
/** Queries per thread in the score pass: each gallery vector loaded serves QB dot products. */
const QB: u32 = 4u;
/** Largest k the GPU lists hold; larger k goes through 'scores' and a CPU selection. */
const KMAX: u32 = 32u;
const EMPTY: u32 = 0xffffffffu;

struct Params {
  dim4: u32,
  rows: u32,
  q: u32,
  k: u32,
  rowsPerThread: u32,
  blocks: u32,
  base: u32,
  outBase: u32,
  chunk: u32,
  rowStart: u32,
  rowsN: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> gallery: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> queries: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> partS: array<f32>;
@group(0) @binding(3) var<storage, read_write> partI: array<u32>;
@group(0) @binding(4) var<storage, read_write> bad: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read_write> outS: array<f32>;
@group(0) @binding(7) var<storage, read_write> outI: array<u32>;

var<workgroup> shS: array<f32, 2048>; // WG * KMAX
var<workgroup> shI: array<u32, 2048>;

// This thread's lists: QB of them, KMAX apart (only the first k entries of each are used).
var<private> topS: array<f32, 128>; // QB * KMAX
var<private> topI: array<u32, 128>;

/** Score of an empty slot: the lowest f32 (WGSL has no infinity literal); empty slots also carry
 * the row EMPTY, so any real row with a finite score ranks before them. */
const LOWEST: f32 = -3.4028234e38f;

/** (s, i) ranks before (t, j): a higher score, or the same score and a lower row. */
fn better(s: f32, i: u32, t: f32, j: u32) -> bool {
  return s > t || (s == t && i < j);
}

/** NaN or infinite: all exponent bits set (a bit test, which no fast-math rewrite removes). */
fn nonFinite(s: f32) -> bool {
  return (bitcast<u32>(s) & 0x7f800000u) == 0x7f800000u;
}

fn clearList(off: u32) {
  for (var t = 0u; t < p.k; t++) {
    topS[off + t] = LOWEST;
    topI[off + t] = EMPTY;
  }
}

/** Inserts (s, i) into the private list at off if it beats the list's last entry. */
fn offer(off: u32, s: f32, i: u32) {
  let last = off + p.k - 1u;
  if (!better(s, i, topS[last], topI[last])) {
    return;
  }
  var j = p.k - 1u;
  loop {
    if (j == 0u) {
      break;
    }
    let ps = topS[off + j - 1u];
    let pi = topI[off + j - 1u];
    if (!better(s, i, ps, pi)) {
      break;
    }
    topS[off + j] = ps;
    topI[off + j] = pi;
    j = j - 1u;
  }
  topS[off + j] = s;
  topI[off + j] = i;
}

/**
 * Merges the 64 threads' lists at private offset off into shS/shI[0, k): each thread copies its
 * list to workgroup memory, then pairs of lists merge in a tree of log2(64) levels. Call from
 * uniform control flow (it has barriers). The private list at off is scratch afterwards.
 */
fn mergeWorkgroup(lid: u32, off: u32) {
  let k = p.k;
  for (var t = 0u; t < k; t++) {
    shS[lid * KMAX + t] = topS[off + t];
    shI[lid * KMAX + t] = topI[off + t];
  }
  workgroupBarrier();
  for (var step = 1u; step < WG; step = step * 2u) {
    if (lid % (2u * step) == 0u) {
      let a = lid * KMAX;
      let b = (lid + step) * KMAX;
      var ia = 0u;
      var ib = 0u;
      // k entries taken in total, so neither cursor passes k - 1 while one is still taken.
      for (var t = 0u; t < k; t++) {
        let sa = shS[a + ia];
        let xa = shI[a + ia];
        let sb = shS[b + ib];
        let xb = shI[b + ib];
        if (better(sa, xa, sb, xb)) {
          topS[off + t] = sa;
          topI[off + t] = xa;
          ia = ia + 1u;
        } else {
          topS[off + t] = sb;
          topI[off + t] = xb;
          ib = ib + 1u;
        }
      }
      for (var t = 0u; t < k; t++) {
        shS[a + t] = topS[off + t];
        shI[a + t] = topI[off + t];
      }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(64)
fn score(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let q0 = wg.x * QB;
  let block = wg.y;
  for (var j = 0u; j < QB; j++) {
    clearList(j * KMAX);
  }
  let dim4 = p.dim4;
  let qLast = p.q - 1u;
  // Query slots past the last query repeat it; their lists are never written out.
  let qa = min(q0, qLast) * dim4;
  let qb = min(q0 + 1u, qLast) * dim4;
  let qc = min(q0 + 2u, qLast) * dim4;
  let qd = min(q0 + 3u, qLast) * dim4;
  let rowStart = block * p.rowsPerThread * WG;
  for (var it = 0u; it < p.rowsPerThread; it++) {
    // Rows interleaved across the threads: neighbouring threads read neighbouring rows.
    let r = rowStart + it * WG + lid;
    if (r >= p.rows) {
      break;
    }
    let g0 = r * dim4;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var d = 0u; d < dim4; d++) {
      let g = gallery[g0 + d];
      a0 = fma(g, queries[qa + d], a0);
      a1 = fma(g, queries[qb + d], a1);
      a2 = fma(g, queries[qc + d], a2);
      a3 = fma(g, queries[qd + d], a3);
    }
    let s0 = (a0.x + a0.y) + (a0.z + a0.w);
    let s1 = (a1.x + a1.y) + (a1.z + a1.w);
    let s2 = (a2.x + a2.y) + (a2.z + a2.w);
    let s3 = (a3.x + a3.y) + (a3.z + a3.w);
    if (nonFinite(s0) || nonFinite(s1) || nonFinite(s2) || nonFinite(s3)) {
      atomicMin(&bad[p.chunk], r);
    }
    let row = p.base + r;
    offer(0u, s0, row);
    offer(KMAX, s1, row);
    offer(2u * KMAX, s2, row);
    offer(3u * KMAX, s3, row);
  }
  for (var j = 0u; j < QB; j++) {
    mergeWorkgroup(lid, j * KMAX);
    let qi = q0 + j;
    if (lid == 0u && qi < p.q) {
      let o = (qi * p.blocks + block) * p.k;
      for (var t = 0u; t < p.k; t++) {
        partS[o + t] = shS[t];
        partI[o + t] = shI[t];
      }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(64)
fn merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let lid = lid3.x;
  let qi = wg.x + wg.y * 65535u;
  if (qi >= p.q) {
    return;
  }
  let k = p.k;
  clearList(0u);
  for (var b = lid; b < p.blocks; b += WG) {
    let o = (qi * p.blocks + b) * k;
    // Each block list is sorted: stop at its first entry that does not make this thread's list.
    for (var t = 0u; t < k; t++) {
      let s = partS[o + t];
      let i = partI[o + t];
      if (i == EMPTY || !better(s, i, topS[k - 1u], topI[k - 1u])) {
        break;
      }
      offer(0u, s, i);
    }
  }
  mergeWorkgroup(lid, 0u);
  if (lid == 0u) {
    let o = p.outBase + qi * k;
    for (var t = 0u; t < k; t++) {
      outS[o + t] = shS[t];
      outI[o + t] = shI[t];
    }
  }
}

@compute @workgroup_size(64)
fn scores(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let i = wg.x * WG + lid3.x;
  let qi = wg.y;
  if (i >= p.rowsN || qi >= p.q) {
    return;
  }
  let r = p.rowStart + i;
  let dim4 = p.dim4;
  let g0 = r * dim4;
  let q0 = qi * dim4;
  var a = vec4<f32>(0.0);
  for (var d = 0u; d < dim4; d++) {
    a = fma(gallery[g0 + d], queries[q0 + d], a);
  }
  outS[qi * p.rowsN + i] = (a.x + a.y) + (a.z + a.w);
}

@compute @workgroup_size(64)
fn readSum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
  let count = p.rows * p.dim4;
  let stride = p.blocks * WG;
  // Grid-stride: neighbouring threads read neighbouring vec4s.
  var a = vec4<f32>(0.0);
  for (var i = wg.x * WG + lid3.x; i < count; i += stride) {
    a = a + gallery[i];
  }
  shS[lid3.x] = (a.x + a.y) + (a.z + a.w);
  workgroupBarrier();
  if (lid3.x == 0u) {
    var s = 0.0;
    for (var t = 0u; t < WG; t++) {
      s = s + shS[t];
    }
    outS[p.outBase + wg.x] = s;
  }
}
`;
