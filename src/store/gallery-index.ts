// The HNSW index of one gallery: derived state rebuilt or replayed from the database, snapshotted
// to disk (index file + sidecar JSON naming the last face it contains), rebuilt in the background
// when too many of its entries are deleted.
import type Database from 'better-sqlite3';
import hnswlib from 'hnswlib-node';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { CosfaceError } from '../errors.js';
import { blobToEmbedding } from './embedding.js';

type Hnsw = InstanceType<typeof hnswlib.HierarchicalNSW>;

export interface HnswParams {
  dimension: number;
  m: number;
  efConstruction: number;
  ef: number;
  /** The gallery's generation (bumped by each model switch); 0 when absent. */
  generation?: number;
}

/** What a gallery needs to find its index: its row id and parameters. */
export interface IndexedGallery extends HnswParams {
  id: number;
}

/** The sidecar written next to an index file; the index file is trusted only if it matches. */
export interface SnapshotMeta {
  format: 1;
  galleryId: number;
  file: string; // file name inside the index folder
  bytes: number;
  sha256: string;
  lastFaceId: number; // every live face with id <= lastFaceId is in the file
  deleteSeq: number; // every delete with delete_seq <= deleteSeq is applied in the file
  count: number; // entries in the file, deleted ones included
  deletedCount: number;
  dimension: number;
  m: number;
  efConstruction: number;
  /** The gallery generation the vectors belong to (absent in snapshots written before model switches existed: 0). */
  generation?: number;
  savedAt: string;
}

const SNAPSHOT_FORMAT = 1;
const MIN_CAPACITY = 1024;
// hnswlib's fixed seed, so two builds over the same faces give the same graph.
const RANDOM_SEED = 100;

export class GalleryIndex {
  /** Highest face id added; faces above it are replayed from the database. */
  lastFaceId: number;
  /** Gallery delete sequence up to which deletes are applied. */
  deleteSeq: number;
  /** Entries marked deleted but still in the graph. */
  deletedCount: number;
  /** Adds and deletes since the last snapshot was written. */
  unsavedChanges = 0;
  /** The snapshot this index was loaded from or last saved to, if any. */
  snapshot: SnapshotMeta | null = null;

  private constructor(
    readonly params: HnswParams,
    private hnsw: Hnsw,
    lastFaceId: number,
    deleteSeq: number,
    deletedCount: number,
  ) {
    this.lastFaceId = lastFaceId;
    this.deleteSeq = deleteSeq;
    this.deletedCount = deletedCount;
    hnsw.setEf(params.ef);
  }

  static create(params: HnswParams, capacity: number): GalleryIndex {
    const hnsw = new hnswlib.HierarchicalNSW('ip', params.dimension);
    hnsw.initIndex(Math.max(MIN_CAPACITY, capacity), params.m, params.efConstruction, RANDOM_SEED);
    return new GalleryIndex(params, hnsw, 0, 0, 0);
  }

  /** Loads an index file written by save() or by the rebuild worker. Throws if hnswlib rejects it. */
  static fromFile(params: HnswParams, path: string, meta: SnapshotMeta): GalleryIndex {
    const hnsw = new hnswlib.HierarchicalNSW('ip', params.dimension);
    hnsw.readIndexSync(path);
    if (hnsw.getNumDimensions() !== params.dimension || hnsw.getCurrentCount() !== meta.count) {
      throw new Error(
        `index file holds ${hnsw.getCurrentCount()} x ${hnsw.getNumDimensions()}, sidecar says ${meta.count} x ${params.dimension}`,
      );
    }
    const index = new GalleryIndex(params, hnsw, meta.lastFaceId, meta.deleteSeq, meta.deletedCount);
    index.snapshot = meta;
    return index;
  }

  /** Entries in the graph, deleted ones included. */
  get size(): number {
    return this.hnsw.getCurrentCount();
  }
  get liveCount(): number {
    return this.size - this.deletedCount;
  }
  get capacity(): number {
    return this.hnsw.getMaxElements();
  }
  get deletedFraction(): number {
    return this.size === 0 ? 0 : this.deletedCount / this.size;
  }

