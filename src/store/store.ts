// The face store: galleries of identities and their face embeddings in SQLite (the source of
// truth), one HNSW index per gallery (derived state), 1:N identify and 1:1 verify with calibrated
// open-set thresholds.
import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CosfaceError } from '../errors.js';
import { openDatabase, type Db, type OpenedDb } from '../db/open-db.js';
import {
  faces,
  galleries,
  identities,
  modelThresholds,
  type FaceBox,
  type FaceKeypoints,
  type GalleryRow,
  type IdentityRow,
} from '../db/schema.js';
import { blobToEmbedding, embeddingToBlob, toUnitVector } from './embedding.js';
import { defaultScorer } from './default-scorer.js';
import type { ExactScorer } from './exact-scorer.js';
import {
  adoptRebuiltSnapshot,
  buildFromDatabase,
  catchUp,
  catchUpExternal,
  openGalleryIndex,
  rebuildInBackground,
  removeIndexFiles,
  type BackgroundRebuild,
  type GalleryIndex,
  type IndexedGallery,
} from './gallery-index.js';
import { calibrate, DEFAULT_FARS, type Calibration, type ScoredPair } from './thresholds.js';
import { VectorMatrix } from './vector-matrix.js';
import { checkExternalId, checkGalleryName } from './names.js';

export type { FaceBox, FaceKeypoints } from '../db/schema.js';
export type { ExactScorer } from './exact-scorer.js';
export type { Calibration, ScoredPair } from './thresholds.js';

/**
 * HNSW defaults, chosen by measurement (src/bench/search-bench.ts, 100k 128-d identity clusters,
 * 300 genuine probes): M=16 reached recall@1 0.92 at ef=64 and needed ef=512 for 0.997 (9.8 ms);
 * M=32 reached 0.990 at ef=64 and 1.000 at ef=128 (2.0 ms) for about 130 more bytes per vector.
 */
export const DEFAULT_HNSW = { m: 32, efConstruction: 200, ef: 128 } as const;

/**
 * The search beam a query uses when it does not set one: the gallery's ef, raised for large
 * galleries. Measured with the defaults (M=32, efConstruction=200, docs in BENCHMARKS.md): recall@1
 * 1.000 at ef=128 for 100k faces, but at 1M only 0.87 at ef=128, 0.95 at 256 and 0.995 at 512
 * (5.0 ms, still 7x faster than the exact scan). The beam needed grows about 4x per 10x faces, so
 * above 100k the floor is 128 * 4^log10(n / 100k) (512 at 1M, 2048 at 10M), capped at 4096.
 */
export function effectiveEf(galleryEf: number, liveFaces: number): number {
  const floor = liveFaces > 100_000 ? Math.min(4096, Math.round(128 * 4 ** Math.log10(liveFaces / 100_000))) : 0;
  return Math.max(galleryEf, floor);
}

export interface StoreOptions {
  /** Folder for index snapshots; default `<db path>.index`; null keeps indexes in memory only. */
  indexDir?: string | null;
  /** SQLite durability; see OpenDbOptions. Default 'full'. */
  synchronous?: 'full' | 'normal';
  /**
   * Exact top-k scorer for scans and re-ranking; default: the WASM backend's for large scans (the
   * TypeScript loop for small ones, and everywhere when the WASM module cannot start).
   */
  scorer?: ExactScorer;
  /** Galleries with at most this many live faces are always searched exactly. Default 2000. */
  exactBelow?: number;
  /** Write an index snapshot after this many adds/deletes since the last one. Default 10000. */
  checkpointEvery?: number;
  /** Rebuild an index in the background once this fraction of its entries is deleted. Default 0.25. */
  rebuildDeletedFraction?: number;
  /** ...and at least this many entries are deleted (tiny galleries are not worth a worker). Default 64. */
  rebuildMinDeleted?: number;
  /** Index lifecycle events (opened, rebuilt, swapped, failed), for logs. */
  onIndexEvent?: (e: IndexEvent) => void;
}

export type IndexEvent =
  | { kind: 'opened'; gallery: string; how: 'snapshot' | 'rebuilt'; reason?: string; replayed: number; deletesApplied: number }
  | { kind: 'checkpoint'; gallery: string; lastFaceId: number; bytes: number }
  | { kind: 'rebuild-started'; gallery: string; deletedFraction: number }
  | { kind: 'rebuild-swapped'; gallery: string; size: number; replayed: number }
  | { kind: 'rebuild-failed'; gallery: string; error: string };

export interface CreateGalleryOptions {
  modelId: string;
  modelVersion?: string;
  dimension: number;
  /** HNSW graph degree (default 32), build beam (200) and search beam (128): see DEFAULT_HNSW. */
  m?: number;
  efConstruction?: number;
  ef?: number;
}

export interface GalleryInfo {
  id: number;
  name: string;
  modelId: string;
  modelVersion: string;
  dimension: number;
  m: number;
  efConstruction: number;
  ef: number;
  createdAt: Date;
  identities: number;
  faces: number;
}

export interface IdentityInput {
  externalId: string;
  displayName?: string;
  metadata?: Record<string, unknown>;
}

export interface IdentityInfo {
  id: number;
  externalId: string;
  displayName: string | null;
  metadata: Record<string, unknown> | null;
  createdAt: Date;
  faces: number;
}

export interface FaceInput {
  /** Any finite non-zero vector of the gallery's dimension; stored L2-normalised. */
  embedding: Float32Array | readonly number[];
  box?: FaceBox;
  keypoints?: FaceKeypoints;
  quality?: number;
  /** sha256 hex of the source photo, used to skip photos already enrolled. */
  photoHash?: string;
  photoPath?: string;
}

