// loss-matmul.wgsl: out[r, c] = sum_k A[r * sar + k * sak] * B[k * sbk + c * sbc], r < R, c < C,
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
