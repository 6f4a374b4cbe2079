// Exact top-k scoring on the WASM kernels: argument checks, the chunked scan of a gallery on one
// instance (the kernel keeps a running top-k, so the gallery streams through a small buffer), and
// the merge of per-worker top-k lists.
import { CosfaceError } from '../../errors.js';
import type { TopK } from '../backend.js';
import type { WasmKernels } from './wasm-instance.js';

/** Gallery bytes copied into linear memory per kernel call: small enough to stay in L2. */
const CHUNK_BYTES = 256 * 1024;

/**
 * From this many queries a chunk is scored as a matrix multiply (the queries packed once as GEMM
 * weights, the gallery rows as its input, then a top-k pass over the score matrix): each gallery
 * value loaded then serves eight queries from registers. Fewer queries stream the gallery through
 * the dot-product kernel instead.
 */
const GEMM_MIN_QUERIES = 8;
/** Queries per matrix multiply, bounding the score matrix (this many x chunk rows). */
const GEMM_QUERY_BLOCK = 256;

/** One worker's answer for a slice of the gallery: q rows of k entries, index -1 where empty. */
export interface PartialTopK {
  scores: Float32Array;
  indices: Int32Array;
  /** First gallery row (global number) whose score was not finite, or -1. */
  badRow: number;
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new CosfaceError('BAD_INPUT', `${name} must be an integer >= ${min}, got ${v}`);
}

/**
 * Validates score() arguments (see score() in wasm-score.ts for the contract). Returns the
 * number of results per query, min(k, n).
 */
export function checkScoreArgs(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): number {
  if (!(gallery instanceof Float32Array)) throw new CosfaceError('BAD_INPUT', 'queries and gallery must be Float32Arrays');
  checkGalleryArgs(gallery, n, dim);
  checkQueryArgs(queries, q, dim, k);
  return Math.min(k, n);
}

/** The gallery half of checkScoreArgs: n >= 0 and dim >= 1 integers, n x dim floats. */
export function checkGalleryArgs(gallery: Float32Array, n: number, dim: number): void {
  if (!(gallery instanceof Float32Array)) throw new CosfaceError('BAD_INPUT', 'the gallery must be a Float32Array');
  checkCount('n', n, 0);
  checkCount('dim', dim, 1);
  if (gallery.length !== n * dim) {
    throw new CosfaceError('DIMENSION_MISMATCH', `gallery holds ${gallery.length} floats, expected n x dim = ${n} x ${dim} = ${n * dim}`);
  }
}

/** The query half of checkScoreArgs: q >= 0, k >= 1 integers, q x dim finite floats. */
export function checkQueryArgs(queries: Float32Array, q: number, dim: number, k: number): void {
  if (!(queries instanceof Float32Array)) throw new CosfaceError('BAD_INPUT', 'queries and gallery must be Float32Arrays');
  checkCount('q', q, 0);
  checkCount('k', k, 1);
  if (queries.length !== q * dim) {
    throw new CosfaceError('DIMENSION_MISMATCH', `queries hold ${queries.length} floats, expected q x dim = ${q} x ${dim} = ${q * dim}`);
  }
  for (let i = 0; i < queries.length; i++) {
    if (!Number.isFinite(queries[i]!)) {
      throw new CosfaceError('BAD_INPUT', `query ${Math.floor(i / dim)} holds a non-finite value (${queries[i]}) at dimension ${i % dim}`);
    }
  }
}

/** The error for a gallery row whose score came out NaN or infinite. */
export function badRowError(row: number): CosfaceError {
  return new CosfaceError('BAD_INPUT', `gallery row ${row} gives a non-finite score: it holds NaN or infinite values (or values so large that the dot product overflows)`);
}

/**
 * Scores all q queries against gallery rows [0, count) of `gallery` (whose row 0 is global row
 * base) on one instance. Returns q x k entries (index -1 where fewer than k rows exist). The
 * gallery streams through a small buffer in linear memory, one chunk copy per CHUNK_BYTES.
 */
