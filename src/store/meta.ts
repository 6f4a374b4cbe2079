// The metadata side of a store: galleries, identities, faces (with their vectors), API keys and
// calibrated thresholds, kept in a database through drizzle. One interface, one implementation per
// database (sqlite/sqlite-meta.ts, pg/pg-meta.ts). Every method is a complete unit of work: the
// ones that write several rows run one transaction, so a write is all-or-nothing and durable when
// its promise resolves. Validation and error codes live above this line (store.ts).
import type { FaceBox, FaceKeypoints } from '../db/schema.js';

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
}

export type NewGallery = Omit<GalleryRecord, 'id'>;

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

  keyByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  insertKey(k: { name: string; keyHash: string; galleryId: number | null; createdAt: Date }): Promise<ApiKeyRecord>;
  listKeys(): Promise<ApiKeyRecord[]>;
  hasAdminKey(): Promise<boolean>;
  /** Marks a live key revoked; false when there is no live key with this id. */
  revokeKey(id: number, at: Date): Promise<boolean>;

  close(): Promise<void>;
}
