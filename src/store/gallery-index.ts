// The HNSW index of one gallery: derived state rebuilt or replayed from the database, snapshotted
// to disk (index files + sidecar JSON naming the last face it contains), rebuilt in the background
// when too many of its entries are deleted. A large gallery is several graphs (shards, face id
// modulo the shard count), each built and then kept by a worker thread of its own (hnsw-shards.ts):
// hnswlib inserts into and searches one graph on one thread only, so the shards are built,
// searched, added to and saved at once, and a search merges their results by score.
import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CosfaceError, isCosfaceError } from '../errors.js';
import { blobToEmbedding } from './embedding.js';
import { fsyncFile, LocalShard, sha256File, startShardWorker, waitAll, type Shard, type WorkerShard, type WrittenShard } from './hnsw-shards.js';

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

/**
 * Galleries with at least this many live faces are built as SHARDS graphs in parallel (worker
 * threads) when they are built from scratch (open without a snapshot, rebuild, bulk build). Measured
 * in BENCHMARKS.md ("Search"): hnswlib inserts into one graph on one thread, so a single graph of 1M
 * faces takes about an hour here; two built side by side take half as long per face.
 */
export const SHARD_FROM = 200_000;

/**
 * The least graph degree (hnswlib's M) of a sharded gallery's graphs. At 1M faces (BENCHMARKS.md
 * "Search", 2026-12-06) M = 48 reaches recall@1 0.99 with half the beam M = 32 needs (ef 256 against
 * 512): 2.0 against 2.4 ms a query, for 16% more memory per face and a 1.2x slower build.
 */
export const SHARDED_MIN_M = 48;

/** The HNSW parameters a gallery's graphs are built with when it is `shards` graphs. */
export function graphParams<T extends { m: number }>(g: T, shards: number): T {
  return shards > 1 && g.m < SHARDED_MIN_M ? { ...g, m: SHARDED_MIN_M } : g;
}

/** How many graphs a gallery of `liveFaces` faces is built as. Depends on the size only, not on the machine. */
export function shardCount(liveFaces: number, shardFrom = SHARD_FROM): number {
  return liveFaces >= shardFrom ? 2 : 1;
}

