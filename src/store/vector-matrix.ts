// A gallery's live vectors as one contiguous row-major matrix, for exact scans on the scorer.
// Loaded from the database on first use and kept in step with adds and deletes after that. The
// floats live in a SharedArrayBuffer so the WASM scorer's workers read them in place, uncopied.

export class VectorMatrix {
  data: Float32Array;
  /** Face id of each row. */
  faceIds: Float64Array;
  n = 0;
  private rowOf = new Map<number, number>();

  constructor(readonly dim: number, capacity = 256) {
    this.data = sharedFloats(Math.max(1, capacity) * dim);
    this.faceIds = new Float64Array(Math.max(1, capacity));
  }

  add(faceId: number, v: Float32Array): void {
    if (this.rowOf.has(faceId)) return;
    if (this.n === this.faceIds.length) this.grow(this.n * 2);
    this.data.set(v, this.n * this.dim);
    this.faceIds[this.n] = faceId;
    this.rowOf.set(faceId, this.n);
    this.n++;
  }

  /** Removes a face by moving the last row into its place (row order carries no meaning). */
  remove(faceId: number): void {
    const row = this.rowOf.get(faceId);
    if (row === undefined) return;
    const last = this.n - 1;
    if (row !== last) {
      this.data.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim);
      const moved = this.faceIds[last]!;
      this.faceIds[row] = moved;
      this.rowOf.set(moved, row);
    }
    this.rowOf.delete(faceId);
    this.n = last;
  }

  /** The n live rows (a view, no copy). */
  rows(): Float32Array {
    return this.data.subarray(0, this.n * this.dim);
  }

  row(faceId: number): Float32Array | null {
    const r = this.rowOf.get(faceId);
    return r === undefined ? null : this.data.subarray(r * this.dim, (r + 1) * this.dim);
  }

  private grow(capacity: number): void {
    const data = sharedFloats(capacity * this.dim);
    data.set(this.data.subarray(0, this.n * this.dim));
    const ids = new Float64Array(capacity);
    ids.set(this.faceIds.subarray(0, this.n));
    this.data = data;
    this.faceIds = ids;
  }
}

function sharedFloats(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * 4));
}
