// Register-tiled matrix multiply: the 1x1 convolution, the fully connected layer, and the dense
// kxk convolution after im2col. out[p, n] = act(sum_k x[p, k] * W[n, k] + bias[n]) (+ res[p, n]).
//
// Weights are pre-packed by the planner into column blocks of 8 output channels, k-major:
// packed[(nb * K + k) * 8 + j] = W[nb * 8 + j, k] (zero past N), so the inner loop reads 8
// consecutive weights per k. bias and alpha are padded to a multiple of 8 the same way.
// A tile is 4 pixels x 8 channels: 8 f32x4 accumulators, 2 weight vectors and 4 broadcasts
// per k, which fits the 16 SIMD registers of x86-64 and arm64.
import { activate, loadPartial, storePartial } from './common';

// @ts-ignore: decorator
@inline function finishRow(
  outRow: usize, resRow: usize, cnt: i32, a0: v128, a1: v128, act: i32, al0: v128, al1: v128,
): void {
  let v0 = activate(a0, act, al0);
  let v1 = activate(a1, act, al1);
  if (cnt >= 8) {
    if (resRow != 0) {
      v0 = f32x4.add(v0, v128.load(resRow));
      v1 = f32x4.add(v1, v128.load(resRow, 16));
    }
    v128.store(outRow, v0);
    v128.store(outRow, v1, 16);
  } else {
    const c1 = cnt - 4;
    if (resRow != 0) {
      v0 = f32x4.add(v0, loadPartial(resRow, cnt));
      if (c1 > 0) v1 = f32x4.add(v1, loadPartial(resRow + 16, c1));
    }
    storePartial(outRow, v0, cnt);
    if (c1 > 0) storePartial(outRow + 16, v1, c1);
  }
}

/**
 * out [P, N] = act(x [P, K] * packedW + bias) (+ res [P, N]); res = 0 for none, alpha = 0 unless
 * act is prelu. x rows are K floats apart, out and res rows N floats apart.
 */
