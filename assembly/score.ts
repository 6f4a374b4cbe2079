// Exact top-k by inner product: every query against a chunk of gallery rows, merged into a running
// per-query top-k list that the caller keeps between chunks (so any gallery size can be streamed).
//
// topScores / topIdx are [q, k], each row sorted best first; start them at -Infinity / -1. Ties
// keep the earlier (lower) index, as the rows are visited in order.
import { madd } from './common';

/** Inserts (s, idx) into a row of the top-k list if it beats the current k-th entry. */
// @ts-ignore: decorator
@inline function offer(scores: usize, idx: usize, k: i32, s: f32, id: i32): void {
  const lastOff = (<usize>(k - 1)) << 2;
  if (!(s > load<f32>(scores + lastOff))) return;
  let j = k - 1;
  // Shift worse entries down one place until s finds its slot.
  while (j > 0) {
    const prev = load<f32>(scores + ((<usize>(j - 1)) << 2));
    if (prev >= s) break;
    store<f32>(scores + ((<usize>j) << 2), prev);
    store<i32>(idx + ((<usize>j) << 2), load<i32>(idx + ((<usize>(j - 1)) << 2)));
    j--;
  }
  store<f32>(scores + ((<usize>j) << 2), s);
  store<i32>(idx + ((<usize>j) << 2), id);
}

/** Sums of the lanes of a, b, c, d as one vector [sum a, sum b, sum c, sum d]. */
// @ts-ignore: decorator
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

/**
 * Lane-wise partial dot product of a query and one gallery row over floats [0, d4): sixteen floats
 * per step into four independent accumulators, then four at a time (d16 = d4 rounded down to 16).
 */
// @ts-ignore: decorator
@inline function dotRow16(qp: usize, g: usize, d16: i32, d4: i32): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const end16 = (<usize>d16) << 2;
  let o: usize = 0;
  for (; o < end16; o += 64) {
    a0 = madd(v128.load(qp + o), v128.load(g + o), a0);
    a1 = madd(v128.load(qp + o, 16), v128.load(g + o, 16), a1);
    a2 = madd(v128.load(qp + o, 32), v128.load(g + o, 32), a2);
    a3 = madd(v128.load(qp + o, 48), v128.load(g + o, 48), a3);
  }
  const end4 = (<usize>d4) << 2;
  for (; o < end4; o += 16) a0 = madd(v128.load(qp + o), v128.load(g + o), a0);
  return f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
}

// @ts-ignore: decorator
@inline function dotScalar(a: usize, b: usize, from: i32, dim: i32): f32 {
  let s: f32 = 0;
  for (let i = from; i < dim; i++) s += load<f32>(a + ((<usize>i) << 2)) * load<f32>(b + ((<usize>i) << 2));
  return s;
}

/**
 * Adds the scalar tails (dim % 4) to the four dot products of one query with gallery rows
 * r..r+3 (starting at g0), offers them to the query's top-k, and returns the updated first bad
 * row (chunk-relative; -1 while every score is finite).
 */
// @ts-ignore: decorator
@inline function finishQuery(
  sums: v128, qp: usize, g0: usize, rowBytes: usize, d4: i32, dim: i32,
  ts: usize, ti: usize, k: i32, base: i32, r: i32, bad: i32,
): i32 {
  let s0 = f32x4.extract_lane(sums, 0);
  let s1 = f32x4.extract_lane(sums, 1);
  let s2 = f32x4.extract_lane(sums, 2);
  let s3 = f32x4.extract_lane(sums, 3);
  if (d4 < dim) {
    s0 += dotScalar(qp, g0, d4, dim);
    s1 += dotScalar(qp, g0 + rowBytes, d4, dim);
    s2 += dotScalar(qp, g0 + 2 * rowBytes, d4, dim);
    s3 += dotScalar(qp, g0 + 3 * rowBytes, d4, dim);
  }
  // x - x is 0 for finite x, NaN for NaN and infinities.
  if (bad < 0 && !(s0 - s0 == 0 && s1 - s1 == 0 && s2 - s2 == 0 && s3 - s3 == 0)) {
    bad = !(s0 - s0 == 0) ? r : !(s1 - s1 == 0) ? r + 1 : !(s2 - s2 == 0) ? r + 2 : r + 3;
  }
  offer(ts, ti, k, s0, base + r);
  offer(ts, ti, k, s1, base + r + 1);
  offer(ts, ti, k, s2, base + r + 2);
  offer(ts, ti, k, s3, base + r + 3);
  return bad;
}

