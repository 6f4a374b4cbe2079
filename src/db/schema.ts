// The database schema, the single source of truth for galleries, identities and faces.
// Migrations in migrations/ are generated from this file by drizzle-kit (`npx drizzle-kit generate`).
import { sql } from 'drizzle-orm';
import {
  blob,
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
  uniqueIndex,
} from 'drizzle-orm/sqlite-core';

/** A face box in source-photo pixels. */
export interface FaceBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Facial keypoints in source-photo pixels, [x, y] pairs in the detector's order. */
export type FaceKeypoints = [number, number][];

/**
 * A gallery's model migration in progress (`cosface gallery migrate`), as stored in
 * galleries.migration: the model the faces are being re-embedded with, and who holds the claim
 * (renewed while it works; a claim not renewed for a while no longer blocks anything).
 */
export interface MigrationClaim {
  modelId: string;
  modelVersion: string;
  dimension: number;
  owner: string;
  startedAt: number; // ms since the epoch
  heartbeatAt: number; // ms since the epoch
}

export const galleries = sqliteTable('galleries', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  modelId: text('model_id').notNull(),
  modelVersion: text('model_version').notNull(),
  dimension: integer('dimension').notNull(),
  // HNSW parameters: graph degree, build beam width and search beam width.
  hnswM: integer('hnsw_m').notNull(),
  hnswEfConstruction: integer('hnsw_ef_construction').notNull(),
  hnswEf: integer('hnsw_ef').notNull(),
  // Bumped once per delete transaction; faces.deleteSeq records the value their delete got, so an
  // index snapshot knows exactly which deletes happened after it was written.
  deleteSeq: integer('delete_seq').notNull().default(0),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  // Bumped when the gallery switches to another model (its vectors all replaced): indexes built
  // for an older generation are discarded.
  generation: integer('generation').notNull().default(0),
  // The model migration in progress, if any (MigrationClaim); its vectors wait in staged_embeddings.
  migration: text('migration', { mode: 'json' }).$type<MigrationClaim>(),
});

/** gallery_id: the row goes with its gallery (ON DELETE CASCADE). */
const galleryId = () => integer('gallery_id').references(() => galleries.id, { onDelete: 'cascade' });

export const identities = sqliteTable(
  'identities',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    galleryId: galleryId().notNull(),
    externalId: text('external_id').notNull(),
    displayName: text('display_name'),
    metadata: text('metadata', { mode: 'json' }).$type<Record<string, unknown>>(),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    // Soft delete: the row stays for audit, and the external id becomes free to enroll again.
    deletedAt: integer('deleted_at', { mode: 'timestamp_ms' }),
  },
  (t) => [
    uniqueIndex('identities_gallery_external_live')
      .on(t.galleryId, t.externalId)
      .where(sql`${t.deletedAt} IS NULL`),
  ],
);

export const faces = sqliteTable(
  'faces',
  {
    // AUTOINCREMENT: ids are never reused, so the row id doubles as the face sequence number that
    // index snapshots are measured against, and as the HNSW label.
    id: integer('id').primaryKey({ autoIncrement: true }),
    galleryId: galleryId().notNull(),
    identityId: integer('identity_id')
      .notNull()
      .references(() => identities.id, { onDelete: 'cascade' }),
    photoPath: text('photo_path'),
    photoHash: text('photo_hash'), // sha256 hex of the source photo bytes
    box: text('box', { mode: 'json' }).$type<FaceBox>(),
    keypoints: text('keypoints', { mode: 'json' }).$type<FaceKeypoints>(),
    quality: real('quality'),
    embedding: blob('embedding', { mode: 'buffer' }).notNull(), // float32 little-endian, unit length
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    deleted: integer('deleted', { mode: 'boolean' }).notNull().default(false),
    deleteSeq: integer('delete_seq'),
  },
  (t) => [
    index('faces_gallery_id').on(t.galleryId, t.id),
    index('faces_identity').on(t.identityId),
    index('faces_gallery_photo_hash').on(t.galleryId, t.photoHash),
    index('faces_gallery_delete_seq').on(t.galleryId, t.deleteSeq),
  ],
);

// A migration's re-embedded vectors (the new model's), one per face, until the switch moves them
// into faces.embedding in one transaction. Staged for the model named here: a migration to another
// model starts over.
export const stagedEmbeddings = sqliteTable(
  'staged_embeddings',
  {
    galleryId: galleryId().notNull(),
    faceId: integer('face_id')
      .notNull()
      .references(() => faces.id, { onDelete: 'cascade' }),
    modelId: text('model_id').notNull(),
    embedding: blob('embedding', { mode: 'buffer' }).notNull(), // float32 little-endian, unit length
  },
  (t) => [primaryKey({ columns: [t.galleryId, t.faceId] })],
);