/** Terminates the worker threads of an index that was dropped without close(). */
const unclosed = new FinalizationRegistry<Shard[]>((shards) => {
  for (const s of shards) s.close();
});

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
  private closed = false;

  private constructor(
    readonly params: HnswParams,
    /** One graph per shard; face id f lives in shards[f % shards.length]. */
    private readonly shards: Shard[],
    lastFaceId: number,
    deleteSeq: number,
    deletedCount: number,
  ) {
    this.lastFaceId = lastFaceId;
    this.deleteSeq = deleteSeq;
    this.deletedCount = deletedCount;
    if (shards.length > 1) unclosed.register(this, shards, this);
  }

  /** An empty single graph in this thread. */
  static create(params: HnswParams, capacity: number): GalleryIndex {
    return new GalleryIndex(params, [LocalShard.create(params.dimension, capacity, params.m, params.efConstruction)], 0, 0, 0);
  }

  /**
   * Loads the index files of a snapshot written by save() or by build workers (in `dir`): one file
   * into this thread, several each into a worker thread of its own (read in parallel). Throws if
   * hnswlib rejects one.
   */
  static async fromFile(params: HnswParams, dir: string, meta: SnapshotMeta): Promise<GalleryIndex> {
    const parts = snapshotParts(meta);
    let shards: Shard[];
    if (parts.length === 1) shards = [LocalShard.read(params.dimension, join(dir, parts[0]!.file))];
    else {
      const started = parts.map((p) => startShardWorker(params, { mode: 'load', path: join(dir, p.file) }, { serve: true }));
      try {
        // The first failure ends the load: the other threads are stopped, not waited for.
        shards = (await Promise.all(started.map((s) => s.ready))).map((r) => r.shard!);
      } catch (e) {
        for (const s of started) void s.worker.terminate();
        throw e;
      }
    }
    parts.forEach((p, i) => {
      if (shards[i]!.count !== p.count) {
        for (const s of shards) s.close();
        throw new Error(`index file ${p.file} holds ${shards[i]!.count} entries, sidecar says ${p.count}`);
      }
    });
    const index = new GalleryIndex(params, shards, meta.lastFaceId, meta.deleteSeq, meta.deletedCount);
    index.snapshot = meta;
    return index;
  }

  /** An index over shards built by workers (buildShards). */
  static fromShards(params: HnswParams, shards: Shard[], meta: SnapshotMeta): GalleryIndex {
    const index = new GalleryIndex(params, shards, meta.lastFaceId, meta.deleteSeq, meta.deletedCount);
    index.snapshot = meta;
    return index;
  }

  /**
   * True once a shard's worker thread has died or stopped answering (hnsw-shards.ts): the index
   * cannot answer any more and is to be dropped and reopened (snapshot + replay from the database).
   */
  get lost(): boolean {
    return this.shards.some((s) => s.lost);
  }

  /** Graphs this index is made of (1, or the shard count of a large gallery). */
  get shardCount(): number {
    return this.shards.length;
  }
  /** Entries in the graph, deleted ones included. */
  get size(): number {
    let n = 0;
    for (const h of this.shards) n += h.count;
    return n;
  }
  get liveCount(): number {
    return this.size - this.deletedCount;
  }
  get capacity(): number {
    let n = 0;
    for (const h of this.shards) n += h.maxElements;
    return n;
  }
  get deletedFraction(): number {
    return this.size === 0 ? 0 : this.deletedCount / this.size;
  }

  private shardOf(faceId: number): Shard {
    return this.shards[faceId % this.shards.length]!;
  }

  /** Adds a unit vector under its face id, growing the capacity (doubling) when full. */
  add(faceId: number, v: Float32Array): void {
    this.addMany([{ id: faceId, v }]);
  }

  /**
   * Adds unit vectors under their face ids; a sharded index adds to every shard at once (each
   * shard's faces in order on its own thread).
   */
  addMany(faces: readonly { id: number; v: Float32Array }[]): void {
    if (faces.length === 0) return;
    const dim = this.params.dimension;
    const per = this.shards.map(() => [] as number[]);
    for (const f of faces) per[f.id % this.shards.length]!.push(f.id);
    const byId = new Map(faces.map((f) => [f.id, f.v]));
    const calls = this.shards.map((s, i) => {
      const ids = per[i]!;
      const vectors = new Float32Array(ids.length * dim);
      ids.forEach((id, r) => vectors.set(byId.get(id)!, r * dim));
      return s.add(ids, vectors);
    });
    try {
      waitAll(calls);
    } finally {
      for (const f of faces) if (f.id > this.lastFaceId) this.lastFaceId = f.id;
      this.unsavedChanges += faces.length;
    }
  }

  /** Marks a face deleted; false when it was not in the graph or already deleted. */
  markDeleted(faceId: number): boolean {
    if (!this.shardOf(faceId).markDelete(faceId)) return false;
    this.deletedCount++;
    this.unsavedChanges++;
    return true;
  }

  /**
   * Approximate k nearest faces by inner product, best first. A sharded index searches every shard
   * at once (each on its own thread) with the same beam and merges the results by score.
   */
  search(probe: Float32Array, k: number, ef = this.params.ef): { faceIds: number[]; scores: number[] } {
    if (k <= 0 || this.liveCount === 0) return { faceIds: [], scores: [] };
    // hnswlib returns fewer than k when deleted entries leave fewer live ones.
    const hits = waitAll(this.shards.filter((s) => s.count > 0).map((s) => s.search(probe, Math.min(k, s.maxElements), Math.max(ef, k))));
    if (hits.length === 1) return { faceIds: hits[0]!.ids, scores: hits[0]!.scores };
    const found: { faceId: number; score: number }[] = [];
    for (const h of hits) for (let i = 0; i < h.ids.length; i++) found.push({ faceId: h.ids[i]!, score: h.scores[i]! });
    found.sort((a, b) => b.score - a.score || a.faceId - b.faceId);
    const top = found.slice(0, k);
    return { faceIds: top.map((f) => f.faceId), scores: top.map((f) => f.score) };
  }

  /** All face ids in the graph and whether each is live (for consistency checks). */
  entries(): { faceId: number; live: boolean }[] {
    return this.shards.flatMap((s) => s.entries());
  }

  /** The stored vector of a live face, or null. */
  vector(faceId: number): Float32Array | null {
    return this.shardOf(faceId).point(faceId);
  }

  /**
   * Writes a snapshot crash-safely: each index file goes to a new file (temp, fsync, rename; the
   * shards write theirs at once), then the sidecar is replaced atomically (temp, fsync, rename),
   * then the old files are removed. A crash at any point leaves either the old sidecar with its
   * intact files or the new set.
   */
  save(dir: string, galleryId: number): SnapshotMeta {
    mkdirSync(dir, { recursive: true });
    const tag = `g${galleryId}-${this.lastFaceId}-${randomBytes(4).toString('hex')}`;
    const files = this.shards.map((_, i) => (this.shards.length === 1 ? `${tag}.hnsw` : `${tag}-s${i}.hnsw`));
    const written = waitAll(this.shards.map((s, i) => s.write(join(dir, files[i]! + '.tmp'))));
    const parts: SnapshotPart[] = written.map((w, i) => {
      renameSync(join(dir, files[i]! + '.tmp'), join(dir, files[i]!));
      return { file: files[i]!, ...w };
    });
    const meta = snapshotMeta(galleryId, this.params, parts, this.lastFaceId, this.deleteSeq, this.deletedCount);
    writeSidecar(dir, galleryId, meta);
    this.snapshot = meta;
    this.unsavedChanges = 0;
    removeStaleFiles(dir, galleryId, parts.map((p) => p.file));
    return meta;
  }

  /** Frees the graphs (a sharded index's worker threads end). The index is unusable afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    unclosed.unregister(this);
    for (const s of this.shards) s.close();
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
  const graphs = Array.isArray(meta.parts) ? meta.parts.length : 1;
  if (meta.dimension !== g.dimension || meta.m !== graphParams(g, graphs).m || meta.efConstruction !== g.efConstruction) {
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
  /** At most `limit` live faces above afterId, in id order. */
  liveAfterPage(galleryId: number, afterId: number, limit: number): { id: number; embedding: Buffer }[] {
    return this.sqlite
      .prepare('SELECT id, embedding FROM faces WHERE gallery_id = ? AND id > ? AND deleted = 0 ORDER BY id LIMIT ?')
      .all(galleryId, afterId, limit) as { id: number; embedding: Buffer }[];
  }
  deletedSince(galleryId: number, deleteSeq: number, uptoId: number): number[] {
    return (
      this.sqlite
        .prepare('SELECT id FROM faces WHERE gallery_id = ? AND deleted = 1 AND delete_seq > ? AND id <= ?')
        .all(galleryId, deleteSeq, uptoId) as { id: number }[]
    ).map((r) => r.id);
  }
}