/**
 * Scores queries [q, dim] against gallery rows [n, dim] (this chunk's rows are numbered from
 * base) and merges them into topScores/topIdx [q, k]. Returns the chunk-relative number of the
 * first row whose score is not finite (NaN or infinite values in the gallery), or -1.
 */
export function scoreTopK(
  queries: usize, q: i32, gallery: usize, n: i32, dim: i32, k: i32, base: i32,
  topScores: usize, topIdx: usize,
): i32 {
  const rowBytes = (<usize>dim) << 2;
  const d4 = dim & ~3;
  const kBytes = (<usize>k) << 2;
  let bad = -1;
  let r = 0;
  // One query (the common case: a single probe face): rows one after another, in memory order,
  // so the hardware prefetcher sees one ascending stream (interleaving the loads of several rows
  // makes short streams inside each 4 KiB page, which it does not follow, and the scan then
  // waits on memory), with four independent accumulators per row to keep the adds off each
  // other's latency; four rows' sums are reduced together.
  if (q == 1) {
    const d16 = dim & ~15;
    for (; r + 4 <= n; r += 4) {
      const g0 = gallery + (<usize>r) * rowBytes;
      const s0 = dotRow16(queries, g0, d16, d4);
      const s1 = dotRow16(queries, g0 + rowBytes, d16, d4);
      const s2 = dotRow16(queries, g0 + 2 * rowBytes, d16, d4);
      const s3 = dotRow16(queries, g0 + 3 * rowBytes, d16, d4);
      bad = finishQuery(hsum4(s0, s1, s2, s3), queries, g0, rowBytes, d4, dim, topScores, topIdx, k, base, r, bad);
    }
  }
  // Four gallery rows x two queries at a time: 8 accumulators, and each loaded gallery vector
  // serves two queries (the gallery is what streams from memory).
  for (; r + 4 <= n; r += 4) {
    const g0 = gallery + (<usize>r) * rowBytes;
    const g1 = g0 + rowBytes;
    const g2 = g1 + rowBytes;
    const g3 = g2 + rowBytes;
    let qi = 0;
    for (; qi + 2 <= q; qi += 2) {
      const qa = queries + (<usize>qi) * rowBytes;
      const qb = qa + rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let i = 0; i < d4; i += 4) {
        const o = (<usize>i) << 2;
        const va = v128.load(qa + o);
        const vb = v128.load(qb + o);
        let g = v128.load(g0 + o);
        a0 = madd(va, g, a0);
        b0 = madd(vb, g, b0);
        g = v128.load(g1 + o);
        a1 = madd(va, g, a1);
        b1 = madd(vb, g, b1);
        g = v128.load(g2 + o);
        a2 = madd(va, g, a2);
        b2 = madd(vb, g, b2);
        g = v128.load(g3 + o);
        a3 = madd(va, g, a3);
        b3 = madd(vb, g, b3);
      }
      bad = finishQuery(hsum4(a0, a1, a2, a3), qa, g0, rowBytes, d4, dim, topScores + (<usize>qi) * kBytes, topIdx + (<usize>qi) * kBytes, k, base, r, bad);
      bad = finishQuery(hsum4(b0, b1, b2, b3), qb, g0, rowBytes, d4, dim, topScores + (<usize>(qi + 1)) * kBytes, topIdx + (<usize>(qi + 1)) * kBytes, k, base, r, bad);
    }
    if (qi < q) {
      const qp = queries + (<usize>qi) * rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let i = 0; i < d4; i += 4) {
        const o = (<usize>i) << 2;
        const v = v128.load(qp + o);
        a0 = madd(v, v128.load(g0 + o), a0);
        a1 = madd(v, v128.load(g1 + o), a1);
        a2 = madd(v, v128.load(g2 + o), a2);
        a3 = madd(v, v128.load(g3 + o), a3);
      }
      bad = finishQuery(hsum4(a0, a1, a2, a3), qp, g0, rowBytes, d4, dim, topScores + (<usize>qi) * kBytes, topIdx + (<usize>qi) * kBytes, k, base, r, bad);
    }
  }
  for (; r < n; r++) {
    const g = gallery + (<usize>r) * rowBytes;
    for (let qi = 0; qi < q; qi++) {
      const qp = queries + (<usize>qi) * rowBytes;
      let a = f32x4.splat(0);
      for (let i = 0; i < d4; i += 4) {
        const o = (<usize>i) << 2;
        a = madd(v128.load(qp + o), v128.load(g + o), a);
      }
      let s: f32 = f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1) + f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3);
      if (d4 < dim) s += dotScalar(qp, g, d4, dim);
      if (bad < 0 && !(s - s == 0)) bad = r;
      offer(topScores + (<usize>qi) * kBytes, topIdx + (<usize>qi) * kBytes, k, s, base + r);
    }
  }
  return bad;
}