export const apiKeys = sqliteTable('api_keys', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  keyHash: text('key_hash').notNull().unique(), // sha256 hex of the key; the key itself is never stored
  // null: the key may use every gallery.
  galleryId: galleryId(),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  revokedAt: integer('revoked_at', { mode: 'timestamp_ms' }),
});

export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

export const jobs = sqliteTable(
  'jobs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    kind: text('kind').notNull(), // 'enroll', 'rebuild-index', 'dedup', ...
    galleryId: galleryId(),
    status: text('status').$type<JobStatus>().notNull(),
    total: integer('total'),
    done: integer('done').notNull().default(0),
    params: text('params', { mode: 'json' }).$type<Record<string, unknown>>(),
    result: text('result', { mode: 'json' }).$type<Record<string, unknown>>(),
    error: text('error'),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
    updatedAt: integer('updated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [index('jobs_status').on(t.status)],
);

export const modelThresholds = sqliteTable(
  'model_thresholds',
  {
    modelId: text('model_id').notNull(),
    far: real('far').notNull(),
    threshold: real('threshold').notNull(),
    // What the threshold was measured on, so a user can judge it.
    impostorPairs: integer('impostor_pairs').notNull(),
    genuinePairs: integer('genuine_pairs').notNull(),
    tar: real('tar'), // true-accept rate at this threshold on the genuine pairs, when there were any
    calibratedAt: integer('calibrated_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.modelId, t.far] })],
);

// ---- photo libraries (cosface dedupe): every face of every photo of a folder, kept so that a
// second run embeds nothing again; photos are known by their content hash, so moved or renamed
// files are recognised. Persistence is in src/library/library-store.ts.

export const libraries = sqliteTable('libraries', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  modelId: text('model_id').notNull(),
  dimension: integer('dimension').notNull(),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
});

export const libraryPhotos = sqliteTable(
  'library_photos',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    libraryId: integer('library_id')
      .notNull()
      .references(() => libraries.id, { onDelete: 'cascade' }),
    contentHash: text('content_hash').notNull(), // sha256 hex of the file bytes
    path: text('path').notNull(), // where it was last seen
    format: text('format').notNull(),
    bytes: integer('bytes').notNull(),
    width: integer('width').notNull(),
    height: integer('height').notNull(),
    // 64-bit perceptual hashes, 16 hex digits each: the whole photo, then crops of it
    // (src/near-dup/perceptual-hash.ts); null when the photo is too flat to hash reliably.
    perceptualHashes: text('perceptual_hashes'),
    faceCount: integer('face_count').notNull(),
    createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  },
  (t) => [uniqueIndex('library_photos_content').on(t.libraryId, t.contentHash)],
);

export const libraryPeople = sqliteTable('library_people', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  libraryId: integer('library_id')
    .notNull()
    .references(() => libraries.id, { onDelete: 'cascade' }),
  // Set by a user who confirmed the person: never merged with another automatically.
  name: text('name'),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
});

export const libraryFaces = sqliteTable(
  'library_faces',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    photoId: integer('photo_id')
      .notNull()
      .references(() => libraryPhotos.id, { onDelete: 'cascade' }),
    box: text('box', { mode: 'json' }).$type<[number, number, number, number]>().notNull(), // [x, y, w, h] photo pixels
    keypoints: text('keypoints', { mode: 'json' }).$type<FaceKeypoints>(),
    score: real('score').notNull(),
    quality: real('quality').notNull(),
    embedding: blob('embedding', { mode: 'buffer' }).notNull(), // float32 little-endian, unit length
    personId: integer('person_id').references(() => libraryPeople.id, { onDelete: 'set null' }),
    // Whether a clustering has seen the face (a clustered face with no person is "unclustered";
    // faces not yet clustered join existing people incrementally).
    clustered: integer('clustered', { mode: 'boolean' }).notNull().default(false),
  },
  (t) => [index('library_faces_photo').on(t.photoId), index('library_faces_person').on(t.personId)],
);

export type GalleryRow = typeof galleries.$inferSelect;
export type IdentityRow = typeof identities.$inferSelect;
export type FaceRow = typeof faces.$inferSelect;
export type ModelThresholdRow = typeof modelThresholds.$inferSelect;
export type LibraryPhotoRow = typeof libraryPhotos.$inferSelect;
export type LibraryFaceRow = typeof libraryFaces.$inferSelect;
