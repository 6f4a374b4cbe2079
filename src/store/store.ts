// The face store: galleries of identities and their face embeddings in a database (the source of
// truth: SQLite or PostgreSQL, meta.ts), a vector index per backend (hnswlib graphs derived from
// SQLite, or pgvector inside Postgres: vector-index.ts), 1:N identify and 1:1 verify with
// calibrated open-set thresholds. Validation, error codes, re-ranking and decisions live here, the
// same for every backend; open-store.ts picks the backend from a location.
import { CosfaceError } from '../errors.js';
import { toUnitVector } from './embedding.js';
import type { ExactRowsFactory, ExactScorer } from './exact-scorer.js';
import { MIGRATION_LEASE_MS, migratingError, migrationActive, type CandidateRecord, type FaceToStage, type GalleryRecord, type IdentityRecord, type MetaStore, type MigrationClaim, type ThresholdRecord } from './meta.js';
import { checkExternalId, checkGalleryName } from './names.js';
import { calibrate, DEFAULT_FARS, type Calibration, type ScoredPair } from './thresholds.js';
import { modelChangedError, type IndexConsistency, type ScoredFace, type VectorIndex, type VectorIndexStats } from './vector-index.js';
import type { FaceBox, FaceKeypoints } from '../db/schema.js';
import type { IndexEvent } from './sqlite/hnsw-vector-index.js';
import { timed, type StageTimer } from '../stage-timer.js';

export type { FaceBox, FaceKeypoints } from '../db/schema.js';
export type { ExactScorer } from './exact-scorer.js';
export type { IndexEvent } from './sqlite/hnsw-vector-index.js';
export type { Calibration, ScoredPair } from './thresholds.js';
export type { FaceToStage, MigrationClaim } from './meta.js';
export { MIGRATION_LEASE_MS } from './meta.js';

/** The model a gallery migrates to (`beginMigration`). */
export interface MigrationTargetInput {
  modelId: string;
  modelVersion?: string;
  dimension: number;
}

export interface MigrationSwitch {
  /** Live faces, all with the new model's vectors now. */
  faces: number;
  /** Faces soft-deleted by the switch (asked for: their photo was missing). */
  dropped: number[];
  gallery: GalleryInfo;
  previous: { modelId: string; modelVersion: string; dimension: number };
}

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
 * above 100k the floor is 128 * 4^log10(n / 100k) (512 at 1M, 2048 at 10M), capped at 4096. A
 * gallery of 200k faces or more is 2 shards (gallery-index.ts), each searched with this beam, both
 * at once on their worker threads: at 1M recall@1 0.992 at 512 (0.966 at 256) in 4.6 ms p50 (2026-12-06).
 * Sharded graphs are now built with M >= 48 (gallery-index.ts SHARDED_MIN_M), which reaches 0.99 at
 * ef 256 and ~0.999 at this floor's 512; the floor is kept, as a beam that favours recall.
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
  /**
   * Where a gallery's vectors live for its exact scans (SQLite stores); default: resident in a
   * shared WASM memory that the WASM scorer's workers scan in place (wasmExactRows), or a plain
   * array scanned by `scorer` when one is given or WASM cannot start.
   */
  exactRows?: ExactRowsFactory;
  /** Galleries with at most this many live faces are always searched exactly. Default 2000. */
  exactBelow?: number;
  /** Write an index snapshot after this many adds/deletes since the last one. Default 10000. */
  checkpointEvery?: number;
  /** Rebuild an index in the background once this fraction of its entries is deleted. Default 0.25. */
  rebuildDeletedFraction?: number;
  /** ...and at least this many entries are deleted (tiny galleries are not worth a worker). Default 64. */
  rebuildMinDeleted?: number;
  /**
   * Galleries with at least this many live faces are built (on open without a snapshot, and on
   * rebuilds) as 2 HNSW graphs, each built and kept by a worker thread of its own, searched and
   * added to at once with the results merged. Default 200000 (SHARD_FROM); BENCHMARKS.md "Search" has the measurements.
   */
  shardFrom?: number;
  /** Index lifecycle events (opened, rebuilt, swapped, failed), for logs. */
  onIndexEvent?: (e: IndexEvent) => void;
}

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
  /** The model the probe was made with: MODEL_MISMATCH when the gallery holds another's (e.g. it was just migrated). */
  modelId?: string;
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

export interface DuplicateIdentityPair {
  /** The two identities (external ids, a < b), their display names and best-matching templates. */
  a: { identity: string; displayName: string | null; faceId: number };
  b: { identity: string; displayName: string | null; faceId: number };
  /** Cosine of the best pair of templates. */
  score: number;
}

export interface DuplicateIdentitiesResult {
  pairs: DuplicateIdentityPair[];
  threshold: number;
  far: number | null;
  /** Faces searched (every live face of the gallery). */
  facesSearched: number;
}

