// Hand-written WGSL of the batched alignment warp (used by webgpu-warp.ts).

/** One invocation per output pixel of every crop. */
export const WARP_WGSL = /* wgsl */ `// warp: the batched alignment warp. One dispatch cuts n crops of outW x outH out of one RGB8
// image, each with its own similarity transform (crop pixel-centre coords -> image coords, as
// warpToCrop in src/pipeline/align.ts): bilinear between pixel centres, taps outside the image
// take 'fill' (or the nearest edge pixel with 'replicate'), k x k samples per output pixel
// averaged (k per crop, chosen on the host exactly as warpToCrop does). Output float RGB 0..255,
// HWC, crops back to back.
//
// Image format: the RGB bytes as decoded (3 bytes per pixel, rows back to back), 4 bytes to a u32
// word, plus one padding word. Not RGBA8 and not f32 RGB because the host then only copies rows
// (no repacking pass over a photo of up to 50 megapixels on the CPU), the upload is the smallest
// (3 bytes/pixel against 4 for RGBA8 and 12 for f32), and a 44-megapixel region still fits a
// 128 MiB storage binding. A pixel costs two word loads (its 3 bytes may straddle a word boundary)
// instead of one; the loads are adjacent and the kernel does little else.
// Only the region of the image that the crops can read is uploaded: rw x rh pixels whose top-left
// is image pixel (rx0, ry0). The host picks it so that every tap inside the image lies inside it
// (src/backend/warp.ts), so taps are tested against the region.
//
// Precision: image coordinates carried in f32 are rounded to 6e-5 px near x = 1000 (the f32
// spacing there), up to 1.5e-2 on the 0..255 scale across a 255-step edge, before any arithmetic. The host therefore splits the transform into per-column terms
// (a*u, b*u) and per-row terms (-b*v + tx - 0.5, a*v + ty - 0.5), each computed in f64 and stored
// as an exact integer part plus a fraction in [0, 1); the kernel adds the integer parts in i32 and
// only the fractions and the sub-sample offset (a*su - b*sv, |.| <= 1.5 * scale) in f32.
//
// Bindings: 0 img (u32 words), 1 crops [n] (a, b, k, 1/k^2), 2 tabs [n * (outW + outH)] vec4
// (int x, frac x, int y, frac y): outW column entries then outH row entries per crop, 3 out
// [n * outH * outW * 3] f32, 4 params.
// Dispatch: (ceil(outW / 8), ceil(outH / 8), n) workgroups of 8x8, one invocation per output pixel.
struct Params {
  outW: u32, outH: u32, n: u32, rw: u32,
  rh: u32, rx0: i32, ry0: i32, fill: f32,
  replicate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

struct Crop {
  a: f32,
  b: f32,
  k: u32,
  inv: f32, // 1 / k^2
}

@group(0) @binding(0) var<storage, read> img: array<u32>;
@group(0) @binding(1) var<storage, read> crops: array<Crop>;
@group(0) @binding(2) var<storage, read> tabs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Pixel (x, y) of the region (region coordinates, inside it) as RGB 0..255.
fn pixel(x: i32, y: i32) -> vec3<f32> {
  let byte = u32(y * i32(p.rw) + x) * 3u;
  let w = byte >> 2u;
  let s = (byte & 3u) * 8u;
  let lo = img[w];
  let hi = img[w + 1u];
  // Bytes s/8 .. s/8 + 2 of the 8-byte pair (lo, hi).
  let v = select((lo >> s) | (hi << (32u - s)), lo, s == 0u);
  return vec3<f32>(f32(v & 0xffu), f32((v >> 8u) & 0xffu), f32((v >> 16u) & 0xffu));
}

// A bilinear tap: the pixel, or outside the region (= outside the image) the fill value or, with
// 'replicate', the nearest edge pixel (the host then clamps the region into the image instead of
// cutting it, so clamping to the region is clamping to the image).
fn tap(x: i32, y: i32) -> vec3<f32> {
  if (x >= 0 && y >= 0 && x < i32(p.rw) && y < i32(p.rh)) {
    return pixel(x, y);
  }
  if (p.replicate != 0u) {
    return pixel(clamp(x, 0, i32(p.rw) - 1), clamp(y, 0, i32(p.rh) - 1));
  }
  return vec3<f32>(p.fill);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let u = gid.x;
  let v = gid.y;
  let c = gid.z;
  if (u >= p.outW || v >= p.outH || c >= p.n) {
    return;
  }
  let cr = crops[c];
  let base = c * (p.outW + p.outH);
  let col = tabs[base + u];
  let row = tabs[base + p.outW + v];
  // Whole pixels (region coordinates) and the fraction left, at the crop pixel's corner (u, v).
  let ix = i32(col.x) + i32(row.x) - p.rx0;
  let iy = i32(col.z) + i32(row.z) - p.ry0;
  let fx0 = col.y + row.y;
  let fy0 = col.w + row.w;
  let kf = f32(cr.k);
  var acc = vec3<f32>(0.0);
  for (var sy = 0u; sy < cr.k; sy++) {
    let sv = (f32(sy) + 0.5) / kf;
    // Sums per sample row first: fewer large-plus-small float additions for k up to 8.
    var rowAcc = vec3<f32>(0.0);
    for (var sx = 0u; sx < cr.k; sx++) {
      let su = (f32(sx) + 0.5) / kf;
      let fx = fx0 + (cr.a * su - cr.b * sv);
      let fy = fy0 + (cr.b * su + cr.a * sv);
      let flx = floor(fx);
      let fly = floor(fy);
      let wx = fx - flx;
      let wy = fy - fly;
      let x = ix + i32(flx);
      let y = iy + i32(fly);
      rowAcc += tap(x, y) * ((1.0 - wx) * (1.0 - wy)) + tap(x + 1, y) * (wx * (1.0 - wy))
        + tap(x, y + 1) * ((1.0 - wx) * wy) + tap(x + 1, y + 1) * (wx * wy);
    }
    acc += rowAcc;
  }
  let rgb = acc * cr.inv;
  let o = ((c * p.outH + v) * p.outW + u) * 3u;
  out[o] = rgb.x;
  out[o + 1u] = rgb.y;
  out[o + 2u] = rgb.z;
}
`;
