// An exact-scan vector index for runtimes where no native HNSW loads (workerd, Deno, Bun): the
// gallery's unit vectors in one growing array, every search a full scan by inner product on the
// WASM `score` kernels on the calling thread. Storage is float32 (exact), float16 or int8 (a scale
// per row): 100,000 128-d faces take 51 MB, 26 MB or 13 MB. With f16/int8 the scan's scores are
// approximate, so callers re-score the candidates it returns with the stored float32 vectors (the
// store does, as it does for HNSW candidates); candidates are over-fetched for that.
//
// The rows live in the kernel instance's linear memory, one block of its WasmArena per index (every
// index on that instance shares its memory), and are scanned in place: float32 by scoreResident,
// float16 and int8 by scoreResidentCompact (the same score bits as scanning the rows decoded to
// float32). No copy per search. dispose() gives the block back for the next gallery to reuse.
import { CosfaceError } from '../errors.js';
import { WasmArena } from '../backend/wasm/wasm-arena.js';
import type { WasmKernels } from '../backend/wasm/wasm-instance.js';
import { badRowError, mergeTopK, scoreResident, scoreResidentCompact } from '../backend/wasm/wasm-topk.js';

export type VectorStorage = 'f32' | 'f16' | 'int8';
export const VECTOR_STORAGES: readonly VectorStorage[] = ['f32', 'f16', 'int8'];

export interface ExactVectorIndexOptions {
  dimension: number;
  /** Element storage (default 'f32'). */
  storage?: VectorStorage;
  /** Rows reserved up front (default 1024); the room grows when full (see grownCapacity). */
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

const ELEMENT_BYTES: Record<VectorStorage, number> = { f32: 4, f16: 2, int8: 1 };

export class ExactVectorIndex {
  readonly dimension: number;
  readonly storage: VectorStorage;
  private idsArray: Float64Array;
  /**
   * The rows' block in the arena (byte offset; -1 once disposed): cap rows of dimension elements,
   * then for int8 their scales (a float each) from the next 64-byte boundary.
   */
  private ptr = -1;
  private readonly arena: WasmArena;
  private disposed = false;
  /** A view of the rows, remade when memory grows (its ArrayBuffer is replaced) or the block moves. */
  private rowsView: Float32Array | Uint16Array | Int8Array | null = null;
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
    this.idsArray = new Float64Array(0);
    this.arena = WasmArena.of(kernels);
    this.setCapacity(Math.max(16, o.capacity ?? 1024));
  }

  /** Live vectors. */
  get size(): number {
    return this.n;
  }

