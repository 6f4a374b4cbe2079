// The HNSW index of one gallery: derived state rebuilt or replayed from the database, snapshotted
// to disk (index files + sidecar JSON naming the last face it contains), rebuilt in the background
// when too many of its entries are deleted. A large gallery is several graphs (shards, face id
// modulo the shard count), built in parallel on worker threads and searched one after another
// with the results merged: hnswlib inserts into one graph on one thread only.
import type Database from 'better-sqlite3';
import hnswlib from 'hnswlib-node';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
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
  count: number; // entries in the files, deleted ones included
  deletedCount: number;
  /**
   * A sharded index: every shard's file, shard i holding the faces with id % parts.length === i
   * (`file`, `bytes` and `sha256` then repeat the first one's). Absent for a single graph.
   */
  parts?: SnapshotPart[];
  dimension: number;
  m: number;
  efConstruction: number;
  /** The gallery generation the vectors belong to (absent in snapshots written before model switches existed: 0). */
  generation?: number;
  savedAt: string;
}

export interface SnapshotPart {
  file: string;
  bytes: number;
  sha256: string;
  count: number;
}

const SNAPSHOT_FORMAT = 1;
const MIN_CAPACITY = 1024;
// hnswlib's fixed seed, so two builds over the same faces give the same graph.
const RANDOM_SEED = 100;

/**
 * Galleries with at least this many live faces are built as SHARDS graphs in parallel (worker
 * threads) when they are built from scratch (open without a snapshot, rebuild, bulk build). Measured
 * in BENCHMARKS.md ("Search"): hnswlib inserts into one graph on one thread, so a single graph of 1M
 * faces takes about an hour here; two built side by side take half as long per face.
 */
export const SHARD_FROM = 200_000;

