// The batched alignment warp (Backend.warp on the WASM backend): n crops of outW x outH cut out of
// one RGB8 image, each with its own similarity transform, bilinear with k x k supersampling and a
// fill value (or, with `replicate`, the nearest edge pixel) for taps outside the image; float RGB 0..255 HWC out, crops back to back.
//
// The arithmetic is warpToCrop's (src/pipeline/align.ts) operation for operation in f64, so the
// crops equal the scalar reference bit for bit. No SIMD: the four bilinear taps are byte gathers
// from scattered addresses, and f64x2 over pairs of samples would save only the few coordinate
// operations per sample while the gathers and the border tests stay scalar.
//
// The image comes as a region of it: rw x rh pixels (RGB, rows back to back) whose top-left pixel
// is (rx0, ry0) of the image; the caller picks a region holding every tap that lies inside the
// image (src/backend/warp.ts), so a tap is inside the image exactly when it is inside the region.
// params: n x 7 f64 per segment: a, b, tx, ty, k, v0, rows: rows v0 .. v0 + rows - 1 of a crop (a
// whole crop is one segment; the caller splits a crop's rows between workers), written back to back.

// Sub-sample offsets (s + 0.5) / k, s < k <= 8: static data below __heap_base (a heap object would
// sit where the JS side allocates from heapBase()).
const subOffsets: usize = memory.data(64, 16);

