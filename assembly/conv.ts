// Spatial kernels on one NHWC sample: im2col (feeds the GEMM for dense kxk convolutions) and the
// depthwise convolution with its fused bias, activation and residual.
import { activate, activateScalar, madd } from './common';

/** Copies n floats; an inline loop, as memory.copy costs a call for the few floats of a window row. */
// @ts-ignore: decorator
@inline function copyFloats(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + ((<usize>i) << 2), v128.load(src + ((<usize>i) << 2)));
  for (; i < n; i++) store<f32>(dst + ((<usize>i) << 2), load<f32>(src + ((<usize>i) << 2)));
}

/**
 * Gathers the kh x kw x C window of every output pixel into a row of out [OH*OW, kh*kw*C], in the
 * filter's (ky, kx, c) order. Outside the image the row holds padValue[c] (padValue = 0: zeros).
 * Inside the image the kw pixels of a window row are contiguous in NHWC, so they go in one copy.
 */
export function im2col(
  out: usize, x: usize, H: i32, W: i32, C: i32, kh: i32, kw: i32, sh: i32, sw: i32,
  padT: i32, padL: i32, OH: i32, OW: i32, padValue: usize,
): void {
  const cBytes = (<usize>C) << 2;
  let dst = out;
  for (let oy = 0; oy < OH; oy++) {
    for (let ox = 0; ox < OW; ox++) {
      const ix0 = ox * sw - padL;
      const inside = ix0 >= 0 && ix0 + kw <= W;
      for (let ky = 0; ky < kh; ky++) {
        const iy = oy * sh + ky - padT;
        if (inside && iy >= 0 && iy < H) {
          copyFloats(dst, x + (<usize>(iy * W + ix0)) * cBytes, kw * C);
          dst += (<usize>kw) * cBytes;
          continue;
        }
        for (let kx = 0; kx < kw; kx++) {
          const ix = ix0 + kx;
          if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
            copyFloats(dst, x + (<usize>(iy * W + ix)) * cBytes, C);
          } else if (padValue != 0) {
            copyFloats(dst, padValue, C);
          } else {
            memory.fill(dst, 0, cBytes);
          }
          dst += cBytes;
        }
      }
    }
  }
}

/**
 * One output pixel (oy, ox) of the depthwise convolution, channels [c0, C): 16, then 4 at a time,
 * then one by one; taps outside the image are skipped (zero padding).
 */