export interface FaceInfo {
  id: number;
  identity: string;
  identityId: number;
  createdAt: Date;
}

export interface ThresholdChoice {
  /** Target false-accept rate; needs a calibration for the gallery's model. */
  far?: number;
  /** Raw score threshold (cosine), used as is. Takes precedence over far. */
  threshold?: number;
}

export interface IdentifyOptions extends ThresholdChoice {
  /** Identities to return (default 5). */
  k?: number;
  /** Scan every face exactly instead of searching the HNSW graph. */
  exact?: boolean;
  /** HNSW search beam for this query, taken as given (default: the gallery's ef, raised for large galleries: effectiveEf). */
  ef?: number;
}

export interface IdentifyCandidate {
  identity: string; // external id
  identityId: number;
  displayName: string | null;
  score: number; // cosine of the best template of this identity
  faceId: number; // that template
}

export interface IdentifyResult {
  candidates: IdentifyCandidate[];
  /** The top candidate when its score reaches the threshold; null otherwise. */
  match: IdentifyCandidate | null;
  /** 'no-threshold' when neither far nor threshold was given. */
  decision: 'match' | 'unknown' | 'no-threshold';
  threshold: number | null;
  far: number | null;
  method: 'hnsw' | 'exact';
}

export interface VerifyOptions extends ThresholdChoice {
  /** Model whose calibration a FAR refers to, when both sides are embeddings. */
  modelId?: string;
}

export type VerifyTarget = Float32Array | readonly number[] | { gallery: string; identity: string };

export interface VerifyResult {
  score: number;
  /** null when neither far nor threshold was given. */
  same: boolean | null;
  threshold: number | null;
  far: number | null;
  /** The identity's template that scored best, when verifying against an identity. */
  faceId?: number;
}

export interface GalleryStats extends GalleryInfo {
  deletedFaces: number;
  index: {
    size: number;
    live: number;
    deleted: number;
    capacity: number;
    snapshotLastFaceId: number | null;
    snapshotBytes: number | null;
    unsavedChanges: number;
    rebuilding: boolean;
  };
}

export interface ConsistencyReport {
  dbLive: number;
  indexLive: number;
  /** Live faces in the database the index does not return. */
  missingFromIndex: number[];
  /** Faces the index would return that are deleted or absent in the database. */
  extraInIndex: number[];
  /** Faces whose index vector differs from the database vector (max abs diff > 1e-6). */
  vectorMismatches: number[];
}

interface CandidateRow {
  faceId: number;
  identityId: number;
  embedding: Buffer;
  externalId: string;
  displayName: string | null;
}

interface LoadedGallery {
  index: GalleryIndex;
  /** Every live face of the gallery with an id up to this one is in the index (see syncWithOtherWriters). */
  syncedId: number;
  matrix: VectorMatrix | null;
  rebuild: { job: BackgroundRebuild; done: Promise<void> } | null;
}

const MAX_K = 1000;

export class Store {
  private readonly loaded = new Map<number, LoadedGallery>();
  /** SQLite's data_version when the loaded indexes were last caught up with other processes' commits. */
  private dataVersion = -1;
  private closed = false;
  private readonly scorer: ExactScorer;
  private readonly exactBelow: number;
  private readonly checkpointEvery: number;
  private readonly rebuildFraction: number;
  private readonly rebuildMinDeleted: number;
  /** Hot-path queries prepared once: building a drizzle query costs more than running it. */
  private readonly q;

  constructor(
    private readonly opened: OpenedDb,
    /** Absolute database path, or null for an in-memory database. */
    readonly dbPath: string | null,
    readonly indexDir: string | null,
    private readonly opts: StoreOptions,
    scorer: ExactScorer,
    /** Which exact scorer this store uses, for people ('custom' when one was given). */
    readonly scorerName: string,
  ) {
    this.scorer = scorer;
    this.exactBelow = opts.exactBelow ?? 2000;
    this.checkpointEvery = opts.checkpointEvery ?? 10_000;
    this.rebuildFraction = opts.rebuildDeletedFraction ?? 0.25;
    this.rebuildMinDeleted = opts.rebuildMinDeleted ?? 64;
    const db = opened.db;
    const ph = sql.placeholder;
    this.q = {
      galleryByName: db.select().from(galleries).where(eq(galleries.name, ph('name'))).prepare(),
      liveIdentity: db
        .select()
        .from(identities)
        .where(and(eq(identities.galleryId, ph('galleryId')), eq(identities.externalId, ph('externalId')), isNull(identities.deletedAt)))
        .prepare(),
      insertFace: db
        .insert(faces)
        .values({
          galleryId: ph('galleryId'),
          identityId: ph('identityId'),
          photoPath: ph('photoPath'),
          photoHash: ph('photoHash'),
          box: ph('box'),
          keypoints: ph('keypoints'),
          quality: ph('quality'),
          embedding: ph('embedding'),
          createdAt: ph('createdAt'),
        })
        .returning({ id: faces.id })
        .prepare(),
      insertIdentity: db
        .insert(identities)
        .values({
          galleryId: ph('galleryId'),
          externalId: ph('externalId'),
          displayName: ph('displayName'),
          metadata: ph('metadata'),
          createdAt: ph('createdAt'),
        })
        .returning()
        .prepare(),
      // json_each keeps one prepared statement for any number of candidate ids.
      candidates: opened.sqlite.prepare(
        `SELECT f.id AS faceId, f.identity_id AS identityId, f.embedding, i.external_id AS externalId, i.display_name AS displayName
         FROM faces f JOIN identities i ON i.id = f.identity_id
         WHERE f.id IN (SELECT value FROM json_each(?)) AND f.gallery_id = ? AND f.deleted = 0 AND i.deleted_at IS NULL`,
      ),
    };
  }