export function warp(
  out: usize, img: usize, rx0: i32, ry0: i32, rw: i32, rh: i32,
  params: usize, n: i32, outW: i32, fill: f64, replicate: i32,
): void {
  const rowBytes = <usize>rw * 3;
  let dst = out;
  for (let c = 0; c < n; c++) {
    const p = params + (<usize>c) * 56;
    const a = load<f64>(p);
    const b = load<f64>(p, 8);
    const tx = load<f64>(p, 16);
    const ty = load<f64>(p, 24);
    const k = <i32>load<f64>(p, 32);
    const v0 = <i32>load<f64>(p, 40);
    const v1 = v0 + <i32>load<f64>(p, 48);
    const kf = <f64>k;
    for (let s = 0; s < k; s++) store<f64>(subOffsets + (<usize>s << 3), (<f64>s + 0.5) / kf);
    const inv = 1 / <f64>(k * k);
    for (let v = v0; v < v1; v++) {
      for (let u = 0; u < outW; u++) {
        let r: f64 = 0;
        let g: f64 = 0;
        let bl: f64 = 0;
        for (let sy = 0; sy < k; sy++) {
          const cy = <f64>v + load<f64>(subOffsets + (<usize>sy << 3));
          const bcy = b * cy;
          const acy = a * cy;
          for (let sx = 0; sx < k; sx++) {
            const cx = <f64>u + load<f64>(subOffsets + (<usize>sx << 3));
            // continuous -> pixel-centre coordinates, as in warpToCrop
            const fx = a * cx - bcy + tx - 0.5;
            const fy = b * cx + acy + ty - 0.5;
            const x0f = Math.floor(fx);
            const y0f = Math.floor(fy);
            const wx = fx - x0f;
            const wy = fy - y0f;
            const w00 = (1 - wx) * (1 - wy);
            const w10 = wx * (1 - wy);
            const w01 = (1 - wx) * wy;
            const w11 = wx * wy;
            // |coordinates| < 2^23 (checked by the caller), so the i32 casts are exact.
            const x0 = <i32>x0f - rx0;
            const y0 = <i32>y0f - ry0;
            if (x0 >= 0 && y0 >= 0 && x0 + 1 < rw && y0 + 1 < rh) {
              const i00 = img + <usize>y0 * rowBytes + <usize>x0 * 3;
              const i01 = i00 + rowBytes;
              r += <f64>load<u8>(i00) * w00 + <f64>load<u8>(i00, 3) * w10 + <f64>load<u8>(i01) * w01 + <f64>load<u8>(i01, 3) * w11;
              g += <f64>load<u8>(i00, 1) * w00 + <f64>load<u8>(i00, 4) * w10 + <f64>load<u8>(i01, 1) * w01 + <f64>load<u8>(i01, 4) * w11;
              bl += <f64>load<u8>(i00, 2) * w00 + <f64>load<u8>(i00, 5) * w10 + <f64>load<u8>(i01, 2) * w01 + <f64>load<u8>(i01, 5) * w11;
            } else if (replicate) {
              // Border: taps outside the image read the nearest edge pixel. The caller's region
              // is then the crop's box clamped into the image, so clamping to it is clamping to
              // the image.
              const xa = min(rw - 1, max(0, x0));
              const xb = min(rw - 1, max(0, x0 + 1));
              const ya = min(rh - 1, max(0, y0));
              const yb = min(rh - 1, max(0, y0 + 1));
              const p00 = img + (<usize>ya * rw + <usize>xa) * 3;
              const p10 = img + (<usize>ya * rw + <usize>xb) * 3;
              const p01 = img + (<usize>yb * rw + <usize>xa) * 3;
              const p11 = img + (<usize>yb * rw + <usize>xb) * 3;
              r += <f64>load<u8>(p00) * w00 + <f64>load<u8>(p10) * w10 + <f64>load<u8>(p01) * w01 + <f64>load<u8>(p11) * w11;
              g += <f64>load<u8>(p00, 1) * w00 + <f64>load<u8>(p10, 1) * w10 + <f64>load<u8>(p01, 1) * w01 + <f64>load<u8>(p11, 1) * w11;
              bl += <f64>load<u8>(p00, 2) * w00 + <f64>load<u8>(p10, 2) * w10 + <f64>load<u8>(p01, 2) * w01 + <f64>load<u8>(p11, 2) * w11;
            } else {
              // Border: taps outside the image take the fill value.
              const xin0 = x0 >= 0 && x0 < rw;
              const xin1 = x0 + 1 >= 0 && x0 + 1 < rw;
              const yin0 = y0 >= 0 && y0 < rh;
              const yin1 = y0 + 1 >= 0 && y0 + 1 < rh;
              const in00 = yin0 && xin0;
              const in10 = yin0 && xin1;
              const in01 = yin1 && xin0;
              const in11 = yin1 && xin1;
              // Addresses only formed for taps inside the region.
              const o00: i32 = in00 ? y0 * rw + x0 : 0;
              const o10: i32 = in10 ? y0 * rw + x0 + 1 : 0;
              const o01: i32 = in01 ? (y0 + 1) * rw + x0 : 0;
              const o11: i32 = in11 ? (y0 + 1) * rw + x0 + 1 : 0;
              const p00 = img + <usize>o00 * 3;
              const p10 = img + <usize>o10 * 3;
              const p01 = img + <usize>o01 * 3;
              const p11 = img + <usize>o11 * 3;
              r += (in00 ? <f64>load<u8>(p00) : fill) * w00 + (in10 ? <f64>load<u8>(p10) : fill) * w10 + (in01 ? <f64>load<u8>(p01) : fill) * w01 + (in11 ? <f64>load<u8>(p11) : fill) * w11;
              g += (in00 ? <f64>load<u8>(p00, 1) : fill) * w00 + (in10 ? <f64>load<u8>(p10, 1) : fill) * w10 + (in01 ? <f64>load<u8>(p01, 1) : fill) * w01 + (in11 ? <f64>load<u8>(p11, 1) : fill) * w11;
              bl += (in00 ? <f64>load<u8>(p00, 2) : fill) * w00 + (in10 ? <f64>load<u8>(p10, 2) : fill) * w10 + (in01 ? <f64>load<u8>(p01, 2) : fill) * w01 + (in11 ? <f64>load<u8>(p11, 2) : fill) * w11;
            }
          }
        }
        store<f32>(dst, <f32>(r * inv));
        store<f32>(dst, <f32>(g * inv), 4);
        store<f32>(dst, <f32>(bl * inv), 8);
        dst += 12;
      }
    }
  }
}