  /**
   * Bytes held by the vectors and their ids (what grows with the gallery): the room in linear
   * memory and the ids exactly, plus an estimate of 40 bytes per entry for the id -> row map.
   */
  get bytes(): number {
    const cap = this.idsArray.length;
    return this.blockBytes(cap) + cap * 8 + this.rowOf.size * MAP_ENTRY_BYTES;
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
      if (this.n === this.idsArray.length) this.setCapacity(this.grownCapacity());
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
      this.rows().copyWithin(row * d, last * d, last * d + d);
      if (this.storage === 'int8') {
        const f = this.kernels.f32;
        const s = this.scalesAt(this.idsArray.length) >> 2;
        f[s + row] = f[s + last]!;
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
    const d = this.dimension;
    const src = this.rows().subarray(row * d, row * d + d);
    if (this.storage === 'f32') return Float32Array.from(src);
    if (this.storage === 'f16') return Float32Array.from(src, (h) => HALF_TO_FLOAT[h]!);
    const scale = this.kernels.f32[(this.scalesAt(this.idsArray.length) >> 2) + row]!;
    return Float32Array.from(src, (x) => x * scale);
  }

  /** Gives the rows' linear memory back to the arena (for the next gallery); the index is unusable after. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.arena.release(this.ptr, this.blockBytes(this.idsArray.length));
    this.ptr = -1;
    this.rowsView = null;
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
        : scoreResidentCompact(this.kernels, this.storage, query, this.ptr, this.scalesAt(this.idsArray.length), this.n, d, kOut);
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

  /**
   * Gives back the room above n rows plus an eighth (the store calls it once a gallery is loaded:
   * the room grows by half while rows are added one by one, which would otherwise stay reserved).
   */
  trim(): void {
    this.checkLive();
    const cap = Math.max(16, this.n + Math.ceil(this.n / 8));
    if (cap < this.idsArray.length) this.setCapacity(cap);
  }

  /**
   * The room after a growth: an eighth more when the block is on top of the arena (it grows in
   * place: memory is only extended, so small steps cost little and keep the memory, which never
   * shrinks, close to the rows), half more when it must move (a copy of every row).
   */
  private grownCapacity(): number {
    const cap = this.idsArray.length;
    return this.arena.onTop(this.ptr, this.blockBytes(cap)) ? cap + Math.max(16, Math.ceil(cap / 8)) : Math.ceil(cap * 1.5);
  }

  /** Bytes of the block for cap rows. */
  private blockBytes(cap: number): number {
    return this.storage === 'int8' ? this.scalesAt(cap) - Math.max(this.ptr, 0) + cap * 4 : cap * this.dimension * ELEMENT_BYTES[this.storage];
  }

  /** int8: byte offset of the scales in a block of cap rows at ptr. */
  private scalesAt(cap: number): number {
    return Math.max(this.ptr, 0) + Math.ceil((cap * this.dimension) / 64) * 64;
  }

  /** Sets the room to cap rows (>= n): grows the block (in place when it is on top), or gives back what is above. */
  private setCapacity(cap: number): void {
    // The block first: when memory cannot grow (WASM_ERROR) nothing has changed.
    const old = this.idsArray.length;
    const rowBytes = this.dimension * ELEMENT_BYTES[this.storage];
    if (old === 0) this.ptr = this.arena.alloc(this.blockBytes(cap));
    else if (this.storage !== 'int8') this.ptr = this.arena.resize(this.ptr, this.blockBytes(old), this.blockBytes(cap), this.n * rowBytes);
    else {
      // int8: the scales follow the rows, so they move when the room changes.
      const moveScales = () => new Uint8Array(this.kernels.k.memory.buffer).copyWithin(this.scalesAt(cap), this.scalesAt(old), this.scalesAt(old) + this.n * 4);
      const oldBytes = this.blockBytes(old);
      if (cap > old) {
        this.ptr = this.arena.resize(this.ptr, oldBytes, this.blockBytes(cap), oldBytes);
        moveScales();
      } else {
        moveScales();
        this.ptr = this.arena.resize(this.ptr, oldBytes, this.blockBytes(cap), this.blockBytes(cap));
      }
    }
    const ids = new Float64Array(cap);
    ids.set(this.idsArray.subarray(0, Math.min(old, cap)));
    this.idsArray = ids;
    this.rowsView = null;
  }

  /** The rows as a view of linear memory (elements of the storage type). */
  private rows(): Float32Array | Uint16Array | Int8Array {
    const buffer = this.kernels.k.memory.buffer;
    if (!this.rowsView || this.rowsView.buffer !== buffer) {
      const count = this.idsArray.length * this.dimension;
      this.rowsView = this.storage === 'f32' ? new Float32Array(buffer, this.ptr, count) : this.storage === 'f16' ? new Uint16Array(buffer, this.ptr, count) : new Int8Array(buffer, this.ptr, count);
    }
    return this.rowsView;
  }

  private checkLive(): void {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this exact-scan index has been disposed');
  }

  private write(row: number, v: Float32Array): void {
    const d = this.dimension;
    const o = row * d;
    const rows = this.rows();
    if (this.storage === 'f32') rows.set(v, o);
    else if (this.storage === 'f16') for (let i = 0; i < d; i++) rows[o + i] = toHalf(v[i]!);
    else {
      let max = 0;
      for (let i = 0; i < d; i++) max = Math.max(max, Math.abs(v[i]!));
      const scale = max > 0 ? max / 127 : 1;
      for (let i = 0; i < d; i++) rows[o + i] = Math.round(v[i]! / scale);
      this.kernels.f32[(this.scalesAt(this.idsArray.length) >> 2) + row] = scale;
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