  /** Adds a unit vector under its face id, growing the capacity (doubling) when full. */
  add(faceId: number, v: Float32Array): void {
    if (this.size >= this.capacity) this.hnsw.resizeIndex(Math.max(MIN_CAPACITY, this.capacity * 2));
    this.hnsw.addPoint(Array.from(v), faceId);
    if (faceId > this.lastFaceId) this.lastFaceId = faceId;
    this.unsavedChanges++;
  }

  /** Marks a face deleted; false when it was not in the graph or already deleted. */
  markDeleted(faceId: number): boolean {
    try {
      this.hnsw.markDelete(faceId);
    } catch {
      // hnswlib throws for "Label not found" and "already deleted": both mean nothing to do.
      return false;
    }
    this.deletedCount++;
    this.unsavedChanges++;
    return true;
  }

  /** Approximate k nearest faces by inner product, best first. */
  search(probe: Float32Array, k: number, ef = this.params.ef): { faceIds: number[]; scores: number[] } {
    if (k <= 0 || this.liveCount === 0) return { faceIds: [], scores: [] };
    this.hnsw.setEf(Math.max(ef, k));
    const r = this.hnsw.searchKnn(Array.from(probe), Math.min(k, this.liveCount));
    // hnswlib's 'ip' distance is 1 - dot.
    return { faceIds: r.neighbors, scores: r.distances.map((d) => 1 - d) };
  }

  /** All face ids in the graph and whether each is live (for consistency checks). */
  entries(): { faceId: number; live: boolean }[] {
    return this.hnsw.getIdsList().map((faceId) => {
      try {
        this.hnsw.getPoint(faceId); // throws for deleted labels
        return { faceId, live: true };
      } catch {
        return { faceId, live: false };
      }
    });
  }

  /** The stored vector of a live face, or null. */
  vector(faceId: number): Float32Array | null {
    try {
      return Float32Array.from(this.hnsw.getPoint(faceId));
    } catch {
      return null;
    }
  }

  /**
   * Writes a snapshot crash-safely: the index goes to a new file (temp, fsync, rename), then the
   * sidecar is replaced atomically (temp, fsync, rename), then the old file is removed. A crash at
   * any point leaves either the old sidecar with its intact file or the new pair.
   */
  save(dir: string, galleryId: number): SnapshotMeta {
    mkdirSync(dir, { recursive: true });
    const file = `g${galleryId}-${this.lastFaceId}-${randomBytes(4).toString('hex')}.hnsw`;
    const tmp = join(dir, file + '.tmp');
    this.hnsw.writeIndexSync(tmp);
    fsyncFile(tmp);
    const sha256 = sha256File(tmp);
    const bytes = statSync(tmp).size;
    renameSync(tmp, join(dir, file));
    const meta: SnapshotMeta = {
      format: SNAPSHOT_FORMAT,
      galleryId,
      file,
      bytes,
      sha256,
      lastFaceId: this.lastFaceId,
      deleteSeq: this.deleteSeq,
      count: this.size,
      deletedCount: this.deletedCount,
      dimension: this.params.dimension,
      m: this.params.m,
      efConstruction: this.params.efConstruction,
      generation: this.params.generation ?? 0,
      savedAt: new Date().toISOString(),
    };
    writeSidecar(dir, galleryId, meta);
    this.snapshot = meta;
    this.unsavedChanges = 0;
    removeStaleFiles(dir, galleryId, file);
    return meta;
  }
}

export function sidecarPath(dir: string, galleryId: number): string {
  return join(dir, `g${galleryId}.json`);
}

/** Removes a gallery's sidecar and index files (after the gallery is deleted). */
export function removeIndexFiles(dir: string, galleryId: number): void {
  if (!existsSync(dir)) return;
  const side = sidecarPath(dir, galleryId);
  if (existsSync(side)) unlinkSync(side);
  removeStaleFiles(dir, galleryId, null);
}

function writeSidecar(dir: string, galleryId: number, meta: SnapshotMeta): void {
  const path = sidecarPath(dir, galleryId);
  const tmp = path + '.tmp';
  writeFileSync(tmp, JSON.stringify(meta, null, 2));
  fsyncFile(tmp);
  renameSync(tmp, path);
  fsyncDir(dir);
}

