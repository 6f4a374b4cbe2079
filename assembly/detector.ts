// Kernels of the TF.js detector and landmark models (BlazeFace, FaceMesh): max pooling, zero
// padding of the channel axis, the logistic function, and strided block copies (concat).

/**
 * Max pooling of one sample x [H, W, C] over kh x kw windows -> out [OH, OW, C]. Window positions
 * outside the input never win (TensorFlow's SAME pooling); a window wholly outside gives -Infinity,
 * as the reference does. Channels go 4 at a time, then one by one.
 */
export function maxPool2d(
  out: usize, x: usize, H: i32, W: i32, C: i32, kh: i32, kw: i32, sh: i32, sw: i32,
  padT: i32, padL: i32, OH: i32, OW: i32,
): void {
  const pixBytes = (<usize>C) << 2;
  const rowBytes = (<usize>W) * pixBytes;
  const c4 = C & ~3;
  let yp = out;
  for (let oy = 0; oy < OH; oy++) {
    const iy0 = oy * sh - padT;
    const ky0 = iy0 < 0 ? -iy0 : 0;
    const ky1 = min(kh, H - iy0);
    for (let ox = 0; ox < OW; ox++) {
      const ix0 = ox * sw - padL;
      const kx0 = ix0 < 0 ? -ix0 : 0;
      const kx1 = min(kw, W - ix0);
      const xBase = x + <usize>(iy0 + ky0) * rowBytes + <usize>(ix0 + kx0) * pixBytes;
      let c = 0;
      for (; c < c4; c += 4) {
        const cb = (<usize>c) << 2;
        let m = f32x4.splat(-Infinity);
        let xr = xBase + cb;
        for (let ky = ky0; ky < ky1; ky++) {
          let xp = xr;
          for (let kx = kx0; kx < kx1; kx++) {
            // pmax(m, v) is `m < v ? v : m`: the reference's `if (v > m) m = v`, NaN included.
            m = f32x4.pmax(m, v128.load(xp));
            xp += pixBytes;
          }
          xr += rowBytes;
        }
        v128.store(yp + cb, m);
      }
      for (; c < C; c++) {
        const cb = (<usize>c) << 2;
        let m: f32 = -Infinity;
        let xr = xBase + cb;
        for (let ky = ky0; ky < ky1; ky++) {
          let xp = xr;
          for (let kx = kx0; kx < kx1; kx++) {
            const v = load<f32>(xp);
            if (v > m) m = v;
            xp += pixBytes;
          }
          xr += rowBytes;
        }
        store<f32>(yp + cb, m);
      }
      yp += pixBytes;
    }
  }
}

/** out [P, before + C + after] = x [P, C] with zero channels before and after. */
export function padChannels(out: usize, x: usize, P: i32, C: i32, before: i32, after: i32): void {
  const inBytes = (<usize>C) << 2;
  const beforeBytes = (<usize>before) << 2;
  const afterBytes = (<usize>after) << 2;
  let src = x;
  let dst = out;
  for (let p = 0; p < P; p++) {
    if (before > 0) memory.fill(dst, 0, beforeBytes);
    dst += beforeBytes;
    let i: usize = 0;
    for (; i + 16 <= inBytes; i += 16) v128.store(dst + i, v128.load(src + i));
    for (; i < inBytes; i += 4) store<f32>(dst + i, load<f32>(src + i));
    dst += inBytes;
    if (after > 0) memory.fill(dst, 0, afterBytes);
    dst += afterBytes;
    src += inBytes;
  }
}

/** out = 1 / (1 + exp(-x)) over count floats (scalar: the models apply it to a handful of values). */
export function sigmoid(out: usize, x: usize, count: i32): void {
  for (let i = 0; i < count; i++) {
    const o = (<usize>i) << 2;
    store<f32>(out + o, <f32>1 / (<f32>1 + Mathf.exp(-load<f32>(x + o))));
  }
}

/** Copies `rows` blocks of `count` floats from x (xStride floats apart) to out (outStride apart). */
export function copyBlocks(out: usize, outStride: i32, x: usize, xStride: i32, rows: i32, count: i32): void {
  const bytes = (<usize>count) << 2;
  for (let r = 0; r < rows; r++) {
    memory.copy(out + (<usize>r) * ((<usize>outStride) << 2), x + (<usize>r) * ((<usize>xStride) << 2), bytes);
  }
}