export interface GalleryStats extends GalleryInfo {
  deletedFaces: number;
  index: VectorIndexStats;
}

export type ConsistencyReport = IndexConsistency;

/** A face as stored (without its vector). */
export interface StoredFace {
  id: number;
  identity: string;
  box: FaceBox | null;
  keypoints: FaceKeypoints | null;
  quality: number | null;
  photoHash: string | null;
  createdAt: Date;
}

const MAX_K = 1000;

/** Where a store lives and how it is built: the parts behind the Store API. */
export interface StoreParts {
  meta: MetaStore;
  index: VectorIndex;
  /** 'sqlite' or 'postgres'. */
  backend: StoreBackend;
  /** The location as given (a path, ':memory:', pglite:<dir> or a postgres URL with the password hidden). */
  location: string;
  /** Absolute SQLite path; null for in-memory and Postgres stores. */
  dbPath: string | null;
  indexDir: string | null;
  scorer: ExactScorer;
  scorerName: string;
  exactBelow: number;
  /** Closes what the backend opened besides meta (a PGlite instance, a connection pool). */
  closeBackend?: () => Promise<void>;
}

export type StoreBackend = 'sqlite' | 'postgres';

export class Store {
  private closed = false;
  /** The metadata repository (API keys and other server-side records use it). */
  readonly meta: MetaStore;
  readonly index: VectorIndex;
  readonly backend: StoreBackend;
  readonly location: string;
  /** Absolute SQLite database path, or null (in-memory SQLite, Postgres). */
  readonly dbPath: string | null;
  readonly indexDir: string | null;
  /** Which exact scorer this store uses, for people ('custom' when one was given). */
  readonly scorerName: string;
  private readonly scorer: ExactScorer;
  private readonly exactBelow: number;
  /**
   * Receives addFaces's stages (validate, write, index) when the call passes no timer of its own:
   * for benchmarks of a server's enrollment route. Unset, the stages are not timed.
   */
  stageTimer: StageTimer | undefined;

  constructor(private readonly parts: StoreParts) {
    this.meta = parts.meta;
    this.index = parts.index;
    this.backend = parts.backend;
    this.location = parts.location;
    this.dbPath = parts.dbPath;
    this.indexDir = parts.indexDir;
    this.scorer = parts.scorer;
    this.scorerName = parts.scorerName;
    this.exactBelow = parts.exactBelow;
  }

  // ---- galleries ----

  async createGallery(name: string, o: CreateGalleryOptions): Promise<GalleryInfo> {
    this.open();
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
    const row = await this.meta.insertGallery({
      name,
      modelId: o.modelId,
      modelVersion: o.modelVersion ?? '1',
      dimension: o.dimension,
      hnswM: m,
      hnswEfConstruction: efConstruction,
      hnswEf: ef,
      createdAt: new Date(),
    });
    if (!row) throw new CosfaceError('GALLERY_EXISTS', `gallery "${name}" already exists`);
    await this.index.addGallery(row);
    return { ...galleryInfo(row), identities: 0, faces: 0 };
  }

  async listGalleries(): Promise<GalleryInfo[]> {
    this.open();
    return (await this.meta.listGalleries()).map((r) => ({ ...galleryInfo(r), identities: r.identities, faces: r.faces }));
  }

  async getGallery(name: string): Promise<GalleryInfo> {
    const g = await this.gallery(name);
    return { ...galleryInfo(g), ...(await this.meta.counts(g.id)) };
  }

  /** A gallery's settings without its counts (which cost a scan of its rows): for hot paths. */
  async gallerySettings(name: string): Promise<Omit<GalleryInfo, 'identities' | 'faces'>> {
    return galleryInfo(await this.gallery(name));
  }

  /** Deletes a gallery with all its identities, faces, keys and index files. */
  async deleteGallery(name: string): Promise<void> {
    const g = await this.gallery(name);
    await this.index.dropGallery(g);
    await this.meta.deleteGallery(g.id);
  }

  // ---- identities ----

  async addIdentity(gallery: string, input: IdentityInput): Promise<IdentityInfo> {
    const g = await this.gallery(gallery);
    checkIdentityInput(input);
    const row = await this.meta.insertIdentity(g.id, {
      externalId: input.externalId,
      displayName: input.displayName ?? null,
      metadata: input.metadata ?? null,
      createdAt: new Date(),
    });
    if (!row) throw new CosfaceError('DUPLICATE_IDENTITY', `identity "${input.externalId}" already exists in gallery "${gallery}"`);
    return identityInfo(row, 0);
  }