/** Deletes this gallery's index files other than `keep` (old snapshots, temp files of a crash). */
function removeStaleFiles(dir: string, galleryId: number, keep: string | null): void {
  const prefix = `g${galleryId}-`;
  for (const name of readdirSync(dir)) {
    if (name.startsWith(prefix) && name !== keep) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // Already gone: nothing to clean.
      }
    }
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  // Makes the renames durable; not every platform lets a directory be fsynced.
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Reads and checks a sidecar and its index file; returns the meta or why it cannot be used. */
function readSnapshotMeta(dir: string, g: IndexedGallery): { meta: SnapshotMeta } | { reason: string } {
  const side = sidecarPath(dir, g.id);
  if (!existsSync(side)) return { reason: 'no index snapshot' };
  let meta: SnapshotMeta;
  try {
    meta = JSON.parse(readFileSync(side, 'utf8')) as SnapshotMeta;
  } catch (e) {
    return { reason: `sidecar unreadable: ${(e as Error).message}` };
  }
  if (meta.format !== SNAPSHOT_FORMAT || meta.galleryId !== g.id) return { reason: 'sidecar format or gallery differs' };
  if (meta.dimension !== g.dimension || meta.m !== g.m || meta.efConstruction !== g.efConstruction) {
    return { reason: 'index parameters changed' };
  }
  if ((meta.generation ?? 0) !== (g.generation ?? 0)) return { reason: 'the gallery switched to another model' };
  const file = join(dir, meta.file);
  if (!existsSync(file)) return { reason: `index file ${meta.file} missing` };
  if (statSync(file).size !== meta.bytes) return { reason: `index file ${meta.file} has the wrong size` };
  // The checksum guards hnswlib's loader, which trusts offsets inside the file.
  if (sha256File(file) !== meta.sha256) return { reason: `index file ${meta.file} checksum mismatch` };
  return { meta };
}

export interface OpenedIndex {
  index: GalleryIndex;
  /** 'snapshot': loaded and caught up; 'rebuilt': built from the database. */
  how: 'snapshot' | 'rebuilt';
  /** Why the snapshot was not used, when rebuilt. */
  reason?: string;
  replayed: number;
  deletesApplied: number;
}

/** Face rows the index is derived from; raw statements because these scans touch every row. */
class FaceRows {
  constructor(private sqlite: Database.Database) {}
  liveCount(galleryId: number): number {
    return (
      this.sqlite
        .prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND deleted = 0')
        .get(galleryId) as { n: number }
    ).n;
  }
  deleteSeq(galleryId: number): number {
    const row = this.sqlite.prepare('SELECT delete_seq AS s FROM galleries WHERE id = ?').get(galleryId) as
      | { s: number }
      | undefined;
    return row?.s ?? 0;
  }
  *liveAfter(galleryId: number, afterId: number): Generator<{ id: number; embedding: Buffer }> {
    const stmt = this.sqlite.prepare(
      'SELECT id, embedding FROM faces WHERE gallery_id = ? AND id > ? AND deleted = 0 ORDER BY id',
    );
    yield* stmt.iterate(galleryId, afterId) as IterableIterator<{ id: number; embedding: Buffer }>;
  }
  deletedSince(galleryId: number, deleteSeq: number, uptoId: number): number[] {
    return (
      this.sqlite
        .prepare('SELECT id FROM faces WHERE gallery_id = ? AND deleted = 1 AND delete_seq > ? AND id <= ?')
        .all(galleryId, deleteSeq, uptoId) as { id: number }[]
    ).map((r) => r.id);
  }
}

/**
 * Brings `index` up to date with the database: adds live faces above index.lastFaceId and applies
 * deletes newer than index.deleteSeq.
 */
export function catchUp(sqlite: Database.Database, g: IndexedGallery, index: GalleryIndex) {
  const rows = new FaceRows(sqlite);
  // One read transaction, so the adds and deletes describe the same database state.
  return sqlite.transaction(() => {
    const seq = rows.deleteSeq(g.id);
    let deletesApplied = 0;
    for (const id of rows.deletedSince(g.id, index.deleteSeq, index.lastFaceId)) {
      if (index.markDeleted(id)) deletesApplied++;
    }
    let replayed = 0;
    const v = new Float32Array(g.dimension);
    for (const row of rows.liveAfter(g.id, index.lastFaceId)) {
      index.add(row.id, blobToEmbedding(row.embedding, v));
      replayed++;
    }
    index.deleteSeq = seq;
    return { replayed, deletesApplied };
  })();
}