  private get db(): Db {
    if (this.closed) throw new CosfaceError('BAD_INPUT', 'the store is closed');
    return this.opened.db;
  }

  // ---- galleries ----

  createGallery(name: string, o: CreateGalleryOptions): GalleryInfo {
    checkGalleryName(name);
    if (!o || typeof o.modelId !== 'string' || o.modelId.length === 0) {
      throw new CosfaceError('BAD_INPUT', 'createGallery: modelId is required');
    }
    checkInt(o.dimension, 'dimension', 1, 65536);
    const m = o.m ?? DEFAULT_HNSW.m;
    const efConstruction = o.efConstruction ?? DEFAULT_HNSW.efConstruction;
    const ef = o.ef ?? DEFAULT_HNSW.ef;
    checkInt(m, 'm', 2, 256);
    checkInt(efConstruction, 'efConstruction', 1, 100_000);
    checkInt(ef, 'ef', 1, 100_000);
    if (this.findGallery(name)) throw new CosfaceError('GALLERY_EXISTS', `gallery "${name}" already exists`);
    const row = this.db
      .insert(galleries)
      .values({
        name,
        modelId: o.modelId,
        modelVersion: o.modelVersion ?? '1',
        dimension: o.dimension,
        hnswM: m,
        hnswEfConstruction: efConstruction,
        hnswEf: ef,
        createdAt: new Date(),
      })
      .returning()
      .get();
    return { ...galleryInfo(row), identities: 0, faces: 0 };
  }

  listGalleries(): GalleryInfo[] {
    return this.db
      .select({
        g: galleries,
        identities: sql<number>`(SELECT COUNT(*) FROM identities i WHERE i.gallery_id = galleries.id AND i.deleted_at IS NULL)`,
        faces: sql<number>`(SELECT COUNT(*) FROM faces f WHERE f.gallery_id = galleries.id AND f.deleted = 0)`,
      })
      .from(galleries)
      .orderBy(galleries.name)
      .all()
      .map((r) => ({ ...galleryInfo(r.g), identities: r.identities, faces: r.faces }));
  }

  getGallery(name: string): GalleryInfo {
    const g = this.gallery(name);
    return { ...galleryInfo(g), ...this.counts(g.id) };
  }

  /** Deletes a gallery with all its identities, faces and index files. */
  async deleteGallery(name: string): Promise<void> {
    const g = this.gallery(name);
    const l = this.loaded.get(g.id);
    if (l?.rebuild) await l.rebuild.job.cancel().catch(() => undefined);
    this.loaded.delete(g.id);
    this.db.delete(galleries).where(eq(galleries.id, g.id)).run();
    if (this.indexDir) removeIndexFiles(this.indexDir, g.id);
  }

  // ---- identities ----

  addIdentity(gallery: string, input: IdentityInput): IdentityInfo {
    const g = this.gallery(gallery);
    checkIdentityInput(input);
    if (this.liveIdentity(g.id, input.externalId)) {
      throw new CosfaceError('DUPLICATE_IDENTITY', `identity "${input.externalId}" already exists in gallery "${gallery}"`);
    }
    const row = this.q.insertIdentity.get({
      galleryId: g.id,
      externalId: input.externalId,
      displayName: input.displayName ?? null,
      metadata: input.metadata ?? null,
      createdAt: new Date(),
    })!;
    return identityInfo(row, 0);
  }

  /** The live identity with this external id, created if there is none (for enrollment). */
  ensureIdentity(gallery: string, input: IdentityInput): IdentityInfo {
    const g = this.gallery(gallery);
    checkIdentityInput(input);
    const row = this.liveIdentity(g.id, input.externalId);
    return row ? identityInfo(row, this.identityFaceCount(row.id)) : this.addIdentity(gallery, input);
  }

  getIdentity(gallery: string, externalId: string): IdentityInfo {
    const g = this.gallery(gallery);
    const row = this.identity(g, externalId);
    return identityInfo(row, this.identityFaceCount(row.id));
  }

  listIdentities(gallery: string, page: { limit?: number; offset?: number } = {}): IdentityInfo[] {
    const g = this.gallery(gallery);
    return this.db
      .select({
        i: identities,
        faces: sql<number>`(SELECT COUNT(*) FROM faces f WHERE f.identity_id = identities.id AND f.deleted = 0)`,
      })
      .from(identities)
      .where(and(eq(identities.galleryId, g.id), isNull(identities.deletedAt)))
      .orderBy(identities.id)
      .limit(page.limit ?? -1)
      .offset(page.offset ?? 0)
      .all()
      .map((r) => identityInfo(r.i, r.faces));
  }

  /**
   * Deletes an identity and all its faces: marked deleted in the database (one transaction) and
   * in the index. The external id can be enrolled again afterwards.
   */
  deleteIdentity(gallery: string, externalId: string): { faces: number } {
    const g = this.gallery(gallery);
    const ident = this.identity(g, externalId);
    const l = this.load(g);
    const deletedIds = this.db.transaction((tx) => {
      const seq = bumpDeleteSeq(tx, g.id);
      tx.update(identities).set({ deletedAt: new Date() }).where(eq(identities.id, ident.id)).run();
      return tx
        .update(faces)
        .set({ deleted: true, deleteSeq: seq })
        .where(and(eq(faces.identityId, ident.id), eq(faces.deleted, false)))
        .returning({ id: faces.id })
        .all()
        .map((r) => r.id);
    });
    this.applyDeletes(g, l, deletedIds);
    return { faces: deletedIds.length };
  }