export function gemm(
  out: usize, x: usize, w: usize, bias: usize, alpha: usize, res: usize,
  P: i32, K: i32, N: i32, act: i32,
): void {
  const rowX = (<usize>K) << 2;
  const rowY = (<usize>N) << 2;
  const nBlocks = (N + 7) >> 3;
  const wBlock = (<usize>K) << 5;
  const kEven = K & ~1;
  let p = 0;
  for (; p + 4 <= P; p += 4) {
    const x0 = x + <usize>p * rowX;
    const x1 = x0 + rowX;
    const x2 = x1 + rowX;
    const x3 = x2 + rowX;
    const y0 = out + <usize>p * rowY;
    const r0 = res != 0 ? res + <usize>p * rowY : 0;
    for (let nb = 0; nb < nBlocks; nb++) {
      let wp = w + <usize>nb * wBlock;
      const b0 = v128.load(bias + (<usize>nb << 5));
      const b1 = v128.load(bias + (<usize>nb << 5), 16);
      let a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1;
      let k = 0;
      // Two k steps per iteration halve the loop overhead.
      for (; k < kEven; k += 2) {
        const ko = (<usize>k) << 2;
        let w0 = v128.load(wp);
        let w1 = v128.load(wp, 16);
        let s = v128.load32_splat(x0 + ko);
        a00 = f32x4.add(a00, f32x4.mul(s, w0));
        a01 = f32x4.add(a01, f32x4.mul(s, w1));
        s = v128.load32_splat(x1 + ko);
        a10 = f32x4.add(a10, f32x4.mul(s, w0));
        a11 = f32x4.add(a11, f32x4.mul(s, w1));
        s = v128.load32_splat(x2 + ko);
        a20 = f32x4.add(a20, f32x4.mul(s, w0));
        a21 = f32x4.add(a21, f32x4.mul(s, w1));
        s = v128.load32_splat(x3 + ko);
        a30 = f32x4.add(a30, f32x4.mul(s, w0));
        a31 = f32x4.add(a31, f32x4.mul(s, w1));
        w0 = v128.load(wp, 32);
        w1 = v128.load(wp, 48);
        s = v128.load32_splat(x0 + ko, 4);
        a00 = f32x4.add(a00, f32x4.mul(s, w0));
        a01 = f32x4.add(a01, f32x4.mul(s, w1));
        s = v128.load32_splat(x1 + ko, 4);
        a10 = f32x4.add(a10, f32x4.mul(s, w0));
        a11 = f32x4.add(a11, f32x4.mul(s, w1));
        s = v128.load32_splat(x2 + ko, 4);
        a20 = f32x4.add(a20, f32x4.mul(s, w0));
        a21 = f32x4.add(a21, f32x4.mul(s, w1));
        s = v128.load32_splat(x3 + ko, 4);
        a30 = f32x4.add(a30, f32x4.mul(s, w0));
        a31 = f32x4.add(a31, f32x4.mul(s, w1));
        wp += 64;
      }
      if (k < K) {
        const ko = (<usize>k) << 2;
        const w0 = v128.load(wp);
        const w1 = v128.load(wp, 16);
        let s = v128.load32_splat(x0 + ko);
        a00 = f32x4.add(a00, f32x4.mul(s, w0));
        a01 = f32x4.add(a01, f32x4.mul(s, w1));
        s = v128.load32_splat(x1 + ko);
        a10 = f32x4.add(a10, f32x4.mul(s, w0));
        a11 = f32x4.add(a11, f32x4.mul(s, w1));
        s = v128.load32_splat(x2 + ko);
        a20 = f32x4.add(a20, f32x4.mul(s, w0));
        a21 = f32x4.add(a21, f32x4.mul(s, w1));
        s = v128.load32_splat(x3 + ko);
        a30 = f32x4.add(a30, f32x4.mul(s, w0));
        a31 = f32x4.add(a31, f32x4.mul(s, w1));
      }
      const n0 = nb << 3;
      const cnt = N - n0;
      const al0 = alpha != 0 ? v128.load(alpha + (<usize>n0 << 2)) : f32x4.splat(0);
      const al1 = alpha != 0 ? v128.load(alpha + (<usize>n0 << 2), 16) : f32x4.splat(0);
      const yo = y0 + ((<usize>n0) << 2);
      const ro = r0 != 0 ? r0 + ((<usize>n0) << 2) : 0;
      finishRow(yo, ro, cnt, a00, a01, act, al0, al1);
      finishRow(yo + rowY, ro != 0 ? ro + rowY : 0, cnt, a10, a11, act, al0, al1);
      finishRow(yo + 2 * rowY, ro != 0 ? ro + 2 * rowY : 0, cnt, a20, a21, act, al0, al1);
      finishRow(yo + 3 * rowY, ro != 0 ? ro + 3 * rowY : 0, cnt, a30, a31, act, al0, al1);
    }
  }
  // Remaining pixels one at a time (also the whole of a fully connected layer on one sample).
  for (; p < P; p++) {
    const xp = x + <usize>p * rowX;
    const yp = out + <usize>p * rowY;
    const rp = res != 0 ? res + <usize>p * rowY : 0;
    for (let nb = 0; nb < nBlocks; nb++) {
      let wp = w + <usize>nb * wBlock;
      let a0 = v128.load(bias + (<usize>nb << 5));
      let a1 = v128.load(bias + (<usize>nb << 5), 16);
      let c0 = f32x4.splat(0);
      let c1 = f32x4.splat(0);
      let k = 0;
      // Two independent accumulator pairs hide the add latency.
      for (; k < kEven; k += 2) {
        const ko = (<usize>k) << 2;
        let s = v128.load32_splat(xp + ko);
        a0 = f32x4.add(a0, f32x4.mul(s, v128.load(wp)));
        a1 = f32x4.add(a1, f32x4.mul(s, v128.load(wp, 16)));
        s = v128.load32_splat(xp + ko, 4);
        c0 = f32x4.add(c0, f32x4.mul(s, v128.load(wp, 32)));
        c1 = f32x4.add(c1, f32x4.mul(s, v128.load(wp, 48)));
        wp += 64;
      }
      if (k < K) {
        const s = v128.load32_splat(xp + ((<usize>k) << 2));
        a0 = f32x4.add(a0, f32x4.mul(s, v128.load(wp)));
        a1 = f32x4.add(a1, f32x4.mul(s, v128.load(wp, 16)));
      }
      a0 = f32x4.add(a0, c0);
      a1 = f32x4.add(a1, c1);
      const n0 = nb << 3;
      const al0 = alpha != 0 ? v128.load(alpha + (<usize>n0 << 2)) : f32x4.splat(0);
      const al1 = alpha != 0 ? v128.load(alpha + (<usize>n0 << 2), 16) : f32x4.splat(0);
      finishRow(yp + ((<usize>n0) << 2), rp != 0 ? rp + ((<usize>n0) << 2) : 0, N - n0, a0, a1, act, al0, al1);
    }
  }
}
