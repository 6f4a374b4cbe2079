// conv2d.wgsl: dense kxk convolution, any stride, asymmetric padding with a per-input-channel
// border value, fused bias + activation (none/relu/prelu) + optional residual add. NHWC, any C.
// Bindings: 0 x [n,H,W,Cin] f32, 1 weights packed [kh*kw*Cin, O4] vec4 (O4 = ceil(Cout/4),
// zero-filled tail), 2 bias vec4 [O4], 3 alpha vec4 [O4], 4 residual [n,OH,OW,Cout] f32,
// 5 out [n,OH,OW,Cout] f32, 6 padValue [Cin] f32, 7 params.
// Dispatch: (ceil(O4 / 16), ceil(rows / 4)) workgroups of 16x4 (y over 65535 wraps into z); each invocation
// computes 4 adjacent output pixels x 4 output channels, reusing each weight vector 4 times
// and each input value 4 times.
struct Params {
  H: u32, W: u32, Cin: u32, OH: u32,
  OW: u32, Cout: u32, O4: u32, kh: u32,
  kw: u32, sh: u32, sw: u32, padTop: u32,
  padLeft: u32, act: u32, hasResidual: u32, rows: u32, // rows = n * OH * ceil(OW / 4)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alpha: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> padValue: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

fn load(base: u32, iy: i32, ix: i32, c: u32) -> f32 {
  if (iy < 0 || ix < 0 || iy >= i32(p.H) || ix >= i32(p.W)) {
    return padValue[c];
  }
  return x[base + (u32(iy) * p.W + u32(ix)) * p.Cin + c];
}

fn store(acc: vec4<f32>, o4: u32, pix: u32) {
  var v = acc + bias[o4];
  if (p.act == 1u) {
    v = max(v, vec4<f32>(0.0));
  } else if (p.act == 2u) {
    v = select(v * alpha[o4], v, v > vec4<f32>(0.0));
  }
  let o = o4 * 4u;
  let base = pix * p.Cout + o;
  for (var i = 0u; i < 4u; i = i + 1u) {
    if (o + i < p.Cout) {
      var r = v[i];
      if (p.hasResidual != 0u) {
        r = r + residual[base + i];
      }
      out[base + i] = r;
    }
  }
}

@compute @workgroup_size(16, 4)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o4 = gid.x;
  let row = gid.y + gid.z * 65535u * 4u; // grids taller than 65535 workgroups wrap into z
  if (o4 >= p.O4 || row >= p.rows) {
    return;
  }
  let owt = (p.OW + 3u) / 4u;
  let tx = row % owt;
  let oy = (row / owt) % p.OH;
  let b = row / (owt * p.OH);
  let ox0 = tx * 4u;
  let xbase = b * p.H * p.W * p.Cin;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  let sw = i32(p.sw);
  for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
    let iy = i32(oy * p.sh + ky) - i32(p.padTop);
    for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
      let ix0 = i32(ox0 * p.sw + kx) - i32(p.padLeft);
      let wb = (ky * p.kw + kx) * p.Cin;
      for (var c = 0u; c < p.Cin; c = c + 1u) {
        let wv = w[(wb + c) * p.O4 + o4];
        acc0 = acc0 + load(xbase, iy, ix0, c) * wv;
        acc1 = acc1 + load(xbase, iy, ix0 + sw, c) * wv;
        acc2 = acc2 + load(xbase, iy, ix0 + 2 * sw, c) * wv;
        acc3 = acc3 + load(xbase, iy, ix0 + 3 * sw, c) * wv;
      }
    }
  }
  let pix0 = (b * p.OH + oy) * p.OW + ox0;
  store(acc0, o4, pix0);
  if (ox0 + 1u < p.OW) { store(acc1, o4, pix0 + 1u); }
  if (ox0 + 2u < p.OW) { store(acc2, o4, pix0 + 2u); }
  if (ox0 + 3u < p.OW) { store(acc3, o4, pix0 + 3u); }
}