/** How many graphs a gallery of `liveFaces` faces is built as. Depends on the size only, not on the machine. */
export function shardCount(liveFaces: number, shardFrom = SHARD_FROM): number {
  return liveFaces >= shardFrom ? 2 : 1;
}

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
    /** One graph per shard; face id f lives in shards[f % shards.length]. */
    private readonly shards: Hnsw[],
    lastFaceId: number,
    deleteSeq: number,
    deletedCount: number,
  ) {
    this.lastFaceId = lastFaceId;
    this.deleteSeq = deleteSeq;
    this.deletedCount = deletedCount;
    for (const h of shards) h.setEf(params.ef);
  }

  static create(params: HnswParams, capacity: number, shards = 1): GalleryIndex {
    const graphs: Hnsw[] = [];
    for (let i = 0; i < shards; i++) {
      const hnsw = new hnswlib.HierarchicalNSW('ip', params.dimension);
      hnsw.initIndex(Math.max(MIN_CAPACITY, Math.ceil(capacity / shards)), params.m, params.efConstruction, RANDOM_SEED);
      graphs.push(hnsw);
    }
    return new GalleryIndex(params, graphs, 0, 0, 0);
  }

  /** Loads the index files of a snapshot written by save() or by build workers (in `dir`). Throws if hnswlib rejects one. */
  static fromFile(params: HnswParams, dir: string, meta: SnapshotMeta): GalleryIndex {
    const parts = snapshotParts(meta);
    const graphs = parts.map((p) => {
      const hnsw = new hnswlib.HierarchicalNSW('ip', params.dimension);
      hnsw.readIndexSync(join(dir, p.file));
      if (hnsw.getNumDimensions() !== params.dimension || hnsw.getCurrentCount() !== p.count) {
        throw new Error(`index file ${p.file} holds ${hnsw.getCurrentCount()} x ${hnsw.getNumDimensions()}, sidecar says ${p.count} x ${params.dimension}`);
      }
      return hnsw;
    });
    const index = new GalleryIndex(params, graphs, meta.lastFaceId, meta.deleteSeq, meta.deletedCount);
    index.snapshot = meta;
    return index;
  }

  /** Graphs this index is made of (1, or the shard count of a large gallery). */
  get shardCount(): number {
    return this.shards.length;
  }
  /** Entries in the graph, deleted ones included. */
  get size(): number {
    let n = 0;
    for (const h of this.shards) n += h.getCurrentCount();
    return n;
  }
  get liveCount(): number {
    return this.size - this.deletedCount;
  }
  get capacity(): number {
    let n = 0;
    for (const h of this.shards) n += h.getMaxElements();
    return n;
  }
  get deletedFraction(): number {
    return this.size === 0 ? 0 : this.deletedCount / this.size;
  }

  private shardOf(faceId: number): Hnsw {
    return this.shards[faceId % this.shards.length]!;
  }

  /** Adds a unit vector under its face id, growing the capacity (doubling) when full. */
  add(faceId: number, v: Float32Array): void {
    const h = this.shardOf(faceId);
    if (h.getCurrentCount() >= h.getMaxElements()) h.resizeIndex(Math.max(MIN_CAPACITY, h.getMaxElements() * 2));
    h.addPoint(Array.from(v), faceId);
    if (faceId > this.lastFaceId) this.lastFaceId = faceId;
    this.unsavedChanges++;
  }

  /** Marks a face deleted; false when it was not in the graph or already deleted. */
  markDeleted(faceId: number): boolean {
    try {
      this.shardOf(faceId).markDelete(faceId);
    } catch {
      // hnswlib throws for "Label not found" and "already deleted": both mean nothing to do.
      return false;
    }
    this.deletedCount++;
    this.unsavedChanges++;
    return true;
  }

  /**
   * Approximate k nearest faces by inner product, best first. A sharded index searches every shard
   * with the same beam and merges the results by score.
   */
  search(probe: Float32Array, k: number, ef = this.params.ef): { faceIds: number[]; scores: number[] } {
    if (k <= 0 || this.liveCount === 0) return { faceIds: [], scores: [] };
    const q = Array.from(probe);
    const found: { faceId: number; score: number }[] = [];
    for (const h of this.shards) {
      if (h.getCurrentCount() === 0) continue;
      h.setEf(Math.max(ef, k));
      // hnswlib returns fewer than k when deleted entries leave fewer live ones.
      const r = h.searchKnn(q, Math.min(k, h.getMaxElements()));
      // hnswlib's 'ip' distance is 1 - dot.
      for (let i = 0; i < r.neighbors.length; i++) found.push({ faceId: r.neighbors[i]!, score: 1 - r.distances[i]! });
    }
    if (this.shards.length > 1) found.sort((a, b) => b.score - a.score || a.faceId - b.faceId);
    const top = found.slice(0, k);
    return { faceIds: top.map((f) => f.faceId), scores: top.map((f) => f.score) };
  }

  /** All face ids in the graph and whether each is live (for consistency checks). */
  entries(): { faceId: number; live: boolean }[] {
    return this.shards.flatMap((h) =>
      h.getIdsList().map((faceId) => {
        try {
          h.getPoint(faceId); // throws for deleted labels
          return { faceId, live: true };
        } catch {
          return { faceId, live: false };
        }
      }),
    );
  }

  /** The stored vector of a live face, or null. */
  vector(faceId: number): Float32Array | null {
    try {
      return Float32Array.from(this.shardOf(faceId).getPoint(faceId));
    } catch {
      return null;
    }
  }

  /**
   * Writes a snapshot crash-safely: each index file goes to a new file (temp, fsync, rename), then
   * the sidecar is replaced atomically (temp, fsync, rename), then the old files are removed. A crash
   * at any point leaves either the old sidecar with its intact files or the new set.
   */
  save(dir: string, galleryId: number): SnapshotMeta {
    mkdirSync(dir, { recursive: true });
    const tag = `g${galleryId}-${this.lastFaceId}-${randomBytes(4).toString('hex')}`;
    const parts: SnapshotPart[] = this.shards.map((h, i) => {
      const file = this.shards.length === 1 ? `${tag}.hnsw` : `${tag}-s${i}.hnsw`;
      const tmp = join(dir, file + '.tmp');
      h.writeIndexSync(tmp);
      fsyncFile(tmp);
      const part = { file, bytes: statSync(tmp).size, sha256: sha256File(tmp), count: h.getCurrentCount() };
      renameSync(tmp, join(dir, file));
      return part;
    });
    const meta = snapshotMeta(galleryId, this.params, parts, this.lastFaceId, this.deleteSeq, this.deletedCount);
    writeSidecar(dir, galleryId, meta);
    this.snapshot = meta;
    this.unsavedChanges = 0;
    removeStaleFiles(dir, galleryId, parts.map((p) => p.file));
    return meta;
  }
}