  /** The live identity with this external id, created if there is none (for enrollment). */
  async ensureIdentity(gallery: string, input: IdentityInput): Promise<IdentityInfo> {
    const g = await this.gallery(gallery);
    checkIdentityInput(input);
    const row = await this.meta.liveIdentity(g.id, input.externalId);
    return row ? identityInfo(row, await this.meta.identityFaceCount(g.id, row.id)) : this.addIdentity(gallery, input);
  }

  async getIdentity(gallery: string, externalId: string): Promise<IdentityInfo> {
    const g = await this.gallery(gallery);
    const row = await this.identity(g, externalId);
    return identityInfo(row, await this.meta.identityFaceCount(g.id, row.id));
  }

  async listIdentities(gallery: string, page: { limit?: number; offset?: number } = {}): Promise<IdentityInfo[]> {
    const g = await this.gallery(gallery);
    if (page.limit !== undefined) checkInt(page.limit, 'limit', 0, Number.MAX_SAFE_INTEGER);
    if (page.offset !== undefined) checkInt(page.offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    const rows = await this.meta.listIdentities(g.id, { ...(page.limit !== undefined ? { limit: page.limit } : {}), offset: page.offset ?? 0 });
    return rows.map((r) => identityInfo(r, r.faces));
  }

  /** Changes an identity's display name and/or metadata (null clears); other fields stay. */
  async updateIdentity(
    gallery: string,
    externalId: string,
    patch: { displayName?: string | null; metadata?: Record<string, unknown> | null },
  ): Promise<IdentityInfo> {
    const g = await this.gallery(gallery);
    const ident = await this.identity(g, externalId);
    if (!patch || typeof patch !== 'object') throw new CosfaceError('BAD_INPUT', 'updateIdentity: patch must be an object');
    const set: { displayName?: string | null; metadata?: Record<string, unknown> | null } = {};
    if (patch.displayName !== undefined) {
      if (patch.displayName !== null && typeof patch.displayName !== 'string') throw new CosfaceError('BAD_INPUT', 'displayName must be a string or null');
      set.displayName = patch.displayName;
    }
    if (patch.metadata !== undefined) {
      if (patch.metadata !== null) checkMetadata(patch.metadata);
      set.metadata = patch.metadata;
    }
    await this.meta.updateIdentity(g.id, ident.id, set);
    return this.getIdentity(gallery, externalId);
  }

  /**
   * Deletes an identity and all its faces: marked deleted in the database (one transaction) and
   * in the index. The external id can be enrolled again afterwards.
   */
  async deleteIdentity(gallery: string, externalId: string): Promise<{ faces: number }> {
    const g = await this.gallery(gallery);
    const ident = await this.identity(g, externalId);
    const deletedIds = await this.meta.deleteIdentity(g.id, ident.id);
    await this.index.deleted(g, deletedIds);
    return { faces: deletedIds.length };
  }

  // ---- faces ----

  /**
   * Adds one face to an identity. Durable when it resolves: the row is committed to the database
   * before the index is touched (a derived index is caught up from the database after a crash).
   */
  async addFace(gallery: string, identity: string, face: FaceInput): Promise<FaceInfo> {
    return (await this.addFaces(gallery, [{ identity, face }]))[0]!;
  }

  /**
   * Adds many faces in one transaction: all of them or, on any invalid input, none.
   * `newIdentities` are created in the same transaction (a crash or an error leaves neither the
   * identities nor the faces), and items may name them.
   */
  async addFaces(
    gallery: string,
    items: readonly { identity: string; face: FaceInput }[],
    opts: { newIdentities?: readonly IdentityInput[]; timer?: StageTimer } = {},
  ): Promise<FaceInfo[]> {
    const timer = opts.timer ?? this.stageTimer;
    const { g, fresh, newIdentities, prepared } = await timed(timer, 'validate', () => this.prepareFaces(gallery, items, opts.newIdentities ?? []));
    const now = new Date();
    const rows = prepared.map((p) => ({
      identityId: p.ident?.id ?? 0,
      ...(p.ident ? {} : { newIdentity: fresh.get(p.externalId)! }),
      photoPath: p.face.photoPath ?? null,
      photoHash: p.face.photoHash ?? null,
      box: p.face.box ?? null,
      keypoints: p.face.keypoints ?? null,
      quality: p.face.quality ?? null,
      embedding: p.v,
      createdAt: now,
    }));
    let ids: number[];
    let identityIds: number[] = [];
    if (newIdentities.length === 0) ids = await timed(timer, 'write', () => this.meta.insertFaces(g.id, rows));
    else {
      const made = await timed(timer, 'write', () =>
        this.meta.insertIdentitiesAndFaces(
          g.id,
          newIdentities.map((n) => ({ externalId: n.externalId, displayName: n.displayName ?? null, metadata: n.metadata ?? null, createdAt: now })),
          rows,
        ),
      );
      if (!made) throw new CosfaceError('DUPLICATE_IDENTITY', `one of the identities ${newIdentities.map((n) => `"${n.externalId}"`).join(', ')} already exists in gallery "${gallery}"`);
      ids = made.faceIds;
      identityIds = made.identityIds;
    }
    // Committed. From here on a failure only costs index freshness, never data.
    await timed(timer, 'index', () => this.index.added(g, ids.map((id, i) => ({ id, v: prepared[i]!.v }))));
    return ids.map((id, i) => ({
      id,
      identity: prepared[i]!.externalId,
      identityId: prepared[i]!.ident?.id ?? identityIds[fresh.get(prepared[i]!.externalId)!]!,
      createdAt: now,
    }));
  }

  /** addFaces's checks, before anything is written: the gallery, the new identities, every item. */
  private async prepareFaces(gallery: string, items: readonly { identity: string; face: FaceInput }[], newIdentities: readonly IdentityInput[]) {
    const g = await this.gallery(gallery);
    if (!Array.isArray(items) || items.length === 0) throw new CosfaceError('EMPTY_BATCH', 'addFaces: no faces given');
    // Checked again inside the inserting transaction (meta); this one only fails early.
    if (migrationActive(g.migration)) throw migratingError(g.name, g.migration!);
    // Validate everything before writing anything.
    const fresh = new Map<string, number>(); // external id -> index in newIdentities
    for (const [k, n] of newIdentities.entries()) {
      checkIdentityInput(n);
      if (fresh.has(n.externalId) || (await this.meta.liveIdentity(g.id, n.externalId))) {
        throw new CosfaceError('DUPLICATE_IDENTITY', `identity "${n.externalId}" already exists in gallery "${gallery}"`);
      }
      fresh.set(n.externalId, k);
    }
    const idents = new Map<string, IdentityRecord>();
    const prepared: { ident: IdentityRecord | null; externalId: string; v: Float32Array; face: FaceInput }[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const where = items.length > 1 ? `faces[${i}]` : 'face';
      if (!it || typeof it.face !== 'object' || it.face === null) throw new CosfaceError('BAD_INPUT', `${where} is missing`);
      if (typeof it.identity !== 'string') throw new CosfaceError('BAD_INPUT', 'identity must be an external id string');
      let ident = idents.get(it.identity) ?? null;
      if (!ident && !fresh.has(it.identity)) {
        ident = await this.identity(g, it.identity);
        idents.set(it.identity, ident);
      }
      const v = toUnitVector(it.face.embedding, g.dimension, `${where}.embedding`);
      checkFaceExtras(it.face, where);
      prepared.push({ ident, externalId: it.identity, v, face: it.face });
    }
    return { g, fresh, newIdentities, prepared };
  }

  async deleteFace(gallery: string, faceId: number): Promise<void> {
    const g = await this.gallery(gallery);
    checkInt(faceId, 'faceId', 1, Number.MAX_SAFE_INTEGER);
    if (!(await this.meta.deleteFace(g.id, faceId))) throw new CosfaceError('FACE_NOT_FOUND', `face ${faceId} not found in gallery "${gallery}"`);
    await this.index.deleted(g, [faceId]);
  }

  /** An identity's live faces (without vectors), oldest first. */
  async listFaces(gallery: string, externalId: string): Promise<StoredFace[]> {
    const g = await this.gallery(gallery);
    const ident = await this.identity(g, externalId);
    return (await this.meta.listFaces(g.id, ident.id)).map((r) => ({ ...r, identity: ident.externalId }));
  }

  /** An identity's live faces with their stored (unit) vectors, oldest first. */
  async identityEmbeddings(gallery: string, externalId: string): Promise<{ id: number; embedding: Float32Array }[]> {
    const g = await this.gallery(gallery);
    const ident = await this.identity(g, externalId);
    return this.meta.identityEmbeddings(g.id, ident.id);
  }

  /** Whether a photo (by sha256) already has a live face in the gallery: resumable enrollment. */
  async hasPhoto(gallery: string, photoHash: string): Promise<boolean> {
    const g = await this.gallery(gallery);
    if (typeof photoHash !== 'string') throw new CosfaceError('BAD_INPUT', 'photoHash must be a string');
    return this.meta.hasPhoto(g.id, photoHash);
  }

  // ---- search ----

  /**
   * 1:N identification. Candidates come from the vector index (HNSW, or an exact scan for small
   * galleries or `exact: true`), are re-scored exactly with the stored vectors, grouped by identity
   * (the best template wins) and ranked; the top one is a match when it reaches the threshold.
   */
  async identify(gallery: string, probe: Float32Array | readonly number[], o: IdentifyOptions = {}): Promise<IdentifyResult> {
    const g = await this.gallery(gallery);
    if (o.modelId !== undefined && o.modelId !== g.modelId) {
      throw new CosfaceError('MODEL_MISMATCH', `gallery "${g.name}" holds ${g.modelId} (${g.dimension}-d) embeddings; the probe is of ${o.modelId}`);
    }
    if (!g.migration) return this.identifyIn(g, probe, o);
    // A migration may switch the gallery's model while this runs: an answer that mixed the two
    // models' vectors is not given (MODEL_CHANGED instead).
    let r: IdentifyResult;
    try {
      r = await this.identifyIn(g, probe, o);
    } catch (e) {
      await this.assertSameGeneration(g);
      throw e;
    }
    await this.assertSameGeneration(g);
    return r;
  }

  private async assertSameGeneration(g: GalleryRecord): Promise<void> {
    const now = await this.meta.galleryById(g.id);
    if (now && now.generation !== g.generation) throw modelChangedError(g.name);
  }

  private async identifyIn(g: GalleryRecord, probe: Float32Array | readonly number[], o: IdentifyOptions): Promise<IdentifyResult> {
    const v = toUnitVector(probe, g.dimension, 'probe');
    const k = o.k ?? 5;
    checkInt(k, 'k', 1, MAX_K);
    if (o.ef !== undefined) checkInt(o.ef, 'ef', 1, 100_000);
    const { threshold, far } = await this.resolveThreshold(o, g.modelId);
    const live = await this.index.liveCount(g);
    // Several templates per identity: fetch more faces than identities asked for.
    const kFaces = Math.max(k * 4, 32);
    const method: 'hnsw' | 'exact' = o.exact || live <= this.exactBelow ? 'exact' : 'hnsw';

    let scored: ScoredFace[] = [];
    let rows = new Map<number, CandidateRecord>();
    {
      const found = await this.index.search(g, v, kFaces, { method, ef: o.ef ?? effectiveEf(g.hnswEf, live) });
      const ids = found.faces.map((f) => f.faceId);
      rows = new Map((await this.meta.candidates(g.id, ids)).map((r) => [r.faceId, r]));
      for (const r of rows.values()) if (r.embedding.length !== g.dimension) throw modelChangedError(g.name);
      // Deleted faces and faces of deleted identities drop out here, so search never returns them
      // even if an index lags behind.
      scored = found.exactScores ? found.faces.filter((f) => rows.has(f.faceId)) : await this.rerank(g, v, [...rows.values()]);
    }
    const candidates = groupByIdentity(scored, rows, k);
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

  /**
   * Identities enrolled twice: pairs of identities whose templates match at or above the decision
   * threshold (a threshold, or a FAR's calibrated one; one of them is required), best first. Every
   * live face searches the gallery as identify does (HNSW, or exact for small galleries); the best
   * pair of templates gives the pair's score.
   */
  async duplicateIdentities(gallery: string, o: ThresholdChoice & { k?: number } = {}): Promise<DuplicateIdentitiesResult> {
    const g = await this.gallery(gallery);
    const { threshold, far } = await this.resolveThreshold(o, g.modelId);
    if (threshold === null) throw new CosfaceError('NOT_CALIBRATED', 'duplicate identities need a decision threshold: pass threshold, or far with a calibrated model');
    const k = o.k ?? 10;
    checkInt(k, 'k', 1, MAX_K);
    // Every live template, identity by identity (through the MetaStore, so every backend does this).
    const rows: { faceId: number; embedding: Float32Array; identity: string }[] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await this.meta.listIdentities(g.id, { limit: 1000, offset });
      for (const ident of page) for (const f of await this.meta.identityEmbeddings(g.id, ident.id)) rows.push({ faceId: f.id, embedding: f.embedding, identity: ident.externalId });
      if (page.length < 1000) break;
    }
    const best = new Map<string, DuplicateIdentityPair>();
    const names = new Map<string, string | null>();
    for (const r of rows) {
      const res = await this.identify(gallery, r.embedding, { k: k + 1, threshold });
      for (const c of res.candidates) {
        names.set(c.identity, c.displayName);
        if (c.identity === r.identity || c.score < threshold) continue;
        const [a, b] = r.identity < c.identity ? [{ identity: r.identity, faceId: r.faceId }, { identity: c.identity, faceId: c.faceId }] : [{ identity: c.identity, faceId: c.faceId }, { identity: r.identity, faceId: r.faceId }];
        const key = JSON.stringify([a.identity, b.identity]);
        const had = best.get(key);
        if (!had || c.score > had.score) best.set(key, { a: { ...a, displayName: null }, b: { ...b, displayName: null }, score: c.score });
      }
    }
    const pairs = [...best.values()]
      .map((p) => ({ ...p, a: { ...p.a, displayName: names.get(p.a.identity) ?? null }, b: { ...p.b, displayName: names.get(p.b.identity) ?? null } }))
      .sort((x, y) => y.score - x.score || (x.a.identity < y.a.identity ? -1 : x.a.identity > y.a.identity ? 1 : x.b.identity < y.b.identity ? -1 : 1));
    return { pairs, threshold, far, facesSearched: rows.length };
  }

  /** 1:1 verification of an embedding against another embedding or an enrolled identity. */
  async verify(a: Float32Array | readonly number[], b: VerifyTarget, o: VerifyOptions = {}): Promise<VerifyResult> {
    if (isIdentityRef(b)) {
      const g = await this.gallery(b.gallery);
      const ident = await this.identity(g, b.identity);
      const va = toUnitVector(a, g.dimension, 'a');
      const { threshold, far } = await this.resolveThreshold(o, o.modelId ?? g.modelId);
      const rows = await this.meta.identityEmbeddings(g.id, ident.id);
      if (rows.length === 0) throw new CosfaceError('FACE_NOT_FOUND', `identity "${b.identity}" has no faces`);
      if (rows.some((r) => r.embedding.length !== g.dimension)) throw modelChangedError(g.name);
      if (g.migration) await this.assertSameGeneration(g);
      const m = new Float32Array(rows.length * g.dimension);
      rows.forEach((r, i) => m.set(r.embedding, i * g.dimension));
      const top = await this.scorer(va, 1, m, rows.length, g.dimension, 1);
      const score = top.scores[0]!;
      return { score, same: threshold === null ? null : score >= threshold, threshold, far, faceId: rows[top.indices[0]!]!.id };
    }
    this.open();
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
    const { threshold, far } = await this.resolveThreshold(o, o.modelId ?? '');
    const top = await this.scorer(va, 1, vb, 1, dim, 1);
    const score = top.scores[0]!;
    return { score, same: threshold === null ? null : score >= threshold, threshold, far };
  }

  // ---- thresholds ----

  /** Calibrates thresholds from labelled pair scores and stores them for the model (replacing old ones). */
  async calibrateModel(modelId: string, pairs: readonly ScoredPair[], fars: readonly number[] = DEFAULT_FARS): Promise<Calibration> {
    this.open();
    if (typeof modelId !== 'string' || modelId.length === 0) throw new CosfaceError('BAD_INPUT', 'calibrateModel: modelId is required');
    let c: Calibration;
    try {
      c = calibrate(pairs, fars);
    } catch (e) {
      throw new CosfaceError('BAD_INPUT', (e as Error).message);
    }
    if (c.impostorPairs === 0) throw new CosfaceError('BAD_INPUT', 'calibrateModel: no impostor pairs (same: false) given');
    const now = new Date();
    await this.meta.setThresholds(
      modelId,
      c.thresholds.map((t) => ({ far: t.far, threshold: t.threshold, impostorPairs: c.impostorPairs, genuinePairs: c.genuinePairs, tar: t.tar, calibratedAt: now })),
    );
    return c;
  }

  /** Stored thresholds of a model, strictest FAR last. */
  async thresholds(modelId: string): Promise<ThresholdRecord[]> {
    this.open();
    if (typeof modelId !== 'string') throw new CosfaceError('BAD_INPUT', 'modelId must be a string');
    return (await this.meta.thresholds(modelId)).sort((a, b) => b.far - a.far);
  }

  // ---- model migration (the driver that re-embeds photos is src/migrate/migrate-gallery.ts) ----

  /**
   * Claims a gallery for a migration to another model as `owner` (any string naming this worker).
   * While the claim is held, identify and verify go on with the gallery's current vectors and
   * adding faces fails with MIGRATING. A claim held by another owner fails with MIGRATING unless
   * `ownerGone(holder)` says that owner is dead (or its claim was not renewed for
   * MIGRATION_LEASE_MS). Vectors already staged for the same model are kept (a rerun resumes).
   */
  async beginMigration(gallery: string, target: MigrationTargetInput, o: { owner: string; ownerGone?: (holder: MigrationClaim) => boolean }): Promise<{ staged: number; gallery: GalleryInfo }> {
    const g = await this.gallery(gallery);
    if (!target || typeof target.modelId !== 'string' || target.modelId.length === 0) throw new CosfaceError('BAD_INPUT', 'beginMigration: modelId is required');
    checkInt(target.dimension, 'dimension', 1, 65536);
    if (typeof o?.owner !== 'string' || o.owner.length === 0) throw new CosfaceError('BAD_INPUT', 'beginMigration: owner is required');
    const r = await this.meta.claimMigration(
      g.id,
      { modelId: target.modelId, modelVersion: target.modelVersion ?? '1', dimension: target.dimension },
      o.owner,
      new Date(),
      (h) => o.ownerGone?.(h) ?? false,
    );
    if (!r.claimed) {
      const age = Math.round((Date.now() - r.holder.heartbeatAt) / 1000);
      throw new CosfaceError('MIGRATING', `gallery "${g.name}" is being migrated to ${r.holder.modelId} by ${r.holder.owner} (last seen ${age} s ago); wait for it, or for its claim to lapse ${MIGRATION_LEASE_S} s after its last sign of life`);
    }
    return { staged: r.staged, gallery: await this.getGallery(gallery) };
  }

  /** The migration in progress (null when none) and how many faces are staged for it. */
  async migrationStatus(gallery: string): Promise<{ claim: MigrationClaim | null; active: boolean; staged: number }> {
    const g = await this.gallery(gallery);
    return { claim: g.migration, active: migrationActive(g.migration), staged: g.migration ? await this.meta.stagedCount(g.id) : 0 };
  }

  /** Renews the claim (a migration calls this at least every few seconds); MIGRATING when it was lost. */
  async renewMigration(gallery: string, owner: string): Promise<void> {
    const g = await this.gallery(gallery);
    if (!(await this.meta.renewMigration(g.id, owner, new Date()))) throw lostClaim(g.name, owner);
  }

  /** Faces still to re-embed (live, no staged vector of the migration's model), by id after `afterId`. */
  async facesToMigrate(gallery: string, afterId = 0, limit = 256): Promise<FaceToStage[]> {
    const g = await this.gallery(gallery);
    checkInt(afterId, 'afterId', 0, Number.MAX_SAFE_INTEGER);
    checkInt(limit, 'limit', 1, 100_000);
    return this.meta.unstagedFaces(g.id, afterId, limit);
  }

  /** Stores re-embedded vectors of faces (any non-zero vectors of the target dimension; stored unit length). */
  async stageMigratedFaces(gallery: string, owner: string, rows: readonly { faceId: number; embedding: Float32Array | readonly number[] }[]): Promise<void> {
    const g = await this.gallery(gallery);
    const claim = g.migration;
    if (!claim || claim.owner !== owner) throw lostClaim(g.name, owner);
    const unit = rows.map((r, i) => {
      checkInt(r.faceId, `rows[${i}].faceId`, 1, Number.MAX_SAFE_INTEGER);
      return { faceId: r.faceId, embedding: toUnitVector(r.embedding, claim.dimension, `rows[${i}].embedding`) };
    });
    if (!(await this.meta.stageEmbeddings(g.id, owner, unit))) throw lostClaim(g.name, owner);
  }

  /**
   * Switches the gallery to the migration's model in one transaction: every live face takes its
   * staged vector, the model id, version and dimension change, the index is replaced; faces in
   * `drop` are deleted first. MIGRATION_INCOMPLETE (nothing changed) when a live face has no
   * staged vector. The gallery keeps its id, name, identities, face ids and API keys.
   */
  async switchMigration(gallery: string, owner: string, o: { drop?: readonly number[] } = {}): Promise<MigrationSwitch> {
    const g = await this.gallery(gallery);
    const drop = o.drop ?? [];
    drop.forEach((id, i) => checkInt(id, `drop[${i}]`, 1, Number.MAX_SAFE_INTEGER));
    if (!g.migration || g.migration.owner !== owner) throw lostClaim(g.name, owner);
    // The new index is built before the switch from the staged vectors, so the switch swaps it in.
    await this.index.prepareSwitch(g, { dimension: g.migration.dimension, generation: g.generation + 1 });
    const r = await this.meta.switchModel(g.id, owner, drop);
    if (!r.switched) {
      if (r.reason === 'not-holder') throw lostClaim(g.name, owner);
      const ids = r.faceIds;
      throw new CosfaceError('MIGRATION_INCOMPLETE', `gallery "${g.name}": ${ids.length} live face${ids.length === 1 ? ' has' : 's have'} no vector of the new model (face ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', ...' : ''}); nothing was switched`);
    }
    // Committed. The index follows (the old generation's graph and snapshot are dropped).
    await this.index.modelSwitched(r.gallery);
    return {
      faces: r.faces,
      dropped: r.dropped,
      gallery: { ...galleryInfo(r.gallery), ...(await this.meta.counts(g.id)) },
      previous: { modelId: g.modelId, modelVersion: g.modelVersion, dimension: g.dimension },
    };
  }

  /** Ends a migration without switching; `owner` null ends anyone's. Staged vectors stay for a rerun unless `discard`. */
  async abortMigration(gallery: string, owner: string | null, o: { discard?: boolean } = {}): Promise<boolean> {
    const g = await this.gallery(gallery);
    return this.meta.releaseMigration(g.id, owner, !!o.discard);
  }

  // ---- index maintenance ----

  async galleryStats(name: string): Promise<GalleryStats> {
    const g = await this.gallery(name);
    return {
      ...galleryInfo(g),
      ...(await this.meta.counts(g.id)),
      deletedFaces: await this.meta.deletedFaceCount(g.id),
      index: await this.index.stats(g),
    };
  }

  /** Writes index snapshots of every loaded gallery (or one) with unsaved changes. */
  async checkpoint(gallery?: string): Promise<void> {
    this.open();
    if (gallery === undefined) return this.index.checkpoint();
    const g = await this.meta.galleryByName(gallery);
    if (g) await this.index.checkpoint([g]);
  }

  /**
   * Rebuilds a gallery's index without deleted entries (hnswlib: in a worker thread for file
   * databases, searches and writes go on meanwhile against the old index). Resolves once the new
   * index is in use.
   */
  async rebuildIndex(gallery: string): Promise<void> {
    const g = await this.gallery(gallery);
    return this.index.rebuild(g);
  }

  /** Compares a gallery's index with the database (tests, `gallery stats --check`). */
  async checkConsistency(gallery: string): Promise<ConsistencyReport> {
    const g = await this.gallery(gallery);
    return this.index.check(g);
  }

  /** Waits for background work, writes index snapshots and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.index.close();
    await this.meta.close();
    await this.parts.closeBackend?.();
  }

  // ---- internals ----

  private open(): void {
    if (this.closed) throw new CosfaceError('BAD_INPUT', 'the store is closed');
  }

  private async gallery(name: string): Promise<GalleryRecord> {
    this.open();
    if (typeof name !== 'string') throw new CosfaceError('BAD_INPUT', 'gallery name must be a string');
    const g = await this.meta.galleryByName(name);
    if (!g) throw new CosfaceError('GALLERY_NOT_FOUND', `gallery "${name}" not found`);
    return g;
  }

  private async identity(g: GalleryRecord, externalId: string): Promise<IdentityRecord> {
    if (typeof externalId !== 'string') throw new CosfaceError('BAD_INPUT', 'identity must be an external id string');
    const row = await this.meta.liveIdentity(g.id, externalId);
    if (!row) throw new CosfaceError('IDENTITY_NOT_FOUND', `identity "${externalId}" not found in gallery "${g.name}"`);
    return row;
  }

  /** Exact scores of index candidates from the stored (database) vectors. */
  private async rerank(g: GalleryRecord, v: Float32Array, rows: CandidateRecord[]): Promise<ScoredFace[]> {
    if (rows.length === 0) return [];
    const m = new Float32Array(rows.length * g.dimension);
    rows.forEach((r, i) => m.set(r.embedding, i * g.dimension));
    const top = await this.scorer(v, 1, m, rows.length, g.dimension, rows.length);
    const out: ScoredFace[] = [];
    for (let i = 0; i < top.k; i++) {
      const r = top.indices[i]!;
      if (r >= 0) out.push({ faceId: rows[r]!.faceId, score: top.scores[i]! });
    }
    return out;
  }

  private async resolveThreshold(o: ThresholdChoice, modelId: string): Promise<{ threshold: number | null; far: number | null }> {
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
    const rows = await this.thresholds(modelId);
    const hit = rows.find((r) => Math.abs(r.far - o.far!) <= 1e-9 * o.far!);
    if (!hit) {
      const have = rows.map((r) => r.far).join(', ') || 'none';
      throw new CosfaceError('NOT_CALIBRATED', `no threshold calibrated at FAR ${o.far} for model "${modelId}" (calibrated: ${have})`);
    }
    return { threshold: hit.threshold, far: hit.far };
  }
}

const MIGRATION_LEASE_S = Math.round(MIGRATION_LEASE_MS / 1000);

function lostClaim(name: string, owner: string): CosfaceError {
  return new CosfaceError('MIGRATING', `gallery "${name}": the migration claim of ${owner} was lost (it lapsed and another migration took it, or it was aborted)`);
}

function groupByIdentity(scored: ScoredFace[], rows: Map<number, CandidateRecord>, k: number): IdentifyCandidate[] {
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

// ---- helpers ----

function galleryInfo(g: GalleryRecord): Omit<GalleryInfo, 'identities' | 'faces'> {
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

function identityInfo(r: IdentityRecord, faceCount: number): IdentityInfo {
  return {
    id: r.id,
    externalId: r.externalId,
    displayName: r.displayName,
    metadata: r.metadata ?? null,
    createdAt: r.createdAt,
    faces: faceCount,
  };
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
  if (input.metadata !== undefined) checkMetadata(input.metadata);
}

function checkMetadata(metadata: unknown): void {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new CosfaceError('BAD_INPUT', 'metadata must be a plain object');
  }
  try {
    JSON.stringify(metadata);
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `metadata is not JSON-serialisable: ${(e as Error).message}`);
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
