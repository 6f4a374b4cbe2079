// depthwise.wgsl: depthwise kxk convolution (depth multiplier 1, kh * kw <= 49), any stride and
// padding, fused bias + activation (none/relu/prelu) + optional residual add. NHWC, any C.
// Bindings: 0 x [n,H,W,C], 1 weights [kh,kw,C], 2 bias [C], 3 alpha [C], 4 residual, 5 out
// [n,OH,OW,C], 6 params. Dispatch: (ceil(C / 64), tiles) workgroups of 64 (y over 65535 wraps
// into z), tiles = n * ceil(OH / 4) * ceil(OW / 4).
// Each invocation computes one channel of a 4x4 output tile: its weights are loaded once into a
// private array, and each input row of the tile is loaded once and used by every output row and
// column that needs it (stride 1, 3x3: 45 loads for 144 multiply-adds instead of 4 per output).
struct Params {
  H: u32, W: u32, C: u32, OH: u32,
  OW: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, padTop: u32, padLeft: u32, act: u32,
  hasResidual: u32, tiles: u32, tilesX: u32, tilesY: u32,
}

const TH = 4u;
const TW = 4u;
const MAX_TAPS = 49u;
const MAX_SEG = 32u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> alpha: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

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
  let tile = wg.y + wg.z * 65535u;
  if (c >= p.C || tile >= p.tiles) {
    return;
  }
  let tx = tile % p.tilesX;
  let ty = (tile / p.tilesX) % p.tilesY;
  let b = tile / (p.tilesX * p.tilesY);
  let oy0 = ty * TH;
  let ox0 = tx * TW;
  let xbase = b * p.H * p.W * p.C + c;

  var wv: array<f32, MAX_TAPS>;
  let taps = p.kh * p.kw;
  for (var t = 0u; t < taps; t = t + 1u) {
    wv[t] = w[t * p.C + c];
  }
  var acc: array<f32, 16>;
  var row: array<f32, MAX_SEG>;
  let seg = (TW - 1u) * p.sw + p.kw;
  let ix0 = i32(ox0 * p.sw) - i32(p.padLeft);
  let rowsIn = (TH - 1u) * p.sh + p.kh;
  for (var ir = 0u; ir < rowsIn; ir = ir + 1u) {
    let iy = i32(oy0 * p.sh + ir) - i32(p.padTop);
    if (iy < 0 || iy >= i32(p.H)) {
      continue;
    }
    let rbase = xbase + u32(iy) * p.W * p.C;
    for (var s = 0u; s < seg; s = s + 1u) {
      let ix = ix0 + i32(s);
      var v = 0.0;
      if (ix >= 0 && ix < i32(p.W)) {
        v = x[rbase + u32(ix) * p.C];
      }
      row[s] = v;
    }
    for (var t = 0u; t < TH; t = t + 1u) {
      // Output row t of the tile uses input row ir with kernel row ky = ir - t * sh.
      let ky = i32(ir) - i32(t * p.sh);
      if (ky < 0 || ky >= i32(p.kh)) {
        continue;
      }
      for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
        let wk = wv[u32(ky) * p.kw + kx];
        for (var u = 0u; u < TW; u = u + 1u) {
          acc[t * TW + u] = acc[t * TW + u] + row[u * p.sw + kx] * wk;
        }
      }
    }
  }
  for (var t = 0u; t < TH; t = t + 1u) {
    let oy = oy0 + t;
    if (oy >= p.OH) {
      break;
    }
    for (var u = 0u; u < TW; u = u + 1u) {
      let ox = ox0 + u;
      if (ox < p.OW) {
        store(acc[t * TW + u], c, (b * p.OH + oy) * p.OW + ox);
      }
    }
  }
}