export function scoreOnInstance(
  kernels: WasmKernels, queries: Float32Array, q: number, gallery: Float32Array, count: number, dim: number, k: number, base: number,
): PartialTopK {
  const mark = kernels.mark();
  try {
    const chunkRows = copyChunkRows(dim);
    const gPtr = kernels.alloc(Math.min(chunkRows, Math.max(count, 1)) * dim * 4);
    return scanChunks(kernels, queries, q, count, dim, k, base, chunkRows, evenRanges(count, chunkRows), (r0, rows) => {
      kernels.f32.set(gallery.subarray(r0 * dim, (r0 + rows) * dim), gPtr >> 2);
      return gPtr;
    });
  } finally {
    kernels.reset(mark);
  }
}

/**
 * Rows per chunk of a copied gallery: CHUNK_BYTES of them, a multiple of 4 so that the
 * kernel groups rows by four from the same rows as in one call over the whole gallery (a resident
 * scan): every row's score is then the same bits whichever way the rows reached memory.
 */
function copyChunkRows(dim: number): number {
  return Math.max(8, Math.floor(CHUNK_BYTES / (dim * 4)) & ~3);
}

/**
 * The same as scoreOnInstance for a gallery already in this instance's linear memory (count rows
 * of dim floats at byte offset gPtr, numbered from base): the kernels read it in place, with no
 * copy per call. Its buffers are allocated from the kernels' allocator (residentScanBytes of them).
 */
export function scoreResident(kernels: WasmKernels, queries: Float32Array, q: number, gPtr: number, count: number, dim: number, k: number, base = 0): PartialTopK {
  const mark = kernels.mark();
  try {
    const chunkRows = residentChunkRows(q, count, dim);
    return scanChunks(kernels, queries, q, count, dim, k, base, chunkRows, evenRanges(count, chunkRows), (r0) => gPtr + r0 * dim * 4);
  } finally {
    kernels.reset(mark);
  }
}

/**
 * scoreResident for one query against count rows stored compactly in linear memory at byte offset
 * gPtr, read in place: 'int8', dim bytes per row, row r's values times the float at scalesPtr +
 * 4r (scoreTopKI8); 'f16', IEEE halves, 2 x dim bytes per row, scalesPtr unused (scoreTopKF16).
 * The same top-k, score bits included, as scoreResident on the rows decoded to float32
 * (f32(value) * scale, or the half's value), at a quarter (a half) of the bytes.
 */
export function scoreResidentCompact(
  kernels: WasmKernels, storage: 'int8' | 'f16', query: Float32Array, gPtr: number, scalesPtr: number, count: number, dim: number, k: number,
): PartialTopK {
  const mark = kernels.mark();
  try {
    const qPtr = kernels.allocF32(query);
    const sPtr = kernels.alloc(k * 4);
    const iPtr = kernels.alloc(k * 4);
    kernels.f32.fill(-Infinity, sPtr >> 2, (sPtr >> 2) + k);
    kernels.i32.fill(-1, iPtr >> 2, (iPtr >> 2) + k);
    const badRow =
      storage === 'int8' ? kernels.k.scoreTopKI8(qPtr, gPtr, scalesPtr, count, dim, k, 0, sPtr, iPtr) : kernels.k.scoreTopKF16(qPtr, gPtr, count, dim, k, 0, sPtr, iPtr);
    return { scores: kernels.f32.slice(sPtr >> 2, (sPtr >> 2) + k), indices: kernels.i32.slice(iPtr >> 2, (iPtr >> 2) + k), badRow };
  } finally {
    kernels.reset(mark);
  }
}

/**
 * scoreResident over the row ranges that claim() hands out (each at most claimRows rows, in
 * increasing order; null when none is left) rather than one fixed range: one running top-k in
 * linear memory across all of them, indices being row numbers. Allocates residentScanBytes(q,
 * claimRows, dim, k). Returns null when claim() gave nothing.
 */
