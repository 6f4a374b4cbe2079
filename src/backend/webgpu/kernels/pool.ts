// Hand-written WGSL of maxPool2d, padChannels, sigmoid and concat (planned in ops/pool.ts).

/** maxPool, padChannels, sigmoid and copySlice entry points. */
export const POOL_WGSL = /* wgsl */ `// pool: the data-movement ops of the detector and landmark models. Entry points:
// maxPool (kh x kw window, stride, pads that never win), padChannels (zero channels before/after),
// sigmoid, copySlice (per-sample flat copy into an offset of a wider output: concat).
// Bindings: 0 x, 1 out, 2 params. Dispatch: ceil(total / 256) workgroups of 256 laid out as
// x + y * 65535, one output element per invocation (each input is read about once).
struct Params {
  total: u32, C: u32, H: u32, W: u32,
  OH: u32, OW: u32, kh: u32, kw: u32,
  sh: u32, sw: u32, padTop: u32, padLeft: u32,
  before: u32, inC: u32, srcPer: u32, dstPer: u32,
  dstOff: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn index(wg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wg.x + wg.y * 65535u) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn maxPool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  let c = i % p.C;
  let ox = (i / p.C) % p.OW;
  let oy = (i / (p.C * p.OW)) % p.OH;
  let n = i / (p.C * p.OW * p.OH);
  var m = -3.402823e38;
  for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
    let iy = i32(oy * p.sh + ky) - i32(p.padTop);
    if (iy < 0 || iy >= i32(p.H)) { continue; }
    for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
      let ix = i32(ox * p.sw + kx) - i32(p.padLeft);
      if (ix < 0 || ix >= i32(p.W)) { continue; }
      m = max(m, x[((n * p.H + u32(iy)) * p.W + u32(ix)) * p.C + c]);
    }
  }
  out[i] = m;
}

@compute @workgroup_size(256)
fn padChannels(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  let c = i % p.C;
  let pix = i / p.C;
  var v = 0.0;
  if (c >= p.before && c < p.before + p.inC) {
    v = x[pix * p.inC + c - p.before];
  }
  out[i] = v;
}

@compute @workgroup_size(256)
fn sigmoid(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  out[i] = 1.0 / (1.0 + exp(-x[i]));
}

@compute @workgroup_size(256)
fn copySlice(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = index(wg, lid);
  if (i >= p.total) { return; }
  let n = i / p.srcPer;
  let e = i % p.srcPer;
  out[n * p.dstPer + p.dstOff + e] = x[i];
}
`;
