// An exact-scan vector index for runtimes where no native HNSW loads (workerd, Deno, Bun): the
// gallery's unit vectors in one growing array, every search a full scan by inner product on the
// WASM `score` kernel on the calling thread. Storage is float32 (exact), float16 or int8 (a scale
// per row): 100,000 128-d faces take 51 MB, 26 MB or 13 MB. With f16/int8 the scan's scores are
// approximate, so callers re-score the candidates it returns with the stored float32 vectors (the
// store does, as it does for HNSW candidates); candidates are over-fetched for that.
//
// Float32 and int8 rows live in the kernel instance's linear memory (blocks of its WasmArena, shared
// by every index on that instance) and are scanned in place (scoreResident, scoreResidentI8): no
// copy per search. Float16 rows stay in a JS array and are decoded straight into linear memory a
// chunk at a time (scoreFilled). dispose() gives the blocks back for the next gallery to reuse.
import { CosfaceError } from '../errors.js';
import { WasmArena } from '../backend/wasm/wasm-arena.js';
import type { WasmKernels } from '../backend/wasm/wasm-instance.js';
import { badRowError, mergeTopK, scoreFilled, scoreResident, scoreResidentI8 } from '../backend/wasm/wasm-topk.js';

export type VectorStorage = 'f32' | 'f16' | 'int8';
export const VECTOR_STORAGES: readonly VectorStorage[] = ['f32', 'f16', 'int8'];

export interface ExactVectorIndexOptions {
  dimension: number;
  /** Element storage (default 'f32'). */
  storage?: VectorStorage;
  /** Rows reserved up front (default 1024); the room grows by half when full. */
  capacity?: number;
}

export interface ExactSearchResult {
  /** Face ids, best first. */
  ids: number[];
  /** Inner products as scanned (exact for f32, approximate for f16/int8). */
  scores: number[];
}

/** V8's Map costs about this much per number -> number entry (hash table plus entry slots). */
const MAP_ENTRY_BYTES = 40;

export class ExactVectorIndex {
  readonly dimension: number;
  readonly storage: VectorStorage;
  private idsArray: Float64Array;
  /** f32, int8: the rows' block in the arena (byte offset), -1 for f16 or once disposed. */
  private ptr = -1;
  /** int8: where the rows' scales (a float each) start, in the rows' block. */
  private scalesPtr = -1;
  private readonly arena: WasmArena | null;
  private disposed = false;
  private f16: Uint16Array | null = null;
  /** int8: a view of the rows' block, remade when memory grows (ArrayBuffer replaced). */
  private i8View: Int8Array | null = null;
  private rowOf = new Map<number, number>();
  private n = 0;

  constructor(
    private readonly kernels: WasmKernels,
    o: ExactVectorIndexOptions,
  ) {
    if (!Number.isInteger(o.dimension) || o.dimension < 1) throw new CosfaceError('BAD_INPUT', `dimension must be an integer >= 1, got ${String(o.dimension)}`);
    const storage = o.storage ?? 'f32';
    if (!VECTOR_STORAGES.includes(storage)) throw new CosfaceError('BAD_INPUT', `storage must be one of ${VECTOR_STORAGES.join(', ')}, got '${String(storage)}'`);
    this.dimension = o.dimension;
    this.storage = storage;
    const cap = Math.max(16, o.capacity ?? 1024);
    this.idsArray = new Float64Array(0);
    this.arena = storage === 'f16' ? null : WasmArena.of(kernels);
    this.grow(cap);
  }

  /** Live vectors. */
  get size(): number {
    return this.n;
  }

  /**
   * Bytes held by the vectors and their ids (what grows with the gallery): the typed arrays exactly,
   * plus an estimate of 40 bytes per entry for the id -> row map.
   */
  get bytes(): number {
    const cap = this.idsArray.length;
    const per = this.storage === 'f32' ? 4 * this.dimension : this.storage === 'f16' ? 2 * this.dimension : this.dimension + 4;
    return cap * (per + 8) + this.rowOf.size * MAP_ENTRY_BYTES;
  }

  /** The face ids held, in row order. */
  ids(): number[] {
    return Array.from(this.idsArray.subarray(0, this.n));
  }

