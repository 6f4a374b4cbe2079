// The metadata side of a store: galleries, identities, faces (with their vectors), API keys and
// calibrated thresholds, kept in a database through drizzle. One interface, one implementation per
// database (sqlite/sqlite-meta.ts, pg/pg-meta.ts). Every method is a complete unit of work: the
// ones that write several rows run one transaction, so a write is all-or-nothing and durable when
// its promise resolves. Validation and error codes live above this line (store.ts).
import type { FaceBox, FaceKeypoints, MigrationClaim } from '../db/schema.js';
import { CosfaceError } from '../errors.js';

export type { MigrationClaim } from '../db/schema.js';

/**
 * How long a migration claim blocks adding faces after its last renewal: a migration renews it
 * with every batch it stages, so a killed one stops blocking writes after this long.
 */
export const MIGRATION_LEASE_MS = 30_000;

/** Whether a gallery's migration claim is held (renewed within the lease) at `now`. */
export function migrationActive(m: MigrationClaim | null | undefined, now = Date.now()): boolean {
  return !!m && now - m.heartbeatAt < MIGRATION_LEASE_MS;
}

export function migratingError(name: string, m: MigrationClaim): CosfaceError {
  return new CosfaceError(
    'MIGRATING',
    `gallery "${name}" is being migrated to model ${m.modelId} (${m.dimension}-d): faces cannot be added until the migration switches or stops; try again later`,
  );
}

export interface GalleryRecord {
  id: number;
  name: string;
  modelId: string;
  modelVersion: string;
  dimension: number;
  hnswM: number;
  hnswEfConstruction: number;
  hnswEf: number;
  createdAt: Date;
  /** Bumped by every model switch (indexes of an older generation are stale). */
  generation: number;
  /** The model migration in progress, or null. */
  migration: MigrationClaim | null;
}

export type NewGallery = Omit<GalleryRecord, 'id' | 'generation' | 'migration'>;

/** The model a migration re-embeds a gallery with. */
export interface MigrationTarget {
  modelId: string;
  modelVersion: string;
  dimension: number;
}

/** A live face (of a live identity) that has no staged vector of the migration's model yet. */
export interface FaceToStage {
  id: number;
  identityId: number;
  externalId: string;
  photoPath: string | null;
  photoHash: string | null;
  box: FaceBox | null;
}

export type ClaimResult = { claimed: true; staged: number } | { claimed: false; holder: MigrationClaim };

export type SwitchResult =
  | { switched: true; faces: number; dropped: number[]; gallery: GalleryRecord }
  | { switched: false; reason: 'not-holder' }
  | { switched: false; reason: 'unstaged'; faceIds: number[] };

export interface IdentityRecord {
  id: number;
  galleryId: number;
  externalId: string;
  displayName: string | null;
  metadata: Record<string, unknown> | null;
  createdAt: Date;
  deletedAt: Date | null;
}

export interface NewIdentity {
  externalId: string;
  displayName: string | null;
  metadata: Record<string, unknown> | null;
  createdAt: Date;
}

export interface NewFace {
  identityId: number;
  photoPath: string | null;
  photoHash: string | null;
  box: FaceBox | null;
  keypoints: FaceKeypoints | null;
  quality: number | null;
  /** Unit length, the gallery's dimension. */
  embedding: Float32Array;
  createdAt: Date;
}

/** A face for insertIdentitiesAndFaces: of identity `identityId`, or of new identity number `newIdentity`. */
export type NewFaceOfNew = NewFace & { newIdentity?: number };

/** A live face with its identity and stored vector (search candidates). */
export interface CandidateRecord {
  faceId: number;
  identityId: number;
  embedding: Float32Array;
  externalId: string;
  displayName: string | null;
}

export interface StoredFaceRecord {
  id: number;
  box: FaceBox | null;
  keypoints: FaceKeypoints | null;
  quality: number | null;
  photoHash: string | null;
  createdAt: Date;
}

export interface ThresholdRecord {
  far: number;
  threshold: number;
  tar: number | null;
  impostorPairs: number;
  genuinePairs: number;
  calibratedAt: Date;
}

export interface ApiKeyRecord {
  id: number;
  name: string;
  galleryId: number | null;
  /** The gallery's name; null for admin keys, and for keys whose gallery is gone. */
  gallery: string | null;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface GalleryCounts {
  identities: number;
  faces: number;
}

export interface MetaStore {
  readonly dialect: 'sqlite' | 'postgres';

  galleryByName(name: string): Promise<GalleryRecord | undefined>;
  galleryById(id: number): Promise<GalleryRecord | undefined>;
  /** undefined when the name is taken. */
  insertGallery(g: NewGallery): Promise<GalleryRecord | undefined>;
  listGalleries(): Promise<(GalleryRecord & GalleryCounts)[]>;
  /** Live identities and faces. */
  counts(galleryId: number): Promise<GalleryCounts>;
  deletedFaceCount(galleryId: number): Promise<number>;
  /** Removes the gallery with its identities, faces and keys. */
  deleteGallery(galleryId: number): Promise<void>;