  // ---- faces ----

  /**
   * Adds one face to an identity. Durable when it returns: the row is committed to SQLite before
   * the index is touched (the index is derived and is caught up from the database after a crash).
   */
  addFace(gallery: string, identity: string, face: FaceInput): FaceInfo {
    return this.addFaces(gallery, [{ identity, face }])[0]!;
  }

  /**
   * Adds many faces in one transaction: all of them or, on any invalid input, none.
   * `newIdentities` are created in the same transaction (a crash or an error leaves neither the
   * identities nor the faces), and items may name them.
   */
  addFaces(gallery: string, items: readonly { identity: string; face: FaceInput }[], opts: { newIdentities?: readonly IdentityInput[] } = {}): FaceInfo[] {
    const g = this.gallery(gallery);
    if (!Array.isArray(items) || items.length === 0) throw new CosfaceError('EMPTY_BATCH', 'addFaces: no faces given');
    // Validate everything before writing anything.
    const fresh = new Map<string, IdentityInput>();
    for (const n of opts.newIdentities ?? []) {
      checkIdentityInput(n);
      if (fresh.has(n.externalId) || this.liveIdentity(g.id, n.externalId)) {
        throw new CosfaceError('DUPLICATE_IDENTITY', `identity "${n.externalId}" already exists in gallery "${gallery}"`);
      }
      fresh.set(n.externalId, n);
    }
    const prepared = items.map((it, i) => {
      const where = items.length > 1 ? `faces[${i}]` : 'face';
      if (!it || typeof it.face !== 'object' || it.face === null) throw new CosfaceError('BAD_INPUT', `${where} is missing`);
      const ident = typeof it.identity === 'string' && fresh.has(it.identity) ? null : this.identity(g, it.identity);
      const v = toUnitVector(it.face.embedding, g.dimension, `${where}.embedding`);
      checkFaceExtras(it.face, where);
      return { ident, externalId: it.identity, v, face: it.face };
    });
    const l = this.load(g);
    const now = new Date();
    const created = new Map<string, IdentityRow>();
    const rows = this.opened.sqlite.transaction(() => {
      for (const n of fresh.values()) {
        created.set(
          n.externalId,
          this.q.insertIdentity.get({ galleryId: g.id, externalId: n.externalId, displayName: n.displayName ?? null, metadata: n.metadata ?? null, createdAt: now })!,
        );
      }
      return prepared.map(
        (p) =>
          this.q.insertFace.get({
            galleryId: g.id,
            identityId: (p.ident ?? created.get(p.externalId)!).id,
            photoPath: p.face.photoPath ?? null,
            photoHash: p.face.photoHash ?? null,
            box: p.face.box ?? null,
            keypoints: p.face.keypoints ?? null,
            quality: p.face.quality ?? null,
            embedding: embeddingToBlob(p.v),
            createdAt: now,
          })!,
      );
    })();
    // Committed. From here on a failure only costs index freshness, never data.
    try {
      rows.forEach((r, i) => {
        l.index.add(r.id, prepared[i]!.v);
        l.matrix?.add(r.id, prepared[i]!.v);
      });
      this.maybeCheckpoint(g, l);
    } catch (e) {
      // Drop the in-memory index; the next use reloads the snapshot and replays from the database.
      this.loaded.delete(g.id);
      this.emit({ kind: 'rebuild-failed', gallery: g.name, error: `index update failed: ${(e as Error).message}` });
    }
    return rows.map((r, i) => ({
      id: r.id,
      identity: prepared[i]!.externalId,
      identityId: (prepared[i]!.ident ?? created.get(prepared[i]!.externalId)!).id,
      createdAt: now,
    }));
  }

  deleteFace(gallery: string, faceId: number): void {
    const g = this.gallery(gallery);
    checkInt(faceId, 'faceId', 1, Number.MAX_SAFE_INTEGER);
    const l = this.load(g);
    const deleted = this.db.transaction((tx) => {
      const row = tx
        .select({ id: faces.id })
        .from(faces)
        .where(and(eq(faces.id, faceId), eq(faces.galleryId, g.id), eq(faces.deleted, false)))
        .get();
      if (!row) throw new CosfaceError('FACE_NOT_FOUND', `face ${faceId} not found in gallery "${gallery}"`);
      const seq = bumpDeleteSeq(tx, g.id);
      tx.update(faces).set({ deleted: true, deleteSeq: seq }).where(eq(faces.id, faceId)).run();
      return [faceId];
    });
    this.applyDeletes(g, l, deleted);
  }

  /** Whether a photo (by sha256) already has a live face in the gallery: resumable enrollment. */
  hasPhoto(gallery: string, photoHash: string): boolean {
    const g = this.gallery(gallery);
    return !!this.db
      .select({ id: faces.id })
      .from(faces)
      .where(and(eq(faces.galleryId, g.id), eq(faces.photoHash, photoHash), eq(faces.deleted, false)))
      .limit(1)
      .get();
  }

  // ---- search ----