  has(id: number): boolean {
    return this.rowOf.has(id);
  }

  /** Adds (or replaces) the vector of face `id`. The vector should be unit length. */
  add(id: number, v: Float32Array): void {
    this.checkLive();
    if (v.length !== this.dimension) throw new CosfaceError('DIMENSION_MISMATCH', `vector has ${v.length} values, the index holds ${this.dimension}`);
    let row = this.rowOf.get(id);
    if (row === undefined) {
      if (this.n === this.idsArray.length) this.grow(Math.ceil(this.n * 1.5));
      row = this.n++;
      this.rowOf.set(id, row);
      this.idsArray[row] = id;
    }
    this.write(row, v);
  }

  /** Removes face `id` (the last row moves into its place); false when it was not there. */
  remove(id: number): boolean {
    this.checkLive();
    const row = this.rowOf.get(id);
    if (row === undefined) return false;
    const last = this.n - 1;
    if (row !== last) {
      const d = this.dimension;
      const lastId = this.idsArray[last]!;
      this.idsArray[row] = lastId;
      this.rowOf.set(lastId, row);
      if (this.storage === 'f32') {
        const base = this.ptr >> 2;
        this.kernels.f32.copyWithin(base + row * d, base + last * d, base + last * d + d);
      } else if (this.f16) this.f16.copyWithin(row * d, last * d, last * d + d);
      else {
        this.i8().copyWithin(row * d, last * d, last * d + d);
        const f = this.kernels.f32;
        f[(this.scalesPtr >> 2) + row] = f[(this.scalesPtr >> 2) + last]!;
      }
    }
    this.rowOf.delete(id);
    this.n--;
    return true;
  }

  /** The stored vector of face `id` as float32 (decoded for f16/int8), or undefined. */
  vector(id: number): Float32Array | undefined {
    this.checkLive();
    const row = this.rowOf.get(id);
    if (row === undefined) return undefined;
    const out = new Float32Array(this.dimension);
    this.decodeRows(row, 1, out, 0);
    return out;
  }

  /** Gives the rows' linear memory back to the arena (for the next gallery); the index is unusable after. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const cap = this.idsArray.length;
    const d = this.dimension;
    if (this.ptr >= 0) this.arena!.release(this.ptr, this.storage === 'f32' ? cap * d * 4 : Math.ceil((cap * d) / 64) * 64 + cap * 4);
    this.ptr = this.scalesPtr = -1;
    this.f16 = this.i8View = null;
    this.rowOf.clear();
    this.n = 0;
  }

  /** The k best faces for a (unit) query by inner product, best first. */
  search(query: Float32Array, k: number): ExactSearchResult {
    this.checkLive();
    const d = this.dimension;
    if (query.length !== d) throw new CosfaceError('DIMENSION_MISMATCH', `probe has ${query.length} values, the index holds ${d}`);
    if (!Number.isInteger(k) || k < 1) throw new CosfaceError('BAD_INPUT', `k must be an integer >= 1, got ${String(k)}`);
    const kOut = Math.min(k, this.n);
    if (kOut === 0) return { ids: [], scores: [] };
    const part =
      this.storage === 'f32'
        ? scoreResident(this.kernels, query, 1, this.ptr, this.n, d, kOut)
        : this.storage === 'int8'
          ? scoreResidentI8(this.kernels, query, this.ptr, this.scalesPtr, this.n, d, kOut)
          : scoreFilled(this.kernels, query, 1, this.n, d, kOut, 0, (r0, rows, memory, at) => this.decodeRows(r0, rows, memory, at));
    if (part.badRow >= 0) throw badRowError(part.badRow);
    const top = mergeTopK([part], 1, kOut, kOut);
    const ids: number[] = [];
    const scores: number[] = [];
    for (let i = 0; i < top.k; i++) {
      const r = top.indices[i]!;
      if (r < 0) continue;
      ids.push(this.idsArray[r]!);
      scores.push(top.scores[i]!);
    }
    return { ids, scores };
  }