  liveIdentity(galleryId: number, externalId: string): Promise<IdentityRecord | undefined>;
  /** undefined when a live identity with this external id exists. */
  insertIdentity(galleryId: number, i: NewIdentity): Promise<IdentityRecord | undefined>;
  identityFaceCount(galleryId: number, identityId: number): Promise<number>;
  listIdentities(galleryId: number, page: { limit?: number; offset: number }): Promise<(IdentityRecord & { faces: number })[]>;
  updateIdentity(galleryId: number, identityId: number, patch: { displayName?: string | null; metadata?: Record<string, unknown> | null }): Promise<void>;
  /** Soft-deletes the identity and its live faces (one transaction); returns the faces' ids. */
  deleteIdentity(galleryId: number, identityId: number): Promise<number[]>;

  /** Inserts faces in one transaction; returns their ids in order. */
  insertFaces(galleryId: number, faces: readonly NewFace[]): Promise<number[]>;
  /**
   * Creates identities and inserts faces in one transaction, so a crash or an error leaves neither
   * (bulk enrollment). A face names a new identity by its index in `identities` (`newIdentity`),
   * or an existing one by `identityId`. undefined (and nothing written) when a live identity with
   * one of the external ids exists.
   */
  insertIdentitiesAndFaces(galleryId: number, identities: readonly NewIdentity[], faces: readonly NewFaceOfNew[]): Promise<{ identityIds: number[]; faceIds: number[] } | undefined>;
  /** Soft-deletes a live face; false when there is none with this id in the gallery. */
  deleteFace(galleryId: number, faceId: number): Promise<boolean>;
  hasPhoto(galleryId: number, photoHash: string): Promise<boolean>;
  /** The live faces among faceIds whose identity is live. */
  candidates(galleryId: number, faceIds: readonly number[]): Promise<CandidateRecord[]>;
  /** Live faces of an identity with their vectors, by id. */
  identityEmbeddings(galleryId: number, identityId: number): Promise<{ id: number; embedding: Float32Array }[]>;
  listFaces(galleryId: number, identityId: number): Promise<StoredFaceRecord[]>;

  /** Replaces a model's thresholds (one transaction). */
  setThresholds(modelId: string, rows: readonly ThresholdRecord[]): Promise<void>;
  thresholds(modelId: string): Promise<ThresholdRecord[]>;

  // ---- model migration (store.ts: Store.migration*; the driver is src/migrate/) ----
  // Faces are re-embedded into staged_embeddings while the gallery answers on its vectors; the
  // switch moves them into faces.embedding and changes the gallery's model in one transaction.
  // While a claim is held (migrationActive), insertFaces and insertIdentitiesAndFaces throw
  // CosfaceError MIGRATING.

  /**
   * Claims the gallery for a migration to `target` as `owner`. An existing claim that is still
   * held is taken over only when `takeOver(holder)` says so (its owner is gone). Staged vectors of
   * another model are removed; those of this model are kept (a rerun resumes). Returns how many
   * are staged, or the holder that refused.
   */
  claimMigration(galleryId: number, target: MigrationTarget, owner: string, now: Date, takeOver: (holder: MigrationClaim) => boolean): Promise<ClaimResult>;
  /** Renews the claim; false when `owner` no longer holds it. */
  renewMigration(galleryId: number, owner: string, now: Date): Promise<boolean>;
  /** Up to `limit` faces still to re-embed for the claimed model, by id, after `afterId`. */
  unstagedFaces(galleryId: number, afterId: number, limit: number): Promise<FaceToStage[]>;
  /** Stores re-embedded vectors (replacing earlier ones of the face); false when `owner` no longer holds the claim. */
  stageEmbeddings(galleryId: number, owner: string, rows: readonly { faceId: number; embedding: Float32Array }[]): Promise<boolean>;
  /** Live faces with a staged vector of the claimed model. */
  stagedCount(galleryId: number): Promise<number>;
  /**
   * The switch, one transaction: soft-deletes `drop`; refuses (nothing changed) when a live face
   * has no staged vector; else every live face takes its staged vector, the gallery takes the
   * claim's model id, version and dimension, its generation is bumped, the claim and the staged
   * vectors are removed (Postgres: the gallery's pgvector index is rebuilt for the new dimension in
   * the same transaction).
   */
  switchModel(galleryId: number, owner: string, drop: readonly number[]): Promise<SwitchResult>;
  /** Ends a claim without switching (owner null: whoever holds it). Staged vectors stay for a rerun unless `discard`. */
  releaseMigration(galleryId: number, owner: string | null, discard: boolean): Promise<boolean>;

  keyByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  insertKey(k: { name: string; keyHash: string; galleryId: number | null; createdAt: Date }): Promise<ApiKeyRecord>;
  listKeys(): Promise<ApiKeyRecord[]>;
  hasAdminKey(): Promise<boolean>;
  /** Marks a live key revoked; false when there is no live key with this id. */
  revokeKey(id: number, at: Date): Promise<boolean>;

  close(): Promise<void>;
}