// @ts-ignore: decorator
@inline function depthwisePixel(
  out: usize, x: usize, w: usize, bias: usize, alpha: usize, res: usize,
  H: i32, W: i32, C: i32, kh: i32, kw: i32, sh: i32, sw: i32, padT: i32, padL: i32,
  OW: i32, act: i32, oy: i32, ox: i32, c0: i32,
): void {
  const pixBytes = (<usize>C) << 2;
  const rowBytes = (<usize>W) * pixBytes;
  const wRowBytes = (<usize>(kw * C)) << 2;
  const iy0 = oy * sh - padT;
  const ky0 = iy0 < 0 ? -iy0 : 0;
  const ky1 = min(kh, H - iy0);
  const ix0 = ox * sw - padL;
  const kx0 = ix0 < 0 ? -ix0 : 0;
  const kx1 = min(kw, W - ix0);
  const pix = (<usize>(oy * OW + ox)) * pixBytes;
  const yp = out + pix;
  const rp = res != 0 ? res + pix : 0;
  // First tap of the window in the input and in the filter.
  const xBase = x + <usize>(iy0 + ky0) * rowBytes + <usize>(ix0 + kx0) * pixBytes;
  const wBase = w + <usize>ky0 * wRowBytes + <usize>kx0 * pixBytes;
  const c16 = C & ~15;
  const c4 = C & ~3;
  let c = c0;
  for (; c < c16; c += 16) {
    const cb = (<usize>c) << 2;
    let a0 = v128.load(bias + cb);
    let a1 = v128.load(bias + cb, 16);
    let a2 = v128.load(bias + cb, 32);
    let a3 = v128.load(bias + cb, 48);
    let xr = xBase + cb;
    let wr = wBase + cb;
    for (let ky = ky0; ky < ky1; ky++) {
      let xp = xr;
      let wp = wr;
      for (let kx = kx0; kx < kx1; kx++) {
        a0 = madd(v128.load(xp), v128.load(wp), a0);
        a1 = madd(v128.load(xp, 16), v128.load(wp, 16), a1);
        a2 = madd(v128.load(xp, 32), v128.load(wp, 32), a2);
        a3 = madd(v128.load(xp, 48), v128.load(wp, 48), a3);
        xp += pixBytes;
        wp += pixBytes;
      }
      xr += rowBytes;
      wr += wRowBytes;
    }
    const al = alpha + cb;
    a0 = activate(a0, act, alpha != 0 ? v128.load(al) : f32x4.splat(0));
    a1 = activate(a1, act, alpha != 0 ? v128.load(al, 16) : f32x4.splat(0));
    a2 = activate(a2, act, alpha != 0 ? v128.load(al, 32) : f32x4.splat(0));
    a3 = activate(a3, act, alpha != 0 ? v128.load(al, 48) : f32x4.splat(0));
    if (rp != 0) {
      a0 = f32x4.add(a0, v128.load(rp + cb));
      a1 = f32x4.add(a1, v128.load(rp + cb, 16));
      a2 = f32x4.add(a2, v128.load(rp + cb, 32));
      a3 = f32x4.add(a3, v128.load(rp + cb, 48));
    }
    v128.store(yp + cb, a0);
    v128.store(yp + cb, a1, 16);
    v128.store(yp + cb, a2, 32);
    v128.store(yp + cb, a3, 48);
  }
  for (; c < c4; c += 4) {
    const cb = (<usize>c) << 2;
    let a0 = v128.load(bias + cb);
    let xr = xBase + cb;
    let wr = wBase + cb;
    for (let ky = ky0; ky < ky1; ky++) {
      let xp = xr;
      let wp = wr;
      for (let kx = kx0; kx < kx1; kx++) {
        a0 = madd(v128.load(xp), v128.load(wp), a0);
        xp += pixBytes;
        wp += pixBytes;
      }
      xr += rowBytes;
      wr += wRowBytes;
    }
    a0 = activate(a0, act, alpha != 0 ? v128.load(alpha + cb) : f32x4.splat(0));
    if (rp != 0) a0 = f32x4.add(a0, v128.load(rp + cb));
    v128.store(yp + cb, a0);
  }
  for (; c < C; c++) {
    const cb = (<usize>c) << 2;
    let a: f32 = load<f32>(bias + cb);
    let xr = xBase + cb;
    let wr = wBase + cb;
    for (let ky = ky0; ky < ky1; ky++) {
      let xp = xr;
      let wp = wr;
      for (let kx = kx0; kx < kx1; kx++) {
        a += load<f32>(xp) * load<f32>(wp);
        xp += pixBytes;
        wp += pixBytes;
      }
      xr += rowBytes;
      wr += wRowBytes;
    }
    a = activateScalar(a, act, alpha != 0 ? load<f32>(alpha + cb) : 0);
    if (rp != 0) a += load<f32>(rp + cb);
    store<f32>(yp + cb, a);
  }
}

/**
 * Output pixels ox in [oxA, oxB) of row oy of a 3x3 depthwise convolution whose windows lie wholly
 * inside the image, channels [0, C & ~3). Four channels at a time with the nine filter taps held in
 * registers while the row streams past: no window bounds, no reloaded weights. The layers of
 * BlazeFace and FaceMesh (few channels, large images) spend most of their depthwise time here.
 */