export function scoreResidentClaimed(
  kernels: WasmKernels, queries: Float32Array, q: number, gPtr: number, dim: number, k: number, claimRows: number,
  claim: () => { r0: number; rows: number } | null,
): { part: PartialTopK | null; claimed: number } {
  let first = claim();
  if (!first) return { part: null, claimed: 0 };
  let claimed = 0;
  const chunkRows = residentChunkRows(q, claimRows, dim);
  function* ranges(): Generator<{ r0: number; rows: number }> {
    for (let c = first; c; c = claim()) {
      claimed++;
      for (let r = 0; r < c.rows; r += chunkRows) yield { r0: c.r0 + r, rows: Math.min(chunkRows, c.rows - r) };
      first = null;
    }
  }
  const mark = kernels.mark();
  try {
    const part = scanChunks(kernels, queries, q, claimRows, dim, k, 0, chunkRows, ranges(), (r0) => gPtr + r0 * dim * 4);
    return { part, claimed };
  } finally {
    kernels.reset(mark);
  }
}

/** [0, count) in ranges of `size` rows. */
function* evenRanges(count: number, size: number): Generator<{ r0: number; rows: number }> {
  for (let r0 = 0; r0 < count; r0 += size) yield { r0, rows: Math.min(size, count - r0) };
}

/**
 * Few queries: one kernel call over the whole gallery (it is read once, in order). Many: chunks
 * that the GEMM reads as its input, as for a copied gallery.
 */
function residentChunkRows(q: number, count: number, dim: number): number {
  return q >= GEMM_MIN_QUERIES ? copyChunkRows(dim) : Math.max(count, 1);
}

/**
 * Bytes of linear memory scoreResident allocates for these arguments (its queries, top-k lists,
 * packed queries and score matrix), so that several threads scanning one shared memory can each
 * be given a region of their own.
 */
export function residentScanBytes(q: number, count: number, dim: number, k: number): number {
  let top = 0;
  const counter = (bytes: number): number => {
    const p = top;
    top = alignUp(top + Math.max(bytes, 0));
    return p;
  };
  allocScan(counter, q, count, dim, k, residentChunkRows(q, count, dim));
  return top;
}

