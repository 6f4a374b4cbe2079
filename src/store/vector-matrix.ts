// A gallery's live vectors for exact scans: the rows (ExactRows: resident where the scorer scans
// them, e.g. the WASM backend's shared memory) and the face id of each row. Loaded from the
// database on first use and kept in step with adds and deletes after that. A change waits for the
// scans in flight and scans wait for a change under way (a read-write lock), so a scan never sees
// a row move under it and its row numbers map to the right faces.
import type { ExactRows, ExactRowsFactory } from './exact-scorer.js';

export interface MatrixHit {
  faceId: number;
  score: number;
}

export class VectorMatrix {
  /** Face id of each row. */
  private faceIds: Float64Array;
  private readonly rowOf = new Map<number, number>();
  private readonly lock = new ReadWriteLock();
  private disposed = false;

  private constructor(
    private readonly rows: ExactRows,
    readonly dim: number,
    capacity: number,
  ) {
    this.faceIds = new Float64Array(Math.max(1, capacity));
  }

  static async create(factory: ExactRowsFactory, dim: number, capacity = 256): Promise<VectorMatrix> {
    return new VectorMatrix(await factory(dim, Math.max(1, capacity)), dim, capacity);
  }

  /** Rows held (live faces). */
  get n(): number {
    return this.rows.n;
  }

  has(faceId: number): boolean {
    return this.rowOf.has(faceId);
  }

  /** Adds faces not held yet (ids already held are skipped), after the scans in flight. */
  add(faces: readonly { id: number; v: Float32Array }[]): Promise<void> {
    return this.lock.write(() => this.addNow(faces));
  }

  /**
   * Fills a new matrix synchronously, without the lock: for its loader only, before anyone else
   * holds it (no scan can be in flight). rows: count x dim floats; ids: their face ids, not held yet.
   */
  load(ids: ArrayLike<number>, rows: Float32Array, count: number): void {
    this.appendRows(ids, rows, count);
  }

  /** Removes faces (the last row moves into each hole), after the scans in flight. */
  remove(faceIds: readonly number[]): Promise<void> {
    return this.lock.write(() => {
      for (const id of faceIds) {
        const row = this.rowOf.get(id);
        if (row === undefined) continue;
        const last = this.rows.n - 1;
        this.rows.removeSwap(row);
        if (row !== last) {
          const moved = this.faceIds[last]!;
          this.faceIds[row] = moved;
          this.rowOf.set(moved, row);
        }
        this.rowOf.delete(id);
      }
    });
  }

  /** The k best faces for a unit probe by inner product, best first (fewer when fewer are held). */
  search(probe: Float32Array, k: number): Promise<MatrixHit[]> {
    return this.lock.read(async () => {
      const n = this.rows.n;
      if (n === 0) return [];
      const top = await this.rows.score(probe, 1, Math.min(k, n));
      const hits: MatrixHit[] = [];
      for (let i = 0; i < top.k; i++) {
        const r = top.indices[i]!;
        if (r >= 0) hits.push({ faceId: this.faceIds[r]!, score: top.scores[i]! });
      }
      return hits;
    });
  }

  /** Frees the rows once the scans in flight are done; the matrix is not used after this. */
  dispose(): Promise<void> {
    return this.lock.write(async () => {
      if (this.disposed) return;
      this.disposed = true;
      await this.rows.dispose();
    });
  }

  private addNow(faces: readonly { id: number; v: Float32Array }[]): void {
    const seen = new Set<number>();
    const fresh = faces.filter((f) => !this.rowOf.has(f.id) && !seen.has(f.id) && seen.add(f.id));
    if (fresh.length === 0) return;
    const block = new Float32Array(fresh.length * this.dim);
    fresh.forEach((f, i) => block.set(f.v, i * this.dim));
    this.appendRows(fresh.map((f) => f.id), block, fresh.length);
  }

  private appendRows(ids: ArrayLike<number>, rows: Float32Array, count: number): void {
    if (count === 0) return;
    const start = this.rows.n;
    this.rows.append(rows.subarray(0, count * this.dim), count);
    if (start + count > this.faceIds.length) {
      const grown = new Float64Array(Math.max(start + count, Math.ceil(this.faceIds.length * 1.5)));
      grown.set(this.faceIds.subarray(0, start));
      this.faceIds = grown;
    }
    for (let i = 0; i < count; i++) {
      this.faceIds[start + i] = ids[i]!;
      this.rowOf.set(ids[i]!, start + i);
    }
  }
}

/**
 * Many readers or one writer at a time; a waiting writer goes before readers that arrive after it
 * (so a stream of scans cannot starve a change).
 */
export class ReadWriteLock {
  private readers = 0;
  private writing = false;
  private readonly queue: { write: boolean; go: () => void }[] = [];

  async read<T>(fn: () => Promise<T> | T): Promise<T> {
    await this.enter(false);
    try {
      return await fn();
    } finally {
      this.readers--;
      this.pump();
    }
  }

  async write<T>(fn: () => Promise<T> | T): Promise<T> {
    await this.enter(true);
    try {
      return await fn();
    } finally {
      this.writing = false;
      this.pump();
    }
  }

  private enter(write: boolean): Promise<void> {
    return new Promise<void>((go) => {
      this.queue.push({ write, go });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (this.writing) return;
      if (head.write) {
        if (this.readers > 0) return;
        this.queue.shift();
        this.writing = true;
        head.go();
        return;
      }
      this.queue.shift();
      this.readers++;
      head.go();
    }
  }
}