  /**
   * 1:N identification. Candidates come from the HNSW graph (or an exact scan for small galleries
   * or `exact: true`), are re-scored exactly with the stored vectors, grouped by identity (the best
   * template wins) and ranked; the top one is a match when it reaches the threshold.
   */
  async identify(gallery: string, probe: Float32Array | readonly number[], o: IdentifyOptions = {}): Promise<IdentifyResult> {
    const g = this.gallery(gallery);
    const v = toUnitVector(probe, g.dimension, 'probe');
    const k = o.k ?? 5;
    checkInt(k, 'k', 1, MAX_K);
    if (o.ef !== undefined) checkInt(o.ef, 'ef', 1, 100_000);
    const { threshold, far } = this.resolveThreshold(o, g.modelId);
    const l = this.load(g);
    const live = l.index.liveCount;
    // Several templates per identity: fetch more faces than identities asked for.
    const kFaces = Math.min(live, Math.max(k * 4, 32));
    const method: 'hnsw' | 'exact' = o.exact || live <= this.exactBelow ? 'exact' : 'hnsw';

    let scored: { faceId: number; score: number }[] = [];
    let rows = new Map<number, CandidateRow>();
    if (kFaces > 0 && method === 'exact') {
      const m = this.matrix(g, l);
      const top = await this.scorer(v, 1, m.rows(), m.n, g.dimension, Math.min(kFaces, m.n));
      for (let i = 0; i < top.k; i++) {
        const r = top.indices[i]!;
        if (r >= 0) scored.push({ faceId: m.faceIds[r]!, score: top.scores[i]! });
      }
      rows = this.candidateRows(g.id, scored.map((x) => x.faceId));
    } else if (kFaces > 0) {
      const found = l.index.search(v, kFaces, o.ef ?? effectiveEf(g.hnswEf, live));
      rows = this.candidateRows(g.id, found.faceIds);
      scored = await this.rerank(g, v, [...rows.values()]);
    }
    const candidates = this.groupByIdentity(scored, rows, k);
    const top = candidates[0] ?? null;
    const match = threshold !== null && top !== null && top.score >= threshold ? top : null;
    return {
      candidates,
      match,
      decision: threshold === null ? 'no-threshold' : match ? 'match' : 'unknown',
      threshold,
      far,
      method,
    };
  }