function alignUp(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** The buffers of one scan, allocated in this order by scanChunks (and counted by residentScanBytes). */
function allocScan(alloc: (bytes: number) => number, q: number, count: number, dim: number, k: number, chunkRows: number) {
  const qPtr = alloc(q * dim * 4);
  const sPtr = alloc(q * k * 4);
  const iPtr = alloc(q * k * 4);
  const rowsCap = Math.min(chunkRows, Math.max(count, 1));
  const viaGemm = q >= GEMM_MIN_QUERIES;
  const qBlocks: { q0: number; qn: number; packed: number }[] = [];
  let zeros = 0, scoreMatrix = 0, scratch = 0, thresholds = 0, widest = 0;
  if (viaGemm) {
    for (let q0 = 0; q0 < q; q0 += GEMM_QUERY_BLOCK) {
      const qn = Math.min(GEMM_QUERY_BLOCK, q - q0);
      qBlocks.push({ q0, qn, packed: alloc(Math.ceil(qn / 8) * 8 * dim * 4) });
    }
    widest = Math.ceil(Math.min(q, GEMM_QUERY_BLOCK) / 8) * 8;
    zeros = alloc(widest * 4);
    scoreMatrix = alloc(widest * rowsCap * 4);
    scratch = alloc(dim * 16);
    thresholds = alloc(widest * 4);
  }
  return { qPtr, sPtr, iPtr, viaGemm, qBlocks, zeros, scoreMatrix, scratch, thresholds, widest };
}

/**
 * The chunked scan behind scoreOnInstance and scoreResident(Claimed): chunk(r0, rows) returns the byte
 * offset of gallery rows [r0, r0 + rows) in linear memory (copying them there if need be).
 * Allocates from kernels; the caller resets the allocator.
 */
function scanChunks(
  kernels: WasmKernels, queries: Float32Array, q: number, count: number, dim: number, k: number, base: number,
  chunkRows: number, ranges: Iterable<{ r0: number; rows: number }>, chunk: (r0: number, rows: number) => number,
): PartialTopK {
  // Many queries: each block of queries packed once as GEMM weights (it stays in L1), the
  // gallery rows are the GEMM's pixels, read where they lie, and the [rows, queries] score
  // matrix goes through topKFromScoresT.
  const { qPtr, sPtr, iPtr, viaGemm, qBlocks, zeros, scoreMatrix, scratch, thresholds, widest } = allocScan((b) => kernels.alloc(b), q, count, dim, k, chunkRows);
  const wasm = kernels.k;
  kernels.f32.set(queries, qPtr >> 2);
  if (viaGemm) {
    for (const { q0, qn, packed } of qBlocks) wasm.packRows(packed, qPtr + q0 * dim * 4, qn, dim);
    kernels.f32.fill(0, zeros >> 2, (zeros >> 2) + widest);
  }
  kernels.f32.fill(-Infinity, sPtr >> 2, (sPtr >> 2) + q * k);
  kernels.i32.fill(-1, iPtr >> 2, (iPtr >> 2) + q * k);
  let badRow = -1;
  // count bounds the buffers (allocScan); ranges give the rows, each at most chunkRows, in increasing order.
  for (const { r0, rows } of ranges) {
    const gPtr = chunk(r0, rows);
    if (viaGemm) {
      for (const { q0, qn, packed } of qBlocks) {
        wasm.gemm(scoreMatrix, gPtr, packed, zeros, 0, 0, rows, dim, qn, 0, scratch);
        const bad = wasm.topKFromScoresT(scoreMatrix, rows, qn, k, base + r0, sPtr + q0 * k * 4, iPtr + q0 * k * 4, thresholds);
        if (bad >= 0 && badRow < 0) badRow = base + r0 + bad;
      }
    } else {
      const bad = wasm.scoreTopK(qPtr, q, gPtr, rows, dim, k, base + r0, sPtr, iPtr);
      if (bad >= 0 && badRow < 0) badRow = base + r0 + bad;
    }
  }
  return {
    scores: kernels.f32.slice(sPtr >> 2, (sPtr >> 2) + q * k),
    indices: kernels.i32.slice(iPtr >> 2, (iPtr >> 2) + q * k),
    badRow,
  };
}

/** The lowest bad row of several parts (-1 when every score was finite). */
export function firstBadRow(parts: readonly PartialTopK[]): number {
  let bad = -1;
  for (const p of parts) if (p.badRow >= 0 && (bad < 0 || p.badRow < bad)) bad = p.badRow;
  return bad;
}

/** Merges per-slice top-k lists (each q x k, best first) into q x kOut, ties to the lower index. */
export function mergeTopK(parts: PartialTopK[], q: number, k: number, kOut: number): TopK {
  const scores = new Float32Array(q * kOut);
  const indices = new Int32Array(q * kOut);
  if (parts.length === 1) {
    for (let i = 0; i < q; i++) {
      scores.set(parts[0]!.scores.subarray(i * k, i * k + kOut), i * kOut);
      indices.set(parts[0]!.indices.subarray(i * k, i * k + kOut), i * kOut);
    }
    return { k: kOut, scores, indices };
  }
  const cursor = new Int32Array(parts.length);
  for (let i = 0; i < q; i++) {
    cursor.fill(0);
    for (let j = 0; j < kOut; j++) {
      // The best head among the lists; on equal scores the lower index (lists may cover
      // interleaved row ranges: chunks claimed by whichever worker was free).
      let best = -1;
      let bestScore = -Infinity;
      let bestIdx = 0;
      for (let p = 0; p < parts.length; p++) {
        const c = cursor[p]!;
        if (c >= k) continue;
        const idx = parts[p]!.indices[i * k + c]!;
        if (idx < 0) continue;
        const s = parts[p]!.scores[i * k + c]!;
        if (best < 0 || s > bestScore || (s === bestScore && idx < bestIdx)) {
          best = p;
          bestScore = s;
          bestIdx = idx;
        }
      }
      if (best < 0) throw new CosfaceError('WASM_ERROR', 'top-k merge ran out of candidates');
      scores[i * kOut + j] = bestScore;
      indices[i * kOut + j] = parts[best]!.indices[i * k + cursor[best]!]!;
      cursor[best]!++;
    }
  }
  return { k: kOut, scores, indices };
}