const REPLAY_BATCH = 1000;

/**
 * Adds the live faces above index.lastFaceId a batch at a time, yielding to the event loop between
 * batches, until less than a batch is left; catchUp then replays the rest (and the deletes) in one
 * short read transaction. For a background rebuild's swap: while the rebuild ran, a server kept
 * adding faces to the old index (41,000 during the 2-shard build at 200k faces over the HTTP batch
 * route), and replaying them all in one synchronous catchUp blocked the server long enough for a
 * client's request to fail (2026-12-06, `bench enroll-http --faces 1000000`).
 */
export async function catchUpAddsYielding(sqlite: Database.Database, g: IndexedGallery, index: GalleryIndex): Promise<number> {
  const faceRows = new FaceRows(sqlite);
  let added = 0;
  for (;;) {
    const rows = faceRows.liveAfterPage(g.id, index.lastFaceId, REPLAY_BATCH);
    if (rows.length < REPLAY_BATCH) return added;
    index.addMany(rows.map((r) => ({ id: r.id, v: blobToEmbedding(r.embedding) })));
    added += rows.length;
    await new Promise((resolve) => setImmediate(resolve));
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
    // In batches, so a sharded index adds to its shards at once.
    let replayed = 0;
    let batch: { id: number; v: Float32Array }[] = [];
    for (const row of rows.liveAfter(g.id, index.lastFaceId)) {
      batch.push({ id: row.id, v: blobToEmbedding(row.embedding) });
      if (batch.length === REPLAY_BATCH) {
        index.addMany(batch);
        replayed += batch.length;
        batch = [];
      }
    }
    index.addMany(batch);
    replayed += batch.length;
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
    const index = await buildShards(graphParams(g, shards), source, { lastFaceId: state.maxId, deleteSeq: state.deleteSeq }, shards, target).promise;
    try {
      catchUp(sqlite, g, index);
    } catch (e) {
      index.close();
      throw e;
    }
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
        let index: GalleryIndex | null = null;
        try {
          index = await GalleryIndex.fromFile(graphParams(g, snapshotParts(found.meta).length), dir, found.meta);
          removeStaleFiles(dir, g.id, snapshotParts(found.meta).map((p) => p.file));
          const { replayed, deletesApplied } = catchUp(sqlite, g, index);
          const dbLive = new FaceRows(sqlite).liveCount(g.id);
          if (index.liveCount === dbLive) return { index, how: 'snapshot', replayed, deletesApplied };
          reason = `snapshot disagrees with the database (${index.liveCount} live in index, ${dbLive} in database)`;
        } catch (e) {
          // A shard's thread that ended or hung while loading (or replaying) says nothing about the
          // files, which passed their checksums: the call fails and the next one loads them again,
          // rather than rebuilding a large gallery (minutes) for what may be a passing fault.
          if (isCosfaceError(e, 'INDEX_UNAVAILABLE')) {
            index?.close();
            throw e;
          }
          reason = `index file unreadable: ${(e as Error).message}`;
        }
        index?.close();
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

export interface BackgroundRebuild {
  promise: Promise<GalleryIndex>;
  cancel(): Promise<void>;
}

/**
 * Builds `shards` graphs at once, one worker thread each (startShardWorker), into files in `dir`,
 * as one index whose `snapshot` names those files and the database state they reflect (`state`).
 * Several shards stay in their workers, which then serve the index's calls; a single graph is
 * loaded into this thread and its worker ends. A failure or cancel() before the index is made
 * terminates the workers and removes their files. A `background` build's workers are unref'd: it
 * never keeps the process alive by itself (files a killed build leaves are removed on the next
 * open); a build someone awaits keeps it.
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
  const tag = `g${g.id}-build-${randomBytes(4).toString('hex')}`;
  const files = Array.from({ length: shards }, (_, i) => (shards === 1 ? `${tag}.hnsw` : `${tag}-s${i}.hnsw`));
  let cancelled = false;
  let made = false;
  const progress = files.map(() => 0);
  const started = files.map((file, shard) =>
    startShardWorker(g, { mode: 'build', ...source, shard, shards, path: join(dir, file) }, {
      serve: shards > 1,
      ...(o.background ? { background: true } : {}),
      onProgress: (added) => {
        progress[shard] = added;
        o.onProgress?.(progress.reduce((a, b) => a + b, 0));
      },
    }),
  );
  const removeFiles = () => {
    for (const f of files) for (const p of [join(dir, f), join(dir, f + '.tmp')]) if (existsSync(p)) unlinkSync(p);
  };
  // Bounded: a thread stuck in native code ends only once it returns to JavaScript (its files are
  // removed meanwhile; terminated, it never renames one into place).
  const stopAll = () => Promise.race([Promise.all(started.map((s) => s.worker.terminate())), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  const promise = (async () => {
    // The first failure ends the build: a thread that dies early does not wait for the others' minutes.
    let built: { shard: WorkerShard | null; part: WrittenShard | null }[] = [];
    let failure: { reason: unknown } | null = null;
    try {
      built = await Promise.all(started.map((s) => s.ready));
    } catch (reason) {
      failure = { reason };
    }
    if (failure || cancelled) {
      await stopAll();
      removeFiles();
      if (cancelled) throw new CosfaceError('INDEX_ERROR', 'index build cancelled');
      const e = failure!.reason as Error;
      // A thread that ended or hung (INDEX_UNAVAILABLE) may well build the next time; an exception is the build's own error.
      throw new CosfaceError(isCosfaceError(e, 'INDEX_UNAVAILABLE') ? 'INDEX_UNAVAILABLE' : 'INDEX_ERROR', `index build failed: ${e.message}`, { cause: e });
    }
    const parts = built.map((b, i) => ({ file: files[i]!, ...b.part! }));
    const meta = snapshotMeta(g.id, g, parts, state.lastFaceId, state.deleteSeq, 0);
    made = true;
    if (shards > 1) return GalleryIndex.fromShards({ ...g }, built.map((b) => b.shard!), meta);
    try {
      const index = await GalleryIndex.fromFile({ ...g }, dir, meta);
      index.unsavedChanges = 0;
      return index;
    } catch (e) {
      removeFiles();
      throw new CosfaceError('INDEX_ERROR', `built index for gallery ${g.id} unreadable`, { cause: e });
    }
  })();
  return {
    promise,
    async cancel() {
      // Once the index is made its workers are its shards: whoever received it closes it.
      if (made) return;
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
  const shards = shardCount(state.live, shardFrom);
  return buildShards(graphParams(g, shards), { dbPath, galleryId: g.id, maxId: state.maxId }, { lastFaceId: state.maxId, deleteSeq: state.deleteSeq }, shards, dir, {
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