  /** 1:1 verification of an embedding against another embedding or an enrolled identity. */
  async verify(a: Float32Array | readonly number[], b: VerifyTarget, o: VerifyOptions = {}): Promise<VerifyResult> {
    if (isIdentityRef(b)) {
      const g = this.gallery(b.gallery);
      const ident = this.identity(g, b.identity);
      const va = toUnitVector(a, g.dimension, 'a');
      const { threshold, far } = this.resolveThreshold(o, o.modelId ?? g.modelId);
      const rows = this.db
        .select({ id: faces.id, embedding: faces.embedding })
        .from(faces)
        .where(and(eq(faces.identityId, ident.id), eq(faces.deleted, false)))
        .all();
      if (rows.length === 0) throw new CosfaceError('FACE_NOT_FOUND', `identity "${b.identity}" has no faces`);
      const m = new Float32Array(rows.length * g.dimension);
      rows.forEach((r, i) => blobToEmbedding(r.embedding, m, i * g.dimension));
      const top = await this.scorer(va, 1, m, rows.length, g.dimension, 1);
      const score = top.scores[0]!;
      return { score, same: threshold === null ? null : score >= threshold, threshold, far, faceId: rows[top.indices[0]!]!.id };
    }
    if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
      throw new CosfaceError('BAD_INPUT', 'verify: a and b must be embeddings');
    }
    const dim = a.length;
    if (b.length !== dim) throw new CosfaceError('DIMENSION_MISMATCH', `verify: a has ${dim} values, b has ${b.length}`);
    const va = toUnitVector(a, dim, 'a');
    const vb = toUnitVector(b, dim, 'b');
    if (o.far !== undefined && o.threshold === undefined && !o.modelId) {
      throw new CosfaceError('BAD_INPUT', 'verify: a FAR needs modelId (whose calibration to use) when both sides are embeddings');
    }
    const { threshold, far } = this.resolveThreshold(o, o.modelId ?? '');
    const top = await this.scorer(va, 1, vb, 1, dim, 1);
    const score = top.scores[0]!;
    return { score, same: threshold === null ? null : score >= threshold, threshold, far };
  }

  // ---- thresholds ----

  /** Calibrates thresholds from labelled pair scores and stores them for the model (replacing old ones). */
  calibrateModel(modelId: string, pairs: readonly ScoredPair[], fars: readonly number[] = DEFAULT_FARS): Calibration {
    if (typeof modelId !== 'string' || modelId.length === 0) throw new CosfaceError('BAD_INPUT', 'calibrateModel: modelId is required');
    let c: Calibration;
    try {
      c = calibrate(pairs, fars);
    } catch (e) {
      throw new CosfaceError('BAD_INPUT', (e as Error).message);
    }
    if (c.impostorPairs === 0) throw new CosfaceError('BAD_INPUT', 'calibrateModel: no impostor pairs (same: false) given');
    const now = new Date();
    this.db.transaction((tx) => {
      tx.delete(modelThresholds).where(eq(modelThresholds.modelId, modelId)).run();
      for (const t of c.thresholds) {
        tx.insert(modelThresholds)
          .values({
            modelId,
            far: t.far,
            threshold: t.threshold,
            impostorPairs: c.impostorPairs,
            genuinePairs: c.genuinePairs,
            tar: t.tar,
            calibratedAt: now,
          })
          .run();
      }
    });
    return c;
  }

  /** Stored thresholds of a model, strictest FAR last. */
  thresholds(modelId: string): { far: number; threshold: number; tar: number | null; impostorPairs: number; genuinePairs: number; calibratedAt: Date }[] {
    return this.db
      .select()
      .from(modelThresholds)
      .where(eq(modelThresholds.modelId, modelId))
      .all()
      .sort((a, b) => b.far - a.far)
      .map(({ modelId: _m, ...rest }) => rest);
  }

  // ---- index maintenance ----

  galleryStats(name: string): GalleryStats {
    const g = this.gallery(name);
    const l = this.load(g);
    const deletedFaces = (
      this.opened.sqlite.prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND deleted = 1').get(g.id) as { n: number }
    ).n;
    return {
      ...galleryInfo(g),
      ...this.counts(g.id),
      deletedFaces,
      index: {
        size: l.index.size,
        live: l.index.liveCount,
        deleted: l.index.deletedCount,
        capacity: l.index.capacity,
        snapshotLastFaceId: l.index.snapshot?.lastFaceId ?? null,
        snapshotBytes: l.index.snapshot?.bytes ?? null,
        unsavedChanges: l.index.unsavedChanges,
        rebuilding: l.rebuild !== null,
      },
    };
  }

  /** Writes index snapshots of every loaded gallery (or one) with unsaved changes. */
  checkpoint(gallery?: string): void {
    if (!this.indexDir) return;
    for (const [id, l] of this.loaded) {
      const g = this.galleryById(id);
      if (!g || (gallery !== undefined && g.name !== gallery)) continue;
      if (l.index.unsavedChanges > 0 || !l.index.snapshot) this.saveIndex(g, l);
    }
  }

  /**
   * Rebuilds a gallery's index from the database without deleted entries: in a worker thread for
   * file databases (searches and writes go on meanwhile against the old index), in this thread for
   * in-memory ones. Resolves once the new index is swapped in.
   */
  rebuildIndex(gallery: string): Promise<void> {
    const g = this.gallery(gallery);
    const l = this.load(g);
    if (l.rebuild) return l.rebuild.done;
    if (!this.dbPath || !this.indexDir) {
      l.index = buildFromDatabase(this.opened.sqlite, indexedGallery(g));
      this.emit({ kind: 'rebuild-swapped', gallery: g.name, size: l.index.size, replayed: 0 });
      return Promise.resolve();
    }
    const dir = this.indexDir;
    const job = rebuildInBackground(this.dbPath, indexedGallery(g), dir);
    this.emit({ kind: 'rebuild-started', gallery: g.name, deletedFraction: l.index.deletedFraction });
    const done = job.promise.then(
      (fresh) => {
        l.rebuild = null;
        if (this.closed || this.loaded.get(g.id) !== l) return;
        // Whatever was added or deleted while the worker ran is in the database: replay it.
        const { replayed } = catchUp(this.opened.sqlite, indexedGallery(g), fresh);
        l.index = fresh;
        adoptRebuiltSnapshot(dir, g.id, fresh);
        this.emit({ kind: 'rebuild-swapped', gallery: g.name, size: fresh.size, replayed });
      },
      (e: unknown) => {
        l.rebuild = null;
        if (!this.closed) this.emit({ kind: 'rebuild-failed', gallery: g.name, error: (e as Error).message });
      },
    );
    l.rebuild = { job, done };
    return done;
  }

  /** Compares a gallery's index with the database (tests, `gallery stats --check`). */
  checkConsistency(gallery: string): ConsistencyReport {
    const g = this.gallery(gallery);
    const l = this.load(g);
    const dbRows = this.opened.sqlite
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

  /** Waits for background rebuilds, writes index snapshots and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const l of this.loaded.values()) if (l.rebuild) await l.rebuild.done;
    this.checkpoint();
    this.closed = true;
    this.loaded.clear();
    this.opened.sqlite.close();
  }

  // ---- internals ----

  private emit(e: IndexEvent): void {
    this.opts.onIndexEvent?.(e);
  }

  private findGallery(name: string): GalleryRow | undefined {
    if (this.closed) throw new CosfaceError('BAD_INPUT', 'the store is closed');
    return this.q.galleryByName.get({ name });
  }

  private galleryById(id: number): GalleryRow | undefined {
    return this.db.select().from(galleries).where(eq(galleries.id, id)).get();
  }

  private gallery(name: string): GalleryRow {
    if (typeof name !== 'string') throw new CosfaceError('BAD_INPUT', 'gallery name must be a string');
    const g = this.findGallery(name);
    if (!g) throw new CosfaceError('GALLERY_NOT_FOUND', `gallery "${name}" not found`);
    return g;
  }

  private counts(galleryId: number): { identities: number; faces: number } {
    const s = this.opened.sqlite;
    return {
      identities: (s.prepare('SELECT COUNT(*) AS n FROM identities WHERE gallery_id = ? AND deleted_at IS NULL').get(galleryId) as { n: number }).n,
      faces: (s.prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND deleted = 0').get(galleryId) as { n: number }).n,
    };
  }

  private liveIdentity(galleryId: number, externalId: string): IdentityRow | undefined {
    return this.q.liveIdentity.get({ galleryId, externalId });
  }

  private identity(g: GalleryRow, externalId: string): IdentityRow {
    if (typeof externalId !== 'string') throw new CosfaceError('BAD_INPUT', 'identity must be an external id string');
    const row = this.liveIdentity(g.id, externalId);
    if (!row) throw new CosfaceError('IDENTITY_NOT_FOUND', `identity "${externalId}" not found in gallery "${g.name}"`);
    return row;
  }

  private identityFaceCount(identityId: number): number {
    return (
      this.opened.sqlite.prepare('SELECT COUNT(*) AS n FROM faces WHERE identity_id = ? AND deleted = 0').get(identityId) as { n: number }
    ).n;
  }

  /**
   * Another process may write the same database (a CLI `enroll` while `cosface serve` runs): SQLite's
   * data_version changes when another connection commits, and then every loaded index is caught up
   * (its faces and deletes) and cached vectors are dropped, before this process reads or writes it.
   */
  private syncWithOtherWriters(): void {
    const version = this.opened.sqlite.pragma('data_version', { simple: true }) as number;
    if (version === this.dataVersion) return;
    this.dataVersion = version;
    for (const [id, l] of this.loaded) {
      const row = this.galleryById(id);
      if (!row) {
        this.loaded.delete(id);
        continue;
      }
      const r = catchUpExternal(this.opened.sqlite, indexedGallery(row), l.index, l.syncedId);
      l.syncedId = r.sinceId;
      if (r.added > 0 || r.deleted > 0) l.matrix = null;
    }
  }

  /** The gallery's index, opened (snapshot + replay, or rebuild) on first use. */
  private load(g: GalleryRow): LoadedGallery {
    this.syncWithOtherWriters();
    let l = this.loaded.get(g.id);
    if (!l) {
      const opened = openGalleryIndex(this.opened.sqlite, indexedGallery(g), this.indexDir);
      this.emit({
        kind: 'opened',
        gallery: g.name,
        how: opened.how,
        ...(opened.reason !== undefined ? { reason: opened.reason } : {}),
        replayed: opened.replayed,
        deletesApplied: opened.deletesApplied,
      });
      l = { index: opened.index, syncedId: opened.index.lastFaceId, matrix: null, rebuild: null };
      this.loaded.set(g.id, l);
    }
    return l;
  }

  /** The gallery's live vectors as one matrix, loaded from the database on first exact scan. */
  private matrix(g: GalleryRow, l: LoadedGallery): VectorMatrix {
    if (!l.matrix) {
      const n = this.counts(g.id).faces;
      const m = new VectorMatrix(g.dimension, n + 16);
      const v = new Float32Array(g.dimension);
      const stmt = this.opened.sqlite.prepare('SELECT id, embedding FROM faces WHERE gallery_id = ? AND deleted = 0 ORDER BY id');
      for (const r of stmt.iterate(g.id) as IterableIterator<{ id: number; embedding: Buffer }>) {
        m.add(r.id, blobToEmbedding(r.embedding, v));
      }
      l.matrix = m;
    }
    return l.matrix;
  }

  /**
   * The live faces among `faceIds`, with their identity and stored vector. Deleted faces and faces of
   * deleted identities drop out here, so search never returns them even if an index lags behind.
   */
  private candidateRows(galleryId: number, faceIds: number[]): Map<number, CandidateRow> {
    if (faceIds.length === 0) return new Map();
    const rows = this.q.candidates.all(JSON.stringify(faceIds), galleryId) as CandidateRow[];
    return new Map(rows.map((r) => [r.faceId, r]));
  }

  /** Exact scores of HNSW candidates from the stored (database) vectors. */
  private async rerank(g: GalleryRow, v: Float32Array, rows: CandidateRow[]): Promise<{ faceId: number; score: number }[]> {
    if (rows.length === 0) return [];
    const m = new Float32Array(rows.length * g.dimension);
    rows.forEach((r, i) => blobToEmbedding(r.embedding, m, i * g.dimension));
    const top = await this.scorer(v, 1, m, rows.length, g.dimension, rows.length);
    const out: { faceId: number; score: number }[] = [];
    for (let i = 0; i < top.k; i++) {
      const r = top.indices[i]!;
      if (r >= 0) out.push({ faceId: rows[r]!.faceId, score: top.scores[i]! });
    }
    return out;
  }

  private groupByIdentity(scored: { faceId: number; score: number }[], rows: Map<number, CandidateRow>, k: number): IdentifyCandidate[] {
    const best = new Map<number, IdentifyCandidate>();
    for (const s of scored) {
      const r = rows.get(s.faceId);
      if (!r) continue; // deleted since the index saw it
      const cur = best.get(r.identityId);
      if (!cur || s.score > cur.score) {
        best.set(r.identityId, { identity: r.externalId, identityId: r.identityId, displayName: r.displayName, score: s.score, faceId: s.faceId });
      }
    }
    return [...best.values()].sort((a, b) => b.score - a.score || a.identityId - b.identityId).slice(0, k);
  }

  private resolveThreshold(o: ThresholdChoice, modelId: string): { threshold: number | null; far: number | null } {
    if (o.threshold !== undefined) {
      if (typeof o.threshold !== 'number' || !Number.isFinite(o.threshold)) {
        throw new CosfaceError('BAD_INPUT', `threshold ${String(o.threshold)} is not a finite number`);
      }
      return { threshold: o.threshold, far: null };
    }
    if (o.far === undefined) return { threshold: null, far: null };
    if (typeof o.far !== 'number' || !(o.far > 0 && o.far < 1)) {
      throw new CosfaceError('BAD_INPUT', `far ${String(o.far)} must be a number in (0, 1)`);
    }
    const rows = this.thresholds(modelId);
    const hit = rows.find((r) => Math.abs(r.far - o.far!) <= 1e-9 * o.far!);
    if (!hit) {
      const have = rows.map((r) => r.far).join(', ') || 'none';
      throw new CosfaceError('NOT_CALIBRATED', `no threshold calibrated at FAR ${o.far} for model "${modelId}" (calibrated: ${have})`);
    }
    return { threshold: hit.threshold, far: hit.far };
  }

  private applyDeletes(g: GalleryRow, l: LoadedGallery, faceIds: number[]): void {
    for (const id of faceIds) {
      l.index.markDeleted(id);
      l.matrix?.remove(id);
    }
    l.index.deleteSeq = Math.max(l.index.deleteSeq, this.galleryById(g.id)!.deleteSeq);
    this.maybeCheckpoint(g, l);
    if (
      !l.rebuild &&
      l.index.deletedCount >= this.rebuildMinDeleted &&
      l.index.deletedFraction > this.rebuildFraction
    ) {
      void this.rebuildIndex(g.name);
    }
  }

  private maybeCheckpoint(g: GalleryRow, l: LoadedGallery): void {
    if (this.indexDir && l.index.unsavedChanges >= this.checkpointEvery) this.saveIndex(g, l);
  }

  private saveIndex(g: GalleryRow, l: LoadedGallery): void {
    if (!this.indexDir) return;
    this.syncWithOtherWriters(); // a snapshot claims every face up to its lastFaceId
    const meta = l.index.save(this.indexDir, g.id);
    this.emit({ kind: 'checkpoint', gallery: g.name, lastFaceId: meta.lastFaceId, bytes: meta.bytes });
  }
}

