// VectorIndex for the SQLite backend: one hnswlib graph per gallery, derived from the faces table
// (snapshot + replay, or rebuild, on first use; gallery-index.ts), an exact scan over the gallery's
// vectors kept resident where the scorer scans them (VectorMatrix over ExactRows: by default a
// shared WASM memory every worker scans in place), background rebuilds once many entries are deleted.
import type Database from 'better-sqlite3';
import type { ExactRowsFactory } from '../exact-scorer.js';
import { blobBytes, blobToEmbedding } from '../embedding.js';
import {
  adoptRebuiltSnapshot,
  buildFromDatabase,
  catchUp,
  catchUpAddsYielding,
  catchUpExternal,
  GalleryIndex,
  openGalleryIndex,
  rebuildInBackground,
  removeIndexFiles,
  shardCount,
  type BackgroundRebuild,
  type IndexedGallery,
} from '../gallery-index.js';
import type { GalleryRecord } from '../meta.js';
import { VectorMatrix } from '../vector-matrix.js';
import { modelChangedError, type IndexConsistency, type VectorIndex, type VectorIndexStats, type VectorSearch, type VectorSearchOptions } from '../vector-index.js';

export type IndexEvent =
  | { kind: 'opened'; gallery: string; how: 'snapshot' | 'rebuilt'; reason?: string; replayed: number; deletesApplied: number }
  | { kind: 'checkpoint'; gallery: string; lastFaceId: number; bytes: number }
  | { kind: 'rebuild-started'; gallery: string; deletedFraction: number }
  | { kind: 'rebuild-swapped'; gallery: string; size: number; replayed: number }
  | { kind: 'rebuild-failed'; gallery: string; error: string }
  /** A shard's worker thread died or stopped answering: the index was dropped and is reopened (snapshot + replay). */
  | { kind: 'shard-lost'; gallery: string; error: string }
  /** The index could not be opened (e.g. a shard's thread ended or hung before it was ready: INDEX_UNAVAILABLE); the call failed, the next one tries again. */
  | { kind: 'open-failed'; gallery: string; error: string };

export interface HnswIndexOptions {
  /** Absolute database path, or null for an in-memory database (rebuilds then run in this thread). */
  dbPath: string | null;
  /** Folder for index snapshots, or null to keep indexes in memory only. */
  indexDir: string | null;
  /** Where a gallery's vectors live for exact scans (made on the first exact scan, then kept in step). */
  rows: ExactRowsFactory;
  checkpointEvery: number;
  rebuildDeletedFraction: number;
  rebuildMinDeleted: number;
  /** Live faces from which a gallery is built as parallel shards (default SHARD_FROM). */
  shardFrom?: number;
  onIndexEvent?: (e: IndexEvent) => void;
}

interface LoadedGallery {
  name: string;
  index: GalleryIndex;
  /** Every live face of the gallery with an id up to this one is in the index (see syncWithOtherWriters). */
  syncedId: number;
  /** The gallery's generation (model switches) the index was built for. */
  generation: number;
  /** The gallery's vectors for exact scans, loading or loaded (null until the first one). */
  matrix: Promise<VectorMatrix> | null;
  rebuild: { job: BackgroundRebuild; done: Promise<void> } | null;
}

export class HnswVectorIndex implements VectorIndex {
  readonly kind = 'hnswlib';
  private readonly loaded = new Map<number, LoadedGallery>();
  /** Galleries being opened (a parallel build runs on worker threads meanwhile). */
  private readonly loading = new Map<number, Promise<LoadedGallery>>();
  /** Graphs built for a gallery's next generation, waiting for its model switch to commit. */
  private readonly pending = new Map<number, { generation: number; index: GalleryIndex }>();
  /** SQLite's data_version when the loaded indexes were last caught up with other processes' commits. */
  private dataVersion = -1;
  private closed = false;

  constructor(
    private readonly sqlite: Database.Database,
    private readonly o: HnswIndexOptions,
  ) {}