  /** Sets the room to cap rows (>= n): grows it, or gives back what is above it. */
  private grow(cap: number): void {
    const d = this.dimension;
    const old = this.idsArray.length;
    const ids = new Float64Array(cap);
    ids.set(this.idsArray.subarray(0, Math.min(old, cap)));
    this.idsArray = ids;
    const arena = this.arena;
    if (this.storage === 'f32') {
      this.ptr = old === 0 ? arena!.alloc(cap * d * 4) : arena!.resize(this.ptr, old * d * 4, cap * d * 4, this.n * d * 4);
    } else if (this.storage === 'int8') {
      // One block: the rows (dim bytes each), then their scales (a float each) from a 64-byte boundary.
      const rowsEnd = (c: number) => Math.ceil((c * d) / 64) * 64;
      const size = (c: number) => rowsEnd(c) + c * 4;
      const moveScales = () => new Uint8Array(this.kernels.k.memory.buffer).copyWithin(this.ptr + rowsEnd(cap), this.ptr + rowsEnd(old), this.ptr + rowsEnd(old) + this.n * 4);
      if (old === 0) this.ptr = arena!.alloc(size(cap));
      else if (cap > old) {
        this.ptr = arena!.resize(this.ptr, size(old), size(cap), size(old));
        moveScales();
      } else {
        moveScales();
        this.ptr = arena!.resize(this.ptr, size(old), size(cap), size(cap));
      }
      this.scalesPtr = this.ptr + rowsEnd(cap);
      this.i8View = null;
    } else {
      const f16 = new Uint16Array(cap * d);
      if (this.f16) f16.set(this.f16.subarray(0, Math.min(old, cap) * d));
      this.f16 = f16;
    }
  }

  /**
   * Gives back the room above n rows plus an eighth (the store calls it once a gallery is loaded:
   * the room grows by half while rows are added one by one, which would otherwise stay reserved).
   */
  trim(): void {
    this.checkLive();
    const cap = Math.max(16, this.n + Math.ceil(this.n / 8));
    if (cap < this.idsArray.length) this.grow(cap);
  }

  /** The int8 rows' block as a view (remade after memory growth or a move). */
  private i8(): Int8Array {
    const buffer = this.kernels.k.memory.buffer;
    if (!this.i8View || this.i8View.buffer !== buffer) this.i8View = new Int8Array(buffer, this.ptr, this.idsArray.length * this.dimension);
    return this.i8View;
  }

  private checkLive(): void {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this exact-scan index has been disposed');
  }

  private write(row: number, v: Float32Array): void {
    const d = this.dimension;
    const o = row * d;
    if (this.storage === 'f32') this.kernels.f32.set(v, (this.ptr >> 2) + o);
    else if (this.f16) for (let i = 0; i < d; i++) this.f16[o + i] = toHalf(v[i]!);
    else {
      let max = 0;
      for (let i = 0; i < d; i++) max = Math.max(max, Math.abs(v[i]!));
      const scale = max > 0 ? max / 127 : 1;
      const i8 = this.i8();
      for (let i = 0; i < d; i++) i8[o + i] = Math.round(v[i]! / scale);
      this.kernels.f32[(this.scalesPtr >> 2) + row] = scale;
    }
  }

  /** Rows [r0, r0 + rows) as floats into out from index at. */
  private decodeRows(r0: number, rows: number, out: Float32Array, at: number): void {
    const d = this.dimension;
    if (this.storage === 'f32') {
      const base = this.ptr >> 2;
      out.set(this.kernels.f32.subarray(base + r0 * d, base + (r0 + rows) * d), at);
      return;
    }
    if (this.f16) {
      const src = this.f16;
      for (let i = at, j = r0 * d, end = at + rows * d; i < end; i++, j++) out[i] = HALF_TO_FLOAT[src[j]!]!;
      return;
    }
    const src = this.i8();
    const scales = this.kernels.f32;
    for (let r = 0; r < rows; r++) {
      const s = scales[(this.scalesPtr >> 2) + r0 + r]!;
      const o = at + r * d;
      const so = (r0 + r) * d;
      for (let i = 0; i < d; i++) out[o + i] = src[so + i]! * s;
    }
  }
}

// ---- float16 ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half from a float, rounded to nearest even (subnormals kept, overflow to infinity). */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

const HALF_TO_FLOAT = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfToFloat(h);
  return t;
})();
