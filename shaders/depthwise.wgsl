// depthwise.wgsl: depthwise kxk convolution (depth multiplier 1), any stride and padding,
// fused bias + activation (none/relu/prelu) + optional residual add. NHWC, any C.
// Bindings: 0 x [n,H,W,C], 1 weights [kh,kw,C], 2 bias [C], 3 alpha [C], 4 residual, 5 out
// [n,OH,OW,C], 6 params. Dispatch: (ceil(C / 64), n * OH * ceil(OW / 4)) workgroups of 64;
// each invocation computes one channel at 4 adjacent output pixels, so adjacent invocations
// read adjacent memory and each weight is loaded once for 4 outputs.
struct Params {
  H: u32, W: u32, C: u32, OH: u32,
  OW: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, padTop: u32, padLeft: u32, act: u32,
  hasResidual: u32, rows: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> alpha: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

fn load(base: u32, iy: i32, ix: i32, c: u32) -> f32 {
  if (iy < 0 || ix < 0 || iy >= i32(p.H) || ix >= i32(p.W)) {
    return 0.0;
  }
  return x[base + (u32(iy) * p.W + u32(ix)) * p.C + c];
}

fn store(acc: f32, c: u32, pix: u32) {
  var v = acc + bias[c];
  if (p.act == 1u) {
    v = max(v, 0.0);
  } else if (p.act == 2u) {
    v = select(v * alpha[c], v, v > 0.0);
  }
  let o = pix * p.C + c;
  if (p.hasResidual != 0u) {
    v = v + residual[o];
  }
  out[o] = v;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wg.x * 64u + lid.x;
  let row = wg.y + wg.z * 65535u;
  if (c >= p.C || row >= p.rows) {
    return;
  }
  let owt = (p.OW + 3u) / 4u;
  let tx = row % owt;
  let oy = (row / owt) % p.OH;
  let b = row / (owt * p.OH);
  let ox0 = tx * 4u;
  let xbase = b * p.H * p.W * p.C;
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  let sw = i32(p.sw);
  for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
    let iy = i32(oy * p.sh + ky) - i32(p.padTop);
    if (iy < 0 || iy >= i32(p.H)) {
      continue;
    }
    for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
      let wv = w[(ky * p.kw + kx) * p.C + c];
      let ix0 = i32(ox0 * p.sw + kx) - i32(p.padLeft);
      a0 = a0 + load(xbase, iy, ix0, c) * wv;
      a1 = a1 + load(xbase, iy, ix0 + sw, c) * wv;
      a2 = a2 + load(xbase, iy, ix0 + 2 * sw, c) * wv;
      a3 = a3 + load(xbase, iy, ix0 + 3 * sw, c) * wv;
    }
  }
  let pix0 = (b * p.OH + oy) * p.OW + ox0;
  store(a0, c, pix0);
  if (ox0 + 1u < p.OW) { store(a1, c, pix0 + 1u); }
  if (ox0 + 2u < p.OW) { store(a2, c, pix0 + 2u); }
  if (ox0 + 3u < p.OW) { store(a3, c, pix0 + 3u); }
}