function snapshotMeta(galleryId: number, params: HnswParams, parts: SnapshotPart[], lastFaceId: number, deleteSeq: number, deletedCount: number): SnapshotMeta {
  return {
    format: SNAPSHOT_FORMAT,
    galleryId,
    file: parts[0]!.file,
    bytes: parts[0]!.bytes,
    sha256: parts[0]!.sha256,
    lastFaceId,
    deleteSeq,
    count: parts.reduce((n, p) => n + p.count, 0),
    deletedCount,
    dimension: params.dimension,
    m: params.m,
    efConstruction: params.efConstruction,
    generation: params.generation ?? 0,
    savedAt: new Date().toISOString(),
    ...(parts.length > 1 ? { parts } : {}),
  };
}

/** The index files a snapshot is made of. */
export function snapshotParts(meta: SnapshotMeta): SnapshotPart[] {
  return meta.parts ?? [{ file: meta.file, bytes: meta.bytes, sha256: meta.sha256, count: meta.count }];
}

export function sidecarPath(dir: string, galleryId: number): string {
  return join(dir, `g${galleryId}.json`);
}

/** Removes a gallery's sidecar and index files (after the gallery is deleted). */
export function removeIndexFiles(dir: string, galleryId: number): void {
  if (!existsSync(dir)) return;
  const side = sidecarPath(dir, galleryId);
  if (existsSync(side)) unlinkSync(side);
  removeStaleFiles(dir, galleryId, []);
}

function writeSidecar(dir: string, galleryId: number, meta: SnapshotMeta): void {
  const path = sidecarPath(dir, galleryId);
  const tmp = path + '.tmp';
  writeFileSync(tmp, JSON.stringify(meta, null, 2));
  fsyncFile(tmp);
  renameSync(tmp, path);
  fsyncDir(dir);
}

