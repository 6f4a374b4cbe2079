// Register-tiled matrix multiply: the 1x1 convolution, the fully connected layer, and the dense
// kxk convolution after im2col. out[p, n] = act(sum_k x[p, k] * W[n, k] + bias[n]) (+ res[p, n]).
//
// Weights are pre-packed by the planner into column blocks of 8 output channels, k-major:
// packed[(nb * K + k) * 8 + j] = W[nb * 8 + j, k] (zero past N), so the inner loop reads 8
// consecutive weights per k. bias and alpha are padded to a multiple of 8 the same way.
// A tile is 4 pixels x 8 channels: 8 f32x4 accumulators, 2 weight vectors and 4 broadcasts
// per k, which fits the 16 SIMD registers of x86-64 and arm64.
import { ACT_AFTER_RESIDUAL, activate, loadPartial, madd, storePartial } from './common';

// @ts-ignore: decorator
@inline function finishRow(
  outRow: usize, resRow: usize, cnt: i32, a0: v128, a1: v128, act: i32, al0: v128, al1: v128,
): void {
  // act & ACT_AFTER_RESIDUAL: act(acc + res); otherwise act(acc) + res.
  const resFirst = (act & ACT_AFTER_RESIDUAL) != 0;
  const a = act & 3;
  let v0 = a0;
  let v1 = a1;
  if (!resFirst) {
    v0 = activate(v0, a, al0);
    v1 = activate(v1, a, al1);
  }
  if (cnt >= 8) {
    if (resRow != 0) {
      v0 = f32x4.add(v0, v128.load(resRow));
      v1 = f32x4.add(v1, v128.load(resRow, 16));
    }
    if (resFirst) {
      v0 = activate(v0, a, al0);
      v1 = activate(v1, a, al1);
    }
    v128.store(outRow, v0);
    v128.store(outRow, v1, 16);
  } else {
    const c1 = cnt - 4;
    if (resRow != 0) {
      v0 = f32x4.add(v0, loadPartial(resRow, cnt));
      if (c1 > 0) v1 = f32x4.add(v1, loadPartial(resRow + 16, c1));
    }
    if (resFirst) {
      v0 = activate(v0, a, al0);
      v1 = activate(v1, a, al1);
    }
    storePartial(outRow, v0, cnt);
    if (c1 > 0) storePartial(outRow + 16, v1, c1);
  }
}

/**
 * Copies rows x[0..4) (K floats each, rowX bytes apart) to dst interleaved: dst[k * 4 + p] =
 * x[p][k], so the GEMM inner loop walks one pointer and broadcasts with immediate offsets.
 */
// @ts-ignore: decorator
@inline function packTile(dst: usize, x: usize, rowX: usize, K: i32): void {
  const x1 = x + rowX;
  const x2 = x1 + rowX;
  const x3 = x2 + rowX;
  const k4 = K & ~3;
  let k = 0;
  for (; k < k4; k += 4) {
    const o = (<usize>k) << 2;
    const r0 = v128.load(x + o);
    const r1 = v128.load(x1 + o);
    const r2 = v128.load(x2 + o);
    const r3 = v128.load(x3 + o);
    // 4x4 transpose: lanes (k, k+1, k+2, k+3) of four rows -> four (p0..p3) vectors.
    const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
    const t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
    const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
    const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
    const d = dst + (o << 2);
    v128.store(d, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
    v128.store(d, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7), 16);
    v128.store(d, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5), 32);
    v128.store(d, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7), 48);
  }
  for (; k < K; k++) {
    const o = (<usize>k) << 2;
    const d = dst + (o << 2);
    store<f32>(d, load<f32>(x + o));
    store<f32>(d, load<f32>(x1 + o), 4);
    store<f32>(d, load<f32>(x2 + o), 8);
    store<f32>(d, load<f32>(x3 + o), 12);
  }
}

/**
 * out [P, N] = act(x [P, K] * packedW + bias) (+ res [P, N]); res = 0 for none, alpha = 0 unless
 * act is prelu. With ACT_AFTER_RESIDUAL in act: act(x * packedW + bias + res). x rows are K floats apart, out and res rows N floats apart. scratch holds 4 * K
 * floats (one packed tile of 4 input rows).
 */
export function gemm(
  out: usize, x: usize, w: usize, bias: usize, alpha: usize, res: usize,
  P: i32, K: i32, N: i32, act: i32, scratch: usize,
): void {
  const rowX = (<usize>K) << 2;
  const rowY = (<usize>N) << 2;
  const nBlocks = (N + 7) >> 3;
  const wBlock = (<usize>K) << 5;
  const tileEnd = scratch + ((<usize>K) << 4);
  const kEven = K & ~1;
  let p = 0;
  // Tiles of 4 pixels x 8 channels: 8 accumulators + 2 weight vectors + 4 broadcasts = 14 SIMD
  // registers. Wider tiles (6 x 8) looked better on paper but V8 hoists all broadcasts to the top
  // of the loop body, runs out of registers and spills accumulators every iteration (3x slower).
  for (; p + 4 <= P; p += 4) {
    packTile(scratch, x + <usize>p * rowX, rowX, K);
    const y0 = out + <usize>p * rowY;
    const r0 = res != 0 ? res + <usize>p * rowY : 0;
    for (let nb = 0; nb < nBlocks; nb++) {
      let wp = w + <usize>nb * wBlock;
      const b0 = v128.load(bias + (<usize>nb << 5));
      const b1 = v128.load(bias + (<usize>nb << 5), 16);
      let a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1;
      for (let xp = scratch; xp < tileEnd; xp += 16) {
        const w0 = v128.load(wp);
        const w1 = v128.load(wp, 16);
        let s = v128.load32_splat(xp);
        a00 = madd(s, w0, a00);
        a01 = madd(s, w1, a01);
        s = v128.load32_splat(xp, 4);
        a10 = madd(s, w0, a10);
        a11 = madd(s, w1, a11);
        s = v128.load32_splat(xp, 8);
        a20 = madd(s, w0, a20);
        a21 = madd(s, w1, a21);
        s = v128.load32_splat(xp, 12);
        a30 = madd(s, w0, a30);
        a31 = madd(s, w1, a31);
        wp += 32;
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
        a0 = madd(s, v128.load(wp), a0);
        a1 = madd(s, v128.load(wp, 16), a1);
        s = v128.load32_splat(xp + ko, 4);
        c0 = madd(s, v128.load(wp, 32), c0);
        c1 = madd(s, v128.load(wp, 48), c1);
        wp += 64;
      }
      if (k < K) {
        const s = v128.load32_splat(xp + ((<usize>k) << 2));
        a0 = madd(s, v128.load(wp), a0);
        a1 = madd(s, v128.load(wp, 16), a1);
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