  async addGallery(): Promise<void> {
    // Graphs are made on first use.
  }

  async liveCount(g: GalleryRecord): Promise<number> {
    return (await this.load(g)).index.liveCount;
  }

  async search(g: GalleryRecord, probe: Float32Array, k: number, o: VectorSearchOptions): Promise<VectorSearch> {
    const l = await this.load(g);
    if (o.method === 'hnsw') {
      let found: { faceIds: number[]; scores: number[] };
      try {
        found = l.index.search(probe, k, o.ef);
      } catch (e) {
        // A shard's thread failed: drop the index; it reloads from the snapshot and replays.
        if (l.index.lost) this.dropLost(g, l, e);
        else this.discard(g.id, l);
        throw e;
      }
      return { faces: found.faceIds.map((faceId, i) => ({ faceId, score: found.scores[i]! })), exactScores: false };
    }
    const m = await this.matrix(g, l);
    return { faces: await m.search(probe, k), exactScores: true };
  }

  async added(g: GalleryRecord, faces: readonly { id: number; v: Float32Array }[]): Promise<void> {
    const l = await this.load(g);
    try {
      // A sharded index adds to its shards at once, each on its own thread.
      l.index.addMany(faces);
      if (l.matrix) await (await l.matrix).add(faces);
      this.maybeCheckpoint(l, g.id);
      // A gallery that grew past the shard threshold one face at a time is rebuilt as parallel
      // shards in the background (adds and searches go on against the single graph meanwhile; a
      // database without a file has no background rebuild, and keeps its graph until reopened).
      if (this.o.dbPath && this.o.indexDir && !l.rebuild && l.index.shardCount < shardCount(l.index.liveCount, this.o.shardFrom)) void this.rebuild(g);
    } catch (e) {
      // Drop the in-memory index; it reloads the snapshot and replays from the database (these faces included).
      if (l.index.lost) return this.dropLost(g, l, e);
      this.discard(g.id, l);
      this.emit({ kind: 'rebuild-failed', gallery: g.name, error: `index update failed: ${(e as Error).message}` });
    }
  }

  async deleted(g: GalleryRecord, faceIds: readonly number[]): Promise<void> {
    const l = await this.load(g);
    try {
      for (const id of faceIds) l.index.markDeleted(id);
      if (l.matrix) await (await l.matrix).remove(faceIds);
      l.index.deleteSeq = Math.max(l.index.deleteSeq, this.deleteSeq(g.id));
      this.maybeCheckpoint(l, g.id);
    } catch (e) {
      // As in added(): the deletes are in the database, the next use reloads and replays them.
      if (l.index.lost) return this.dropLost(g, l, e);
      this.discard(g.id, l);
      this.emit({ kind: 'rebuild-failed', gallery: g.name, error: `index update failed: ${(e as Error).message}` });
      return;
    }
    if (!l.rebuild && l.index.deletedCount >= this.o.rebuildMinDeleted && l.index.deletedFraction > this.o.rebuildDeletedFraction) {
      void this.rebuild(g);
    }
  }