/** Four int8 lanes of a v128 (the low four bytes) as floats times scale: the decoded row values. */
// @ts-ignore: decorator
@inline function decodeI8x4(b: v128, scale: v128): v128 {
  return f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(b))), scale);
}

/**
 * Four IEEE halves (one in the low 16 bits of each i32 lane) as floats, exactly: the exponent and
 * mantissa moved into float position and scaled by 2^112 (which also makes subnormal halves
 * normal floats), then the sign. Infinite and NaN halves would come out finite: the index never
 * stores them (its vectors are finite unit vectors).
 */
// @ts-ignore: decorator
@inline function decodeF16x4(h: v128): v128 {
  const mag = f32x4.mul(i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13), f32x4.splat(5.192296858534828e33));
  return v128.or(mag, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

// @ts-ignore: decorator
@inline function halfToFloat(h: u32): f32 {
  const mag = reinterpret<f32>((h & 0x7fff) << 13) * <f32>5.192296858534828e33;
  return reinterpret<f32>(reinterpret<u32>(mag) | ((h & 0x8000) << 16));
}

/** Element i of a stored row (T: i8 with a scale per row, or u16 for IEEE halves), as a float. */
// @ts-ignore: decorator
@inline function decodeOne<T>(g: usize, i: i32, scale: f32): f32 {
  if (sizeof<T>() == 1) return <f32>load<i8>(g + <usize>i) * scale;
  return halfToFloat(<u32>load<u16>(g + ((<usize>i) << 1)));
}

/** Elements [i, i + 4) of a stored row, as floats. */
// @ts-ignore: decorator
@inline function decode4<T>(g: usize, i: i32, scale: v128): v128 {
  if (sizeof<T>() == 1) return decodeI8x4(v128.load32_zero(g + <usize>i), scale);
  return decodeF16x4(i32x4.extend_low_i16x8_u(v128.load64_zero(g + ((<usize>i) << 1))));
}

/**
 * dotRow16 for a stored row of int8 values with a scale, or of IEEE halves: each value is decoded
 * to the float a float32 array of the decoded row would hold (f32(value) * scale rounded once, or
 * the half's exact value) and enters the same accumulators in the same order, so the sums are the
 * bits dotRow16 gives on the decoded row.
 */
// @ts-ignore: decorator
@inline function dotRowQ<T>(qp: usize, g: usize, scale: v128, d16: i32, d4: i32): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let i = 0;
  for (; i < d16; i += 16) {
    let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
    if (sizeof<T>() == 1) {
      const b = v128.load(g + <usize>i);
      const lo = i16x8.extend_low_i8x16_s(b);
      const hi = i16x8.extend_high_i8x16_s(b);
      e0 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), scale);
      e1 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), scale);
      e2 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), scale);
      e3 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), scale);
    } else {
      const b0 = v128.load(g + ((<usize>i) << 1));
      const b1 = v128.load(g + ((<usize>i) << 1), 16);
      e0 = decodeF16x4(i32x4.extend_low_i16x8_u(b0));
      e1 = decodeF16x4(i32x4.extend_high_i16x8_u(b0));
      e2 = decodeF16x4(i32x4.extend_low_i16x8_u(b1));
      e3 = decodeF16x4(i32x4.extend_high_i16x8_u(b1));
    }
    const o = qp + ((<usize>i) << 2);
    a0 = madd(v128.load(o), e0, a0);
    a1 = madd(v128.load(o, 16), e1, a1);
    a2 = madd(v128.load(o, 32), e2, a2);
    a3 = madd(v128.load(o, 48), e3, a3);
  }
  for (; i < d4; i += 4) a0 = madd(v128.load(qp + ((<usize>i) << 2)), decode4<T>(g, i, scale), a0);
  return f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
}

// @ts-ignore: decorator
@inline function dotScalarQ<T>(qp: usize, g: usize, scale: f32, from: i32, dim: i32): f32 {
  let s: f32 = 0;
  for (let i = from; i < dim; i++) s += load<f32>(qp + ((<usize>i) << 2)) * decodeOne<T>(g, i, scale);
  return s;
}