/**
 * Catches `index` up after another process (a CLI `enroll` beside a server) wrote the database.
 * Another writer's face ids interleave with this process's, so lastFaceId cannot say what is
 * missing: every live face above `sinceId` (the highest id seen at the last catch-up) that the
 * index lacks is added, and deletes newer than index.deleteSeq are applied. Returns the next sinceId.
 */
export function catchUpExternal(sqlite: Database.Database, g: IndexedGallery, index: GalleryIndex, sinceId: number): { added: number; deleted: number; sinceId: number } {
  const rows = new FaceRows(sqlite);
  return sqlite.transaction(() => {
    const seq = rows.deleteSeq(g.id);
    let deleted = 0;
    for (const id of rows.deletedSince(g.id, index.deleteSeq, index.lastFaceId)) if (index.markDeleted(id)) deleted++;
    let added = 0;
    let next = sinceId;
    const v = new Float32Array(g.dimension);
    for (const row of rows.liveAfter(g.id, sinceId)) {
      next = row.id;
      if (index.vector(row.id) !== null) continue;
      index.add(row.id, blobToEmbedding(row.embedding, v));
      added++;
    }
    index.deleteSeq = seq;
    return { added, deleted, sinceId: next };
  })();
}

/** Builds a gallery's index from its live faces in the database, in this thread. */
export function buildFromDatabase(sqlite: Database.Database, g: IndexedGallery): GalleryIndex {
  const rows = new FaceRows(sqlite);
  const live = rows.liveCount(g.id);
  const index = GalleryIndex.create(g, Math.ceil(live * 1.25));
  catchUp(sqlite, g, index);
  return index;
}

/**
 * Opens a gallery's index: the snapshot if it is intact, caught up with the database; otherwise
 * (missing, corrupt, stale parameters, or disagreeing with the database) a rebuild from the database,
 * saved at once so the next open is fast. `dir` null keeps the index in memory only.
 */
export function openGalleryIndex(sqlite: Database.Database, g: IndexedGallery, dir: string | null): OpenedIndex {
  let reason = 'in-memory database';
  if (dir !== null) {
    const found = readSnapshotMeta(dir, g);
    if ('meta' in found) {
      try {
        const index = GalleryIndex.fromFile(g, join(dir, found.meta.file), found.meta);
        removeStaleFiles(dir, g.id, found.meta.file);
        const { replayed, deletesApplied } = catchUp(sqlite, g, index);
        const dbLive = new FaceRows(sqlite).liveCount(g.id);
        if (index.liveCount === dbLive) return { index, how: 'snapshot', replayed, deletesApplied };
        reason = `snapshot disagrees with the database (${index.liveCount} live in index, ${dbLive} in database)`;
      } catch (e) {
        reason = `index file unreadable: ${(e as Error).message}`;
      }
    } else {
      reason = found.reason;
    }
  }
  const index = buildFromDatabase(sqlite, g);
  if (dir !== null) index.save(dir, g.id);
  return { index, how: 'rebuilt', reason, replayed: index.size, deletesApplied: 0 };
}