  /**
   * Builds the graph of the gallery's next generation from the staged vectors (every live face has
   * one, or the switch is refused), before the switch commits; modelSwitched swaps it in.
   */
  async prepareSwitch(g: GalleryRecord, next: { dimension: number; generation: number }): Promise<void> {
    const params: IndexedGallery = { ...indexedGallery(g), dimension: next.dimension, generation: next.generation };
    const index = this.sqlite.transaction(() => {
      const n = (this.sqlite.prepare('SELECT COUNT(*) AS n FROM staged_embeddings WHERE gallery_id = ?').get(g.id) as { n: number }).n;
      const built = GalleryIndex.create(params, Math.ceil(n * 1.25));
      const v = new Float32Array(next.dimension);
      const rows = this.sqlite.prepare(
        'SELECT s.face_id AS id, s.embedding FROM staged_embeddings s JOIN faces f ON f.id = s.face_id WHERE s.gallery_id = ? AND f.deleted = 0 ORDER BY s.face_id',
      );
      for (const r of rows.iterate(g.id) as IterableIterator<{ id: number; embedding: Buffer }>) {
        if (r.embedding.length === next.dimension * 4) built.add(r.id, blobToEmbedding(r.embedding, v));
      }
      // Every live face up to here is staged (the claim blocks inserts): the graph covers them; the
      // deletes after this point are applied when it is swapped in.
      built.lastFaceId = (this.sqlite.prepare('SELECT COALESCE(MAX(id), 0) AS m FROM faces WHERE gallery_id = ?').get(g.id) as { m: number }).m;
      built.deleteSeq = this.deleteSeq(g.id);
      return built;
    })();
    this.pending.set(g.id, { generation: next.generation, index });
  }

  async modelSwitched(g: GalleryRecord): Promise<void> {
    const pending = this.pending.get(g.id);
    this.pending.delete(g.id);
    const l = this.loaded.get(g.id);
    if (l && l.generation >= g.generation) {
      pending?.index.close();
      return;
    }
    if (l) this.discard(g.id, l);
    // The old model's snapshot goes; the new graph (built before the switch, or now) is saved at once for other processes.
    if (this.o.indexDir) removeIndexFiles(this.o.indexDir, g.id);
    if (pending && pending.generation === g.generation) {
      catchUp(this.sqlite, indexedGallery(g), pending.index);
      const fresh: LoadedGallery = { name: g.name, index: pending.index, syncedId: pending.index.lastFaceId, generation: g.generation, matrix: null, rebuild: null };
      this.loaded.set(g.id, fresh);
      if (this.o.indexDir) this.save(fresh, g.id);
      this.emit({ kind: 'rebuild-swapped', gallery: g.name, size: fresh.index.size, replayed: 0 });
    } else await this.load(g);
  }

  async dropGallery(g: GalleryRecord): Promise<void> {
    await this.loading.get(g.id)?.catch(() => undefined);
    const l = this.loaded.get(g.id);
    if (l?.rebuild) await l.rebuild.job.cancel().catch(() => undefined);
    if (l) dropMatrix(l);
    this.loaded.delete(g.id);
    l?.index.close();
    if (this.o.indexDir) removeIndexFiles(this.o.indexDir, g.id);
  }

  async stats(g: GalleryRecord): Promise<VectorIndexStats> {
    const l = await this.load(g);
    return {
      size: l.index.size,
      live: l.index.liveCount,
      deleted: l.index.deletedCount,
      capacity: l.index.capacity,
      snapshotLastFaceId: l.index.snapshot?.lastFaceId ?? null,
      snapshotBytes: l.index.snapshot?.bytes ?? null,
      unsavedChanges: l.index.unsavedChanges,
      rebuilding: l.rebuild !== null,
    };
  }

  async check(g: GalleryRecord): Promise<IndexConsistency> {
    const l = await this.load(g);
    const dbRows = this.sqlite
      .prepare('SELECT id, embedding FROM faces WHERE gallery_id = ? AND deleted = 0')
      .all(g.id) as { id: number; embedding: Buffer }[];
    const inIndex = new Map(l.index.entries().map((e) => [e.faceId, e.live]));
    const dbIds = new Set<number>();
    const missingFromIndex: number[] = [];
    const vectorMismatches: number[] = [];
    for (const r of dbRows) {
      dbIds.add(r.id);
      if (inIndex.get(r.id) !== true) {
        missingFromIndex.push(r.id);
        continue;
      }
      const a = blobToEmbedding(r.embedding);
      const b = l.index.vector(r.id)!;
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      if (diff > 1e-6) vectorMismatches.push(r.id);
    }
    const extraInIndex = [...inIndex].filter(([id, live]) => live && !dbIds.has(id)).map(([id]) => id);
    return { dbLive: dbRows.length, indexLive: l.index.liveCount, missingFromIndex, extraInIndex, vectorMismatches };
  }