/**
 * scoreTopK for one query against n stored rows, scanned in place (T: i8, dim bytes per row, row
 * r's values times the float scales[r]; or u16, IEEE halves, scales unused): the same scores,
 * bits included, and the same top-k as scoreTopK on the rows decoded to float32, reading a
 * quarter (a half) of the bytes.
 */
// @ts-ignore: decorator
@inline function scoreTopKQ<T>(query: usize, gallery: usize, scales: usize, n: i32, dim: i32, k: i32, base: i32, topScores: usize, topIdx: usize): i32 {
  const rowBytes = (<usize>dim) * sizeof<T>();
  const d4 = dim & ~3;
  const d16 = dim & ~15;
  const scaled = sizeof<T>() == 1;
  let bad = -1;
  let r = 0;
  for (; r + 4 <= n; r += 4) {
    const g0 = gallery + (<usize>r) * rowBytes;
    const sc = scales + ((<usize>r) << 2);
    const c0: f32 = scaled ? load<f32>(sc) : 1, c1: f32 = scaled ? load<f32>(sc, 4) : 1;
    const c2: f32 = scaled ? load<f32>(sc, 8) : 1, c3: f32 = scaled ? load<f32>(sc, 12) : 1;
    const sums = hsum4(
      dotRowQ<T>(query, g0, f32x4.splat(c0), d16, d4),
      dotRowQ<T>(query, g0 + rowBytes, f32x4.splat(c1), d16, d4),
      dotRowQ<T>(query, g0 + 2 * rowBytes, f32x4.splat(c2), d16, d4),
      dotRowQ<T>(query, g0 + 3 * rowBytes, f32x4.splat(c3), d16, d4),
    );
    let s0 = f32x4.extract_lane(sums, 0);
    let s1 = f32x4.extract_lane(sums, 1);
    let s2 = f32x4.extract_lane(sums, 2);
    let s3 = f32x4.extract_lane(sums, 3);
    if (d4 < dim) {
      s0 += dotScalarQ<T>(query, g0, c0, d4, dim);
      s1 += dotScalarQ<T>(query, g0 + rowBytes, c1, d4, dim);
      s2 += dotScalarQ<T>(query, g0 + 2 * rowBytes, c2, d4, dim);
      s3 += dotScalarQ<T>(query, g0 + 3 * rowBytes, c3, d4, dim);
    }
    if (bad < 0 && !(s0 - s0 == 0 && s1 - s1 == 0 && s2 - s2 == 0 && s3 - s3 == 0)) {
      bad = !(s0 - s0 == 0) ? r : !(s1 - s1 == 0) ? r + 1 : !(s2 - s2 == 0) ? r + 2 : r + 3;
    }
    offer(topScores, topIdx, k, s0, base + r);
    offer(topScores, topIdx, k, s1, base + r + 1);
    offer(topScores, topIdx, k, s2, base + r + 2);
    offer(topScores, topIdx, k, s3, base + r + 3);
  }
  // The last rows one at a time, as scoreTopK's tail: one accumulator, lanes summed in order.
  for (; r < n; r++) {
    const g = gallery + (<usize>r) * rowBytes;
    const c: f32 = scaled ? load<f32>(scales + ((<usize>r) << 2)) : 1;
    const scale = f32x4.splat(c);
    let a = f32x4.splat(0);
    for (let i = 0; i < d4; i += 4) a = madd(v128.load(query + ((<usize>i) << 2)), decode4<T>(g, i, scale), a);
    let s: f32 = f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1) + f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3);
    if (d4 < dim) s += dotScalarQ<T>(query, g, c, d4, dim);
    if (bad < 0 && !(s - s == 0)) bad = r;
    offer(topScores, topIdx, k, s, base + r);
  }
  return bad;
}

/** scoreTopKQ over int8 rows with a scale per row (see there). */
export function scoreTopKI8(query: usize, gallery: usize, scales: usize, n: i32, dim: i32, k: i32, base: i32, topScores: usize, topIdx: usize): i32 {
  return scoreTopKQ<i8>(query, gallery, scales, n, dim, k, base, topScores, topIdx);
}

/** scoreTopKQ over rows of IEEE halves (see there; no scales). */
export function scoreTopKF16(query: usize, gallery: usize, n: i32, dim: i32, k: i32, base: i32, topScores: usize, topIdx: usize): i32 {
  return scoreTopKQ<u16>(query, gallery, 0, n, dim, k, base, topScores, topIdx);
}