// The rebuild worker is plain JavaScript evaluated in a worker thread, so it runs the same way
// under tsx, vitest and the compiled build (a .ts worker file would need a loader in the worker).
// It reads the gallery's live faces from its own read-only connection inside one read transaction,
// builds a fresh graph, writes and fsyncs it, and reports which database state it reflects.
const REBUILD_WORKER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const Database = require(w.sqliteModule);
const hnswlib = require(w.hnswModule);
const fs = require('node:fs');
const crypto = require('node:crypto');
const db = new Database(w.dbPath, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.exec('BEGIN');
const deleteSeq = db.prepare('SELECT delete_seq AS s FROM galleries WHERE id = ?').get(w.galleryId).s;
const maxId = db.prepare('SELECT COALESCE(MAX(id), 0) AS m FROM faces WHERE gallery_id = ?').get(w.galleryId).m;
const live = db.prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND deleted = 0 AND id <= ?').get(w.galleryId, maxId).n;
const index = new hnswlib.HierarchicalNSW('ip', w.dimension);
index.initIndex(Math.max(1024, Math.ceil(live * 1.25)), w.m, w.efConstruction, 100);
const v = new Array(w.dimension);
for (const row of db.prepare('SELECT id, embedding FROM faces WHERE gallery_id = ? AND deleted = 0 AND id <= ? ORDER BY id').iterate(w.galleryId, maxId)) {
  const b = row.embedding;
  for (let i = 0; i < w.dimension; i++) v[i] = b.readFloatLE(i * 4);
  index.addPoint(v, row.id);
}
db.exec('COMMIT');
db.close();
const tmp = w.path + '.tmp';
index.writeIndexSync(tmp);
const fd = fs.openSync(tmp, 'r+'); fs.fsyncSync(fd); fs.closeSync(fd);
const bytes = fs.statSync(tmp).size;
const sha256 = crypto.createHash('sha256').update(fs.readFileSync(tmp)).digest('hex');
fs.renameSync(tmp, w.path);
parentPort.postMessage({ lastFaceId: maxId, deleteSeq, count: index.getCurrentCount(), bytes, sha256 });
`;

export interface BackgroundRebuild {
  promise: Promise<GalleryIndex>;
  cancel(): Promise<void>;
}

/**
 * Rebuilds a gallery's index in a worker thread from the database file at `dbPath`. The promise
 * resolves to the new index loaded from the worker's file; the caller catches it up with the
 * database (catchUp) and swaps it in, then saves a sidecar for it.
 */
export function rebuildInBackground(dbPath: string, g: IndexedGallery, dir: string): BackgroundRebuild {
  mkdirSync(dir, { recursive: true });
  const require = createRequire(import.meta.url);
  const file = `g${g.id}-rebuild-${randomBytes(4).toString('hex')}.hnsw`;
  const path = join(dir, file);
  const worker = new Worker(REBUILD_WORKER_SOURCE, {
    eval: true,
    workerData: {
      sqliteModule: require.resolve('better-sqlite3'),
      hnswModule: require.resolve('hnswlib-node'),
      dbPath,
      galleryId: g.id,
      dimension: g.dimension,
      m: g.m,
      efConstruction: g.efConstruction,
      path,
    },
  });
  let cancelled = false;
  const promise = new Promise<GalleryIndex>((resolve, reject) => {
    worker.once('message', (m: { lastFaceId: number; deleteSeq: number; count: number; bytes: number; sha256: string }) => {
      const meta: SnapshotMeta = {
        format: SNAPSHOT_FORMAT,
        galleryId: g.id,
        file,
        bytes: m.bytes,
        sha256: m.sha256,
        lastFaceId: m.lastFaceId,
        deleteSeq: m.deleteSeq,
        count: m.count,
        deletedCount: 0,
        dimension: g.dimension,
        m: g.m,
        efConstruction: g.efConstruction,
        generation: g.generation ?? 0,
        savedAt: new Date().toISOString(),
      };
      try {
        resolve(GalleryIndex.fromFile(g, path, meta));
      } catch (e) {
        reject(new CosfaceError('INDEX_ERROR', `rebuilt index for gallery ${g.id} unreadable`, { cause: e }));
      }
    });
    worker.once('error', (e) => reject(new CosfaceError('INDEX_ERROR', `index rebuild failed: ${e.message}`, { cause: e })));
    worker.once('exit', (code) => {
      if (cancelled) reject(new CosfaceError('INDEX_ERROR', 'index rebuild cancelled'));
      else if (code !== 0) reject(new CosfaceError('INDEX_ERROR', `index rebuild worker exited with ${code}`));
    });
  });
  return {
    promise,
    async cancel() {
      cancelled = true;
      await worker.terminate();
      for (const p of [path, path + '.tmp']) if (existsSync(p)) unlinkSync(p);
    },
  };
}

/** Points the sidecar at an index file written by the rebuild worker (after the swap). */
export function adoptRebuiltSnapshot(dir: string, galleryId: number, index: GalleryIndex): void {
  const meta = index.snapshot;
  if (!meta) return;
  // The adopted file reflects the worker's database state; changes applied since are replayed on
  // open like any other, so the sidecar keeps the worker's lastFaceId/deleteSeq.
  writeSidecar(dir, galleryId, meta);
  removeStaleFiles(dir, galleryId, meta.file);
}