// @ts-ignore: decorator
@inline function depthwise3x3Row(
  out: usize, x: usize, w: usize, bias: usize, alpha: usize, res: usize,
  W: i32, C: i32, sh: i32, sw: i32, padT: i32, padL: i32, OW: i32, act: i32, oy: i32, oxA: i32, oxB: i32,
): void {
  const pixBytes = (<usize>C) << 2;
  const rowBytes = (<usize>W) * pixBytes;
  const stepBytes = (<usize>sw) * pixBytes;
  const c4 = C & ~3;
  const xRow = x + <usize>(oy * sh - padT) * rowBytes + <usize>(oxA * sw - padL) * pixBytes;
  const yRow = out + (<usize>(oy * OW + oxA)) * pixBytes;
  const rRow = res != 0 ? res + (<usize>(oy * OW + oxA)) * pixBytes : 0;
  const p2 = pixBytes << 1;
  for (let c = 0; c < c4; c += 4) {
    const cb = (<usize>c) << 2;
    const wc = w + cb;
    const w00 = v128.load(wc);
    const w01 = v128.load(wc + pixBytes);
    const w02 = v128.load(wc + p2);
    const w10 = v128.load(wc + 3 * pixBytes);
    const w11 = v128.load(wc + 4 * pixBytes);
    const w12 = v128.load(wc + 5 * pixBytes);
    const w20 = v128.load(wc + 6 * pixBytes);
    const w21 = v128.load(wc + 7 * pixBytes);
    const w22 = v128.load(wc + 8 * pixBytes);
    const b = v128.load(bias + cb);
    const al = alpha != 0 ? v128.load(alpha + cb) : f32x4.splat(0);
    let xp = xRow + cb;
    let yp = yRow + cb;
    let rp = rRow != 0 ? rRow + cb : 0;
    for (let ox = oxA; ox < oxB; ox++) {
      const x1 = xp + rowBytes;
      const x2 = x1 + rowBytes;
      let a = madd(v128.load(xp), w00, b);
      a = madd(v128.load(xp + pixBytes), w01, a);
      a = madd(v128.load(xp + p2), w02, a);
      a = madd(v128.load(x1), w10, a);
      a = madd(v128.load(x1 + pixBytes), w11, a);
      a = madd(v128.load(x1 + p2), w12, a);
      a = madd(v128.load(x2), w20, a);
      a = madd(v128.load(x2 + pixBytes), w21, a);
      a = madd(v128.load(x2 + p2), w22, a);
      a = activate(a, act, al);
      if (rp != 0) {
        a = f32x4.add(a, v128.load(rp));
        rp += pixBytes;
      }
      v128.store(yp, a);
      xp += stepBytes;
      yp += pixBytes;
    }
  }
}

/**
 * Depthwise convolution (multiplier 1) of x [H, W, C] with filter [kh, kw, C]:
 * out [OH, OW, C] = act(conv + bias) (+ res). Taps outside the image are skipped (zero padding).
 * 3x3 windows wholly inside the image take the register-held-filter row kernel above; the border
 * pixels (and other filter sizes) go pixel by pixel.
 */
export function depthwise(
  out: usize, x: usize, w: usize, bias: usize, alpha: usize, res: usize,
  H: i32, W: i32, C: i32, kh: i32, kw: i32, sh: i32, sw: i32, padT: i32, padL: i32,
  OH: i32, OW: i32, act: i32,
): void {
  // Output rows and columns whose windows lie inside the image: oy * sh - padT >= 0 and
  // oy * sh - padT + kh <= H (likewise for x). Empty when the filter is not 3x3 or C < 4.
  let oyA = OH, oyB = OH, oxA = OW, oxB = OW;
  if (kh == 3 && kw == 3 && C >= 4 && H >= 3 && W >= 3) {
    oyA = min((padT + sh - 1) / sh, OH);
    oyB = max(oyA, min((H - 3 + padT) / sh + 1, OH));
    oxA = min((padL + sw - 1) / sw, OW);
    oxB = max(oxA, min((W - 3 + padL) / sw + 1, OW));
  }
  const cTail = C & ~3;
  for (let oy = 0; oy < OH; oy++) {
    if (oy >= oyA && oy < oyB && oxB > oxA) {
      for (let ox = 0; ox < oxA; ox++) depthwisePixel(out, x, w, bias, alpha, res, H, W, C, kh, kw, sh, sw, padT, padL, OW, act, oy, ox, 0);
      depthwise3x3Row(out, x, w, bias, alpha, res, W, C, sh, sw, padT, padL, OW, act, oy, oxA, oxB);
      if (cTail < C) {
        for (let ox = oxA; ox < oxB; ox++) depthwisePixel(out, x, w, bias, alpha, res, H, W, C, kh, kw, sh, sw, padT, padL, OW, act, oy, ox, cTail);
      }
      for (let ox = oxB; ox < OW; ox++) depthwisePixel(out, x, w, bias, alpha, res, H, W, C, kh, kw, sh, sw, padT, padL, OW, act, oy, ox, 0);
    } else {
      for (let ox = 0; ox < OW; ox++) depthwisePixel(out, x, w, bias, alpha, res, H, W, C, kh, kw, sh, sw, padT, padL, OW, act, oy, ox, 0);
    }
  }
}