/**
 * Opens (creating if needed) a store at `path` (a SQLite file, or ':memory:'), applying migrations.
 * Index snapshots live in `<path>.index/` unless opts.indexDir says otherwise.
 */
export async function openStore(path: string, opts: StoreOptions = {}): Promise<Store> {
  if (typeof path !== 'string' || path.length === 0) throw new CosfaceError('BAD_INPUT', 'openStore: path is required');
  const memory = path === ':memory:';
  const abs = memory ? null : resolve(path);
  if (abs) mkdirSync(dirname(abs), { recursive: true });
  const opened = openDatabase(abs ?? ':memory:', { synchronous: opts.synchronous ?? 'full' });
  const indexDir = opts.indexDir === undefined ? (abs ? abs + '.index' : null) : opts.indexDir && resolve(opts.indexDir);
  const { scorer, name } = opts.scorer ? { scorer: opts.scorer, name: 'custom' } : await defaultScorer();
  return new Store(opened, abs, indexDir, opts, scorer, name);
}

// ---- helpers ----

function galleryInfo(g: GalleryRow): Omit<GalleryInfo, 'identities' | 'faces'> {
  return {
    id: g.id,
    name: g.name,
    modelId: g.modelId,
    modelVersion: g.modelVersion,
    dimension: g.dimension,
    m: g.hnswM,
    efConstruction: g.hnswEfConstruction,
    ef: g.hnswEf,
    createdAt: g.createdAt,
  };
}