/** Deletes this gallery's index files other than those in `keep` (old snapshots, temp files of a crash). */
function removeStaleFiles(dir: string, galleryId: number, keep: readonly string[]): void {
  const prefix = `g${galleryId}-`;
  for (const name of readdirSync(dir)) {
    if (name.startsWith(prefix) && !keep.includes(name)) {
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
  if (meta.parts !== undefined && (!Array.isArray(meta.parts) || meta.parts.length < 2)) return { reason: 'sidecar parts malformed' };
  for (const p of snapshotParts(meta)) {
    const file = join(dir, p.file);
    if (!existsSync(file)) return { reason: `index file ${p.file} missing` };
    if (statSync(file).size !== p.bytes) return { reason: `index file ${p.file} has the wrong size` };
    // The checksum guards hnswlib's loader, which trusts offsets inside the file.
    if (sha256File(file) !== p.sha256) return { reason: `index file ${p.file} checksum mismatch` };
  }
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
  liveCountAfter(galleryId: number, afterId: number): number {
    return (
      this.sqlite.prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND id > ? AND deleted = 0').get(galleryId, afterId) as { n: number }
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

/**
 * Builds a gallery's index from its live faces in the database. A gallery of SHARD_FROM faces or
 * more is built as shardCount(live) graphs in parallel on worker threads (`dbPath` null: the rows
 * are read here and handed to the workers in shared memory); a smaller one in this thread. With
 * `dir`, the files the workers wrote become the gallery's snapshot; otherwise they are removed once
 * loaded.
 */
export async function buildFromDatabase(sqlite: Database.Database, g: IndexedGallery, dbPath: string | null, dir: string | null, shardFrom = SHARD_FROM): Promise<GalleryIndex> {
  const rows = new FaceRows(sqlite);
  const live = rows.liveCount(g.id);
  const shards = shardCount(live, shardFrom);
  if (shards === 1) {
    const index = GalleryIndex.create(g, Math.ceil(live * 1.25));
    catchUp(sqlite, g, index);
    return index;
  }
  // The state the workers build: every live face up to maxId, deletes up to deleteSeq. Whatever
  // changes while they run is caught up afterwards (a face deleted meanwhile may or may not be in
  // a shard; markDeleted treats both alike).
  const state = sqlite.transaction(() => ({
    deleteSeq: rows.deleteSeq(g.id),
    maxId: (sqlite.prepare('SELECT COALESCE(MAX(id), 0) AS m FROM faces WHERE gallery_id = ?').get(g.id) as { m: number }).m,
  }))();
  let source: ShardSource;
  if (dbPath !== null) source = { dbPath, galleryId: g.id, maxId: state.maxId };
  else {
    const ids = new Float64Array(new SharedArrayBuffer(live * 8));
    const vectors = new Float32Array(new SharedArrayBuffer(live * g.dimension * 4));
    let n = 0;
    for (const row of rows.liveAfter(g.id, 0)) {
      if (row.id > state.maxId || n === live) break;
      ids[n] = row.id;
      blobToEmbedding(row.embedding, vectors.subarray(n * g.dimension, (n + 1) * g.dimension));
      n++;
    }
    source = { ids: ids.subarray(0, n), vectors: vectors.subarray(0, n * g.dimension) };
  }
  const target = dir ?? mkdtempSync(join(tmpdir(), 'cosface-index-'));
  try {
    const index = await buildShards(g, source, { lastFaceId: state.maxId, deleteSeq: state.deleteSeq }, shards, target).promise;
    catchUp(sqlite, g, index);
    if (dir !== null) adoptRebuiltSnapshot(dir, g.id, index);
    else index.snapshot = null;
    return index;
  } finally {
    if (dir === null) rmSync(target, { recursive: true, force: true });
  }
}

/**
 * Opens a gallery's index: the snapshot if it is intact, caught up with the database; otherwise
 * (missing, corrupt, stale parameters, or disagreeing with the database) a rebuild from the database
 * (buildFromDatabase: in parallel for a large gallery), saved at once so the next open is fast.
 * `dir` null keeps the index in memory only; `dbPath` null is an in-memory database.
 */
export async function openGalleryIndex(sqlite: Database.Database, g: IndexedGallery, dir: string | null, dbPath: string | null = null, shardFrom = SHARD_FROM): Promise<OpenedIndex> {
  let reason = 'in-memory database';
  if (dir !== null) {
    const found = readSnapshotMeta(dir, g);
    if ('meta' in found) {
      // Bulk enrollment into a large gallery (faces committed while no index was open): more faces
      // to replay one at a time than the snapshot holds, so build the graphs in parallel instead.
      const rows = new FaceRows(sqlite);
      const behind = rows.liveCountAfter(g.id, found.meta.lastFaceId);
      if (shardCount(rows.liveCount(g.id), shardFrom) > 1 && behind > found.meta.count) {
        reason = `snapshot far behind the database (${behind} faces to replay on ${found.meta.count})`;
      } else {
        try {
          const index = GalleryIndex.fromFile(g, dir, found.meta);
          removeStaleFiles(dir, g.id, snapshotParts(found.meta).map((p) => p.file));
          const { replayed, deletesApplied } = catchUp(sqlite, g, index);
          const dbLive = new FaceRows(sqlite).liveCount(g.id);
          if (index.liveCount === dbLive) return { index, how: 'snapshot', replayed, deletesApplied };
          reason = `snapshot disagrees with the database (${index.liveCount} live in index, ${dbLive} in database)`;
        } catch (e) {
          reason = `index file unreadable: ${(e as Error).message}`;
        }
      }
    } else {
      reason = found.reason;
    }
  }
  const index = await buildFromDatabase(sqlite, g, dbPath, dir, shardFrom);
  // A parallel build's files are the snapshot already (what changed since is replayed on open).
  if (dir !== null && !index.snapshot) index.save(dir, g.id);
  return { index, how: 'rebuilt', reason, replayed: index.size, deletesApplied: 0 };
}

/** Where build workers read a gallery's faces: the database file, or vectors in shared memory. */
export type ShardSource =
  | { dbPath: string; galleryId: number; maxId: number }
  | { ids: Float64Array; vectors: Float32Array };

// The build worker is plain JavaScript evaluated in a worker thread, so it runs the same way under
// tsx, vitest and the compiled build (a .ts worker file would need a loader in the worker). It builds
// one shard (the faces with id % shards === shard) from its own read-only connection inside one read
// transaction, or from vectors in shared memory, writes and fsyncs the graph, and reports the file.
const BUILD_WORKER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const hnswlib = require(w.hnswModule);
const fs = require('node:fs');
const crypto = require('node:crypto');
const index = new hnswlib.HierarchicalNSW('ip', w.dimension);
const v = new Array(w.dimension);
let count = 0;
const init = (live) => index.initIndex(Math.max(1024, Math.ceil(live * 1.25)), w.m, w.efConstruction, 100);
if (w.dbPath) {
  const Database = require(w.sqliteModule);
  const db = new Database(w.dbPath, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.exec('BEGIN');
  const where = 'gallery_id = ? AND deleted = 0 AND id <= ? AND id % ? = ?';
  const args = [w.galleryId, w.maxId, w.shards, w.shard];
  init(db.prepare('SELECT COUNT(*) AS n FROM faces WHERE ' + where).get(...args).n);
  for (const row of db.prepare('SELECT id, embedding FROM faces WHERE ' + where + ' ORDER BY id').iterate(...args)) {
    const b = row.embedding;
    for (let i = 0; i < w.dimension; i++) v[i] = b.readFloatLE(i * 4);
    index.addPoint(v, row.id);
    if (++count % 50000 === 0) parentPort.postMessage({ progress: count });
  }
  db.exec('COMMIT');
  db.close();
} else {
  const ids = w.ids;
  const vec = w.vectors;
  let live = 0;
  for (let r = 0; r < ids.length; r++) if (ids[r] % w.shards === w.shard) live++;
  init(live);
  for (let r = 0; r < ids.length; r++) {
    if (ids[r] % w.shards !== w.shard) continue;
    for (let i = 0; i < w.dimension; i++) v[i] = vec[r * w.dimension + i];
    index.addPoint(v, ids[r]);
    if (++count % 50000 === 0) parentPort.postMessage({ progress: count });
  }
}
const tmp = w.path + '.tmp';
index.writeIndexSync(tmp);
const fd = fs.openSync(tmp, 'r+'); fs.fsyncSync(fd); fs.closeSync(fd);
const bytes = fs.statSync(tmp).size;
const hash = crypto.createHash('sha256');
const rfd = fs.openSync(tmp, 'r');
const buf = Buffer.alloc(1 << 20);
for (let n; (n = fs.readSync(rfd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
fs.closeSync(rfd);
fs.renameSync(tmp, w.path);
parentPort.postMessage({ bytes, sha256: hash.digest('hex'), count: index.getCurrentCount() });
`;

export interface BackgroundRebuild {
  promise: Promise<GalleryIndex>;
  cancel(): Promise<void>;
}

/**
 * Builds `shards` graphs at once, one worker thread each, into files in `dir`, and loads them as one
 * index whose `snapshot` names those files and the database state they reflect (`state`). The
 * workers end when their shard is written; a failure or cancel() terminates them all and removes
 * their files. A `background` build's workers are unref'd: it never keeps the process alive by
 * itself (files a killed build leaves are removed on the next open); a build someone awaits keeps it.
 */
export function buildShards(
  g: HnswParams & { id: number },
  source: ShardSource,
  state: { lastFaceId: number; deleteSeq: number },
  shards: number,
  dir: string,
  o: { onProgress?: (added: number) => void; background?: boolean } = {},
): BackgroundRebuild {
  mkdirSync(dir, { recursive: true });
  const require = createRequire(import.meta.url);
  const tag = `g${g.id}-build-${randomBytes(4).toString('hex')}`;
  const files = Array.from({ length: shards }, (_, i) => (shards === 1 ? `${tag}.hnsw` : `${tag}-s${i}.hnsw`));
  let cancelled = false;
  const workers = files.map(
    (file, shard) =>
      new Worker(BUILD_WORKER_SOURCE, {
        eval: true,
        workerData: {
          hnswModule: require.resolve('hnswlib-node'),
          sqliteModule: require.resolve('better-sqlite3'),
          ...source,
          shard,
          shards,
          dimension: g.dimension,
          m: g.m,
          efConstruction: g.efConstruction,
          path: join(dir, file),
        },
      }),
  );
  const removeFiles = () => {
    for (const f of files) for (const p of [join(dir, f), join(dir, f + '.tmp')]) if (existsSync(p)) unlinkSync(p);
  };
  const stopAll = () => Promise.all(workers.map((w) => w.terminate()));
  const progress = files.map(() => 0);
  const built = workers.map((worker, i) => {
    if (o.background) worker.unref();
    return new Promise<SnapshotPart>((resolve, reject) => {
      worker.on('message', (m: { progress: number } | { bytes: number; sha256: string; count: number }) => {
        if ('progress' in m) {
          progress[i] = m.progress;
          o.onProgress?.(progress.reduce((a, b) => a + b, 0));
        } else resolve({ file: files[i]!, ...m });
      });
      worker.once('error', (e) => reject(new CosfaceError('INDEX_ERROR', `index build failed: ${e.message}`, { cause: e })));
      worker.once('exit', (code) => {
        if (cancelled) reject(new CosfaceError('INDEX_ERROR', 'index build cancelled'));
        else if (code !== 0) reject(new CosfaceError('INDEX_ERROR', `index build worker exited with ${code}`));
      });
    });
  });
  const promise = Promise.all(built).then(
    (parts) => {
      const meta = snapshotMeta(g.id, g, parts, state.lastFaceId, state.deleteSeq, 0);
      try {
        const index = GalleryIndex.fromFile({ ...g }, dir, meta);
        index.unsavedChanges = 0;
        return index;
      } catch (e) {
        removeFiles();
        throw new CosfaceError('INDEX_ERROR', `built index for gallery ${g.id} unreadable`, { cause: e });
      }
    },
    async (e: unknown) => {
      await stopAll();
      removeFiles();
      throw e;
    },
  );
  return {
    promise,
    async cancel() {
      cancelled = true;
      await stopAll();
      removeFiles();
    },
  };
}

/**
 * Rebuilds a gallery's index in worker threads (one per shard, shardCount(live)) from the database
 * file at `dbPath`. The promise resolves to the new index loaded from the workers' files; the caller
 * catches it up with the database (catchUp) and swaps it in, then adopts its files as the snapshot.
 */
export function rebuildInBackground(dbPath: string, sqlite: Database.Database, g: IndexedGallery, dir: string, shardFrom = SHARD_FROM): BackgroundRebuild {
  const rows = new FaceRows(sqlite);
  const state = sqlite.transaction(() => ({
    deleteSeq: rows.deleteSeq(g.id),
    maxId: (sqlite.prepare('SELECT COALESCE(MAX(id), 0) AS m FROM faces WHERE gallery_id = ?').get(g.id) as { m: number }).m,
    live: rows.liveCount(g.id),
  }))();
  return buildShards(g, { dbPath, galleryId: g.id, maxId: state.maxId }, { lastFaceId: state.maxId, deleteSeq: state.deleteSeq }, shardCount(state.live, shardFrom), dir, {
    background: true,
  });
}

/** Points the sidecar at index files written by build workers (after the swap). */
export function adoptRebuiltSnapshot(dir: string, galleryId: number, index: GalleryIndex): void {
  const meta = index.snapshot;
  if (!meta) return;
  // The adopted files reflect the workers' database state; changes applied since are replayed on
  // open like any other, so the sidecar keeps the workers' lastFaceId/deleteSeq.
  writeSidecar(dir, galleryId, meta);
  removeStaleFiles(dir, galleryId, snapshotParts(meta).map((p) => p.file));
}