/**
 * Packs rows [rows, dim] (the queries of a scan with many queries) as GEMM weights (see gemm.ts):
 * dst[(nb * dim + d) * 8 + j] = src[nb * 8 + j, d], zero past the last row. Scoring a chunk of
 * gallery rows is then one register-tiled matrix multiply (rows x queries) followed by
 * topKFromScoresT.
 */
export function packRows(dst: usize, src: usize, rows: i32, dim: i32): void {
  const nBlocks = (rows + 7) >> 3;
  const rowBytes = (<usize>dim) << 2;
  for (let nb = 0; nb < nBlocks; nb++) {
    const blk = dst + (<usize>nb) * rowBytes * 8;
    for (let j = 0; j < 8; j++) {
      const row = (nb << 3) + j;
      let d = blk + ((<usize>j) << 2);
      if (row < rows) {
        const s = src + (<usize>row) * rowBytes;
        for (let i = 0; i < dim; i++) {
          store<f32>(d, load<f32>(s + ((<usize>i) << 2)));
          d += 32;
        }
      } else {
        for (let i = 0; i < dim; i++) {
          store<f32>(d, 0);
          d += 32;
        }
      }
    }
  }
}

/**
 * Merges a score matrix [rows, q] (row r holds every query's score of gallery row base + r: the
 * layout of a GEMM with the gallery rows as its pixels and the packed queries as its weights) into
 * the running top-k lists. thresholds holds q floats of scratch. Four queries are compared at once
 * against their k-th best scores; only rows that beat one (or are not finite) go on to offer().
 * Returns the lowest chunk-relative row with a non-finite score, or -1.
 */
export function topKFromScoresT(scores: usize, rows: i32, q: i32, k: i32, base: i32, topScores: usize, topIdx: usize, thresholds: usize): i32 {
  const kBytes = (<usize>k) << 2;
  const lastOff = (<usize>(k - 1)) << 2;
  const rowBytes = (<usize>q) << 2;
  for (let qi = 0; qi < q; qi++) store<f32>(thresholds + ((<usize>qi) << 2), load<f32>(topScores + (<usize>qi) * kBytes + lastOff));
  const q4 = q & ~3;
  let bad = -1;
  for (let r = 0; r < rows; r++) {
    const row = scores + (<usize>r) * rowBytes;
    let qi = 0;
    for (; qi < q4; qi += 4) {
      const o = (<usize>qi) << 2;
      const v = v128.load(row + o);
      const d = f32x4.sub(v, v);
      // v > threshold, or v not finite (x - x is NaN for NaN and infinities).
      if (!v128.any_true(v128.or(f32x4.gt(v, v128.load(thresholds + o)), f32x4.ne(d, d)))) continue;
      for (let j = qi; j < qi + 4; j++) bad = offerT(row, j, r, bad, k, base, topScores, topIdx, kBytes, lastOff, thresholds);
    }
    for (; qi < q; qi++) bad = offerT(row, qi, r, bad, k, base, topScores, topIdx, kBytes, lastOff, thresholds);
  }
  return bad;
}

// @ts-ignore: decorator
@inline function offerT(
  row: usize, qi: i32, r: i32, bad: i32, k: i32, base: i32, topScores: usize, topIdx: usize, kBytes: usize, lastOff: usize, thresholds: usize,
): i32 {
  const s = load<f32>(row + ((<usize>qi) << 2));
  if (!(s - s == 0)) return bad < 0 || r < bad ? r : bad;
  const th = thresholds + ((<usize>qi) << 2);
  if (s > load<f32>(th)) {
    const ts = topScores + (<usize>qi) * kBytes;
    offer(ts, topIdx + (<usize>qi) * kBytes, k, s, base + r);
    store<f32>(th, load<f32>(ts + lastOff));
  }
  return bad;
}

/**
 * Sum of n floats at ptr: a plain streaming read with four independent accumulators, the memory
 * bandwidth reference the score benchmark puts beside scoreTopK.
 */
export function sumFloats(ptr: usize, n: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const n16 = n & ~15;
  const end = ptr + ((<usize>n16) << 2);
  let p = ptr;
  for (; p < end; p += 64) {
    a0 = f32x4.add(a0, v128.load(p));
    a1 = f32x4.add(a1, v128.load(p, 16));
    a2 = f32x4.add(a2, v128.load(p, 32));
    a3 = f32x4.add(a3, v128.load(p, 48));
  }
  const a = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
  let s: f32 = f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1) + f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3);
  for (let i = n16; i < n; i++) s += load<f32>(ptr + ((<usize>i) << 2));
  return s;
}