function indexedGallery(g: GalleryRow): IndexedGallery {
  return { id: g.id, dimension: g.dimension, m: g.hnswM, efConstruction: g.hnswEfConstruction, ef: g.hnswEf };
}

function identityInfo(r: IdentityRow, faceCount: number): IdentityInfo {
  return {
    id: r.id,
    externalId: r.externalId,
    displayName: r.displayName,
    metadata: r.metadata ?? null,
    createdAt: r.createdAt,
    faces: faceCount,
  };
}

function bumpDeleteSeq(tx: Pick<Db, 'update'>, galleryId: number): number {
  return tx
    .update(galleries)
    .set({ deleteSeq: sql`${galleries.deleteSeq} + 1` })
    .where(eq(galleries.id, galleryId))
    .returning({ s: galleries.deleteSeq })
    .get()!.s;
}

function isIdentityRef(b: VerifyTarget): b is { gallery: string; identity: string } {
  return typeof b === 'object' && b !== null && !ArrayBuffer.isView(b) && !Array.isArray(b) && 'identity' in b;
}

function checkInt(v: unknown, what: string, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new CosfaceError('BAD_INPUT', `${what} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

function checkIdentityInput(input: IdentityInput): void {
  if (!input || typeof input !== 'object') throw new CosfaceError('BAD_INPUT', 'identity must be an object with externalId');
  checkExternalId(input.externalId);
  if (input.displayName !== undefined && typeof input.displayName !== 'string') {
    throw new CosfaceError('BAD_INPUT', 'displayName must be a string');
  }
  if (input.metadata !== undefined) {
    if (input.metadata === null || typeof input.metadata !== 'object' || Array.isArray(input.metadata)) {
      throw new CosfaceError('BAD_INPUT', 'metadata must be a plain object');
    }
    try {
      JSON.stringify(input.metadata);
    } catch (e) {
      throw new CosfaceError('BAD_INPUT', `metadata is not JSON-serialisable: ${(e as Error).message}`);
    }
  }
}

function checkFaceExtras(f: FaceInput, where: string): void {
  const finite = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  if (f.box !== undefined) {
    const b = f.box;
    if (!b || !finite(b.x) || !finite(b.y) || !finite(b.width) || !finite(b.height) || b.width < 0 || b.height < 0) {
      throw new CosfaceError('BAD_INPUT', `${where}.box must be { x, y, width >= 0, height >= 0 } of finite numbers`);
    }
  }
  if (f.keypoints !== undefined) {
    if (!Array.isArray(f.keypoints) || !f.keypoints.every((p) => Array.isArray(p) && p.length === 2 && finite(p[0]) && finite(p[1]))) {
      throw new CosfaceError('BAD_INPUT', `${where}.keypoints must be an array of [x, y] finite pairs`);
    }
  }
  if (f.quality !== undefined && !finite(f.quality)) throw new CosfaceError('BAD_INPUT', `${where}.quality must be a finite number`);
  if (f.photoHash !== undefined && (typeof f.photoHash !== 'string' || !/^[0-9a-f]{64}$/.test(f.photoHash))) {
    throw new CosfaceError('BAD_INPUT', `${where}.photoHash must be a lowercase sha256 hex string`);
  }
  if (f.photoPath !== undefined && typeof f.photoPath !== 'string') throw new CosfaceError('BAD_INPUT', `${where}.photoPath must be a string`);
}