  async checkpoint(galleries?: readonly GalleryRecord[]): Promise<void> {
    const lost = this.checkpointSync(galleries?.map((g) => g.id));
    // Asked for a snapshot that could not be written: say so (the data is safe in the database).
    if (lost) throw lost;
  }

  async rebuild(g: GalleryRecord): Promise<void> {
    const l = await this.load(g);
    if (l.rebuild) return l.rebuild.done;
    const dir = this.o.indexDir;
    if (!this.o.dbPath || !dir) {
      const old = l.index;
      l.index = await buildFromDatabase(this.sqlite, indexedGallery(g), this.o.dbPath, null, this.o.shardFrom);
      old.close();
      this.emit({ kind: 'rebuild-swapped', gallery: g.name, size: l.index.size, replayed: 0 });
      return;
    }
    const job = rebuildInBackground(this.o.dbPath, this.sqlite, indexedGallery(g), dir, this.o.shardFrom);
    this.emit({ kind: 'rebuild-started', gallery: g.name, deletedFraction: l.index.deletedFraction });
    const done = job.promise.then(
      async (fresh) => {
        const stale = () => this.closed || this.loaded.get(g.id) !== l;
        try {
          // Whatever was added or deleted while the worker ran is in the database: replay it, the
          // bulk of the adds a batch at a time between other work, the rest and the deletes at once.
          let replayed = stale() ? 0 : await catchUpAddsYielding(this.sqlite, indexedGallery(g), fresh);
          if (stale()) {
            fresh.close();
            return;
          }
          replayed += catchUp(this.sqlite, indexedGallery(g), fresh).replayed;
          const old = l.index;
          l.index = fresh;
          old.close();
          adoptRebuiltSnapshot(dir, g.id, fresh);
          this.emit({ kind: 'rebuild-swapped', gallery: g.name, size: fresh.size, replayed });
        } catch (e) {
          if (l.index !== fresh) fresh.close();
          throw e;
        } finally {
          l.rebuild = null;
        }
      },
      (e: unknown) => {
        l.rebuild = null;
        if (!this.closed) this.emit({ kind: 'rebuild-failed', gallery: g.name, error: (e as Error).message });
      },
    );
    l.rebuild = { job, done };
    return done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.loading.values()]);
    for (const l of this.loaded.values()) if (l.rebuild) await l.rebuild.done;
    this.checkpointSync();
    this.closed = true;
    await Promise.allSettled([...this.loaded.values()].map((l) => dropMatrix(l)));
    for (const l of this.loaded.values()) l.index.close();
    this.loaded.clear();
    for (const p of this.pending.values()) p.index.close();
    this.pending.clear();
  }

  // ---- internals ----

  private emit(e: IndexEvent): void {
    this.o.onIndexEvent?.(e);
  }

  private deleteSeq(galleryId: number): number {
    const row = this.sqlite.prepare('SELECT delete_seq AS s FROM galleries WHERE id = ?').get(galleryId) as { s: number } | undefined;
    return row?.s ?? 0;
  }

  /** Saves the indexes with unsaved changes; returns the error of one that lost a shard meanwhile (dropped, not saved). */
  private checkpointSync(ids?: readonly number[]): unknown {
    if (!this.o.indexDir) return null;
    let lostError: unknown = null;
    for (const [id, l] of this.loaded) {
      if (ids && !ids.includes(id)) continue;
      let failed: unknown = null;
      if (!l.index.lost && (l.index.unsavedChanges > 0 || !l.index.snapshot)) {
        try {
          this.save(l, id);
        } catch (e) {
          if (!l.index.lost) throw e;
          failed = lostError = e;
        }
      }
      // A lost index is not saved: its last snapshot stays, and the database has every change since.
      if (l.index.lost) this.dropLost({ id, name: l.name }, l, failed);
    }
    return lostError;
  }

  /**
   * Another process may write the same database (a CLI `enroll` while `cosface serve` runs): SQLite's
   * data_version changes when another connection commits, and then every loaded index is caught up
   * (its faces and deletes) and cached vectors are dropped, before this process reads or writes it.
   */
  private syncWithOtherWriters(): void {
    const version = this.sqlite.pragma('data_version', { simple: true }) as number;
    if (version === this.dataVersion) return;
    this.dataVersion = version;
    for (const [id, l] of this.loaded) {
      const row = this.sqlite
        .prepare('SELECT id, dimension, hnsw_m AS m, hnsw_ef_construction AS efc, hnsw_ef AS ef, generation FROM galleries WHERE id = ?')
        .get(id) as { id: number; dimension: number; m: number; efc: number; ef: number; generation: number } | undefined;
      if (!row) {
        this.discard(id, l);
        continue;
      }
      if (row.generation !== l.generation) {
        // Another process switched the gallery's model: every vector changed, the graph is rebuilt on next use.
        this.discard(id, l);
        continue;
      }
      try {
        const r = catchUpExternal(this.sqlite, { id: row.id, dimension: row.dimension, m: row.m, efConstruction: row.efc, ef: row.ef, generation: row.generation }, l.index, l.syncedId);
        l.syncedId = r.sinceId;
        if (r.added > 0 || r.deleted > 0) dropMatrix(l);
      } catch (e) {
        // The index missed these commits: drop it (reopened from the snapshot and the database on next use).
        if (l.index.lost) this.dropLost({ id, name: l.name }, l, e);
        else this.discard(id, l);
      }
    }
  }

  /**
   * Drops an index that lost a shard's worker thread (GalleryIndex.lost) and, given the gallery,
   * starts reopening it at once: snapshot + replay from the database, exactly as a restart does, so
   * every face written before the loss is found again. A call that arrives first shares that open.
   */
  private dropLost(g: GalleryRecord | { id: number; name: string }, l: LoadedGallery, e: unknown): void {
    if (this.loaded.get(g.id) !== l) return;
    this.discard(g.id, l);
    this.emit({ kind: 'shard-lost', gallery: g.name, error: e instanceof Error ? e.message : 'an index shard worker thread stopped' });
    if ('generation' in g && !this.closed) void this.load(g).catch(() => undefined);
  }

  /** Forgets a gallery's loaded index (its background rebuild, if any, is cancelled). */
  private discard(id: number, l: LoadedGallery): void {
    this.loaded.delete(id);
    dropMatrix(l);
    if (l.rebuild) void l.rebuild.job.cancel().catch(() => undefined);
    l.index.close();
  }

  /**
   * The gallery's index, opened (snapshot + replay, or rebuild: in parallel worker threads for a
   * large gallery) on first use. Concurrent first uses share one open.
   */
  private async load(g: GalleryRecord): Promise<LoadedGallery> {
    this.syncWithOtherWriters();
    let l = this.loaded.get(g.id);
    // A shard's thread died since the last call: reopen the index instead of failing this one.
    if (l && l.index.lost) {
      this.dropLost({ id: g.id, name: g.name }, l, null);
      l = undefined;
    }
    // A request that read the gallery before a model switch must not meet the new vectors.
    if (l && l.generation > g.generation) throw modelChangedError(g.name);
    if (l && l.generation < g.generation) this.discard(g.id, l);
    else if (l) return l;
    let pending = this.loading.get(g.id);
    if (!pending) {
      const row = this.sqlite.prepare('SELECT generation FROM galleries WHERE id = ?').get(g.id) as { generation: number } | undefined;
      if (row && row.generation !== g.generation) throw modelChangedError(g.name);
      pending = (async () => {
        try {
          const opened = await openGalleryIndex(this.sqlite, indexedGallery(g), this.o.indexDir, this.o.dbPath, this.o.shardFrom);
          this.emit({
            kind: 'opened',
            gallery: g.name,
            how: opened.how,
            ...(opened.reason !== undefined ? { reason: opened.reason } : {}),
            replayed: opened.replayed,
            deletesApplied: opened.deletesApplied,
          });
          const fresh: LoadedGallery = { name: g.name, index: opened.index, syncedId: opened.index.lastFaceId, generation: g.generation, matrix: null, rebuild: null };
          this.loaded.set(g.id, fresh);
          return fresh;
        } catch (e) {
          this.emit({ kind: 'open-failed', gallery: g.name, error: e instanceof Error ? e.message : String(e) });
          throw e;
        } finally {
          this.loading.delete(g.id);
        }
      })();
      this.loading.set(g.id, pending);
    }
    return pending;
  }

  /**
   * The gallery's live vectors as one matrix, loaded from the database on the first exact scan
   * (concurrent first scans share the load) and kept in step by added/deleted after that.
   */
  private matrix(g: GalleryRecord, l: LoadedGallery): Promise<VectorMatrix> {
    if (!l.matrix) {
      const loading = (async () => {
        const n = (this.sqlite.prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND deleted = 0').get(g.id) as { n: number }).n;
        const m = await VectorMatrix.create(this.o.rows, g.dimension, n + 16);
        // Read in one synchronous pass (no await): the rows match the database at one moment,
        // and every later commit reaches the matrix through added/deleted. Blocks of rows go in
        // as they are read, so a large gallery is not held twice.
        const dim = g.dimension;
        const block = new Float32Array(LOAD_BLOCK * dim);
        const ids = new Float64Array(LOAD_BLOCK);
        let count = 0;
        const stmt = this.sqlite.prepare('SELECT id, embedding FROM faces WHERE gallery_id = ? AND deleted = 0 ORDER BY id');
        for (const r of stmt.iterate(g.id) as IterableIterator<{ id: number; embedding: Buffer }>) {
          // A vector of another length belongs to another model (a switch under way elsewhere).
          if (blobBytes(r.embedding).byteLength !== dim * 4) continue;
          blobToEmbedding(r.embedding, block, count * dim);
          ids[count++] = r.id;
          if (count === LOAD_BLOCK) {
            m.load(ids, block, count);
            count = 0;
          }
        }
        m.load(ids, block, count);
        return m;
      })();
      l.matrix = loading;
      // A failed load is not kept: the next exact scan tries again.
      loading.catch(() => {
        if (l.matrix === loading) l.matrix = null;
      });
    }
    return l.matrix;
  }

  private maybeCheckpoint(l: LoadedGallery, galleryId: number): void {
    if (this.o.indexDir && l.index.unsavedChanges >= this.o.checkpointEvery) this.save(l, galleryId);
  }

  private save(l: LoadedGallery, galleryId: number): void {
    if (!this.o.indexDir) return;
    this.syncWithOtherWriters(); // a snapshot claims every face up to its lastFaceId
    const meta = l.index.save(this.o.indexDir, galleryId);
    this.emit({ kind: 'checkpoint', gallery: l.name, lastFaceId: meta.lastFaceId, bytes: meta.bytes });
  }
}

/** Rows read from the database per append when a gallery's matrix is loaded. */
const LOAD_BLOCK = 4096;

/** Forgets a gallery's matrix and frees its rows once its scans in flight are done. */
function dropMatrix(l: LoadedGallery): Promise<void> {
  const m = l.matrix;
  l.matrix = null;
  return m ? m.then((x) => x.dispose()).catch(() => undefined) : Promise.resolve();
}

function indexedGallery(g: GalleryRecord): IndexedGallery {
  return { id: g.id, dimension: g.dimension, m: g.hnswM, efConstruction: g.hnswEfConstruction, ef: g.hnswEf, generation: g.generation };
}
