// The PostgreSQL schema (pgvector): the same records as schema.ts, laid out so that Citus can
// distribute the big tables by gallery (docs/scale-out.md). identities and faces carry gallery_id
// in every primary key, unique index and foreign key, so one gallery's rows live on one shard and a
// search touches one shard. galleries, api_keys, jobs and model_thresholds are small tables that
// Citus keeps as reference tables (a copy on every node); no reference table has a foreign key to a
// distributed one. Face vectors are `vector` without a fixed dimension (galleries differ); each
// gallery gets its own partial HNSW index over `embedding::vector(d)` (pg/pgvector-index.ts).
// Migrations in migrations/pg are generated from this file (`npx drizzle-kit generate --config drizzle.pg.config.ts`).
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  customType,
  doublePrecision,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import type { FaceBox, FaceKeypoints, JobStatus, MigrationClaim } from './schema.js';

/** pgvector's `vector` without a dimension; values travel as its text form '[x,y,...]'. */
const vector = customType<{ data: Float32Array; driverData: string }>({
  dataType: () => 'vector',
  toDriver: (v) => vectorLiteral(v),
  fromDriver: (s) => parseVector(s),
});

export function vectorLiteral(v: ArrayLike<number>): string {
  let out = '[';
  for (let i = 0; i < v.length; i++) out += (i ? ',' : '') + String(v[i]);
  return out + ']';
}

export function parseVector(s: string | unknown): Float32Array {
  const text = String(s);
  const body = text.slice(1, -1);
  if (body.length === 0) return new Float32Array(0);
  const parts = body.split(',');
  const out = new Float32Array(parts.length);
  for (let i = 0; i < parts.length; i++) out[i] = Number(parts[i]);
  return out;
}

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const id = (name: string) => bigint(name, { mode: 'number' });

export const galleries = pgTable('galleries', {
  id: id('id').primaryKey().generatedByDefaultAsIdentity(),
  name: text('name').notNull().unique(),
  modelId: text('model_id').notNull(),
  modelVersion: text('model_version').notNull(),
  dimension: integer('dimension').notNull(),
  hnswM: integer('hnsw_m').notNull(),
  hnswEfConstruction: integer('hnsw_ef_construction').notNull(),
  hnswEf: integer('hnsw_ef').notNull(),
  createdAt: ts('created_at').notNull(),
  // Bumped when the gallery switches to another model; the migration in progress (schema.ts).
  generation: integer('generation').notNull().default(0),
  migration: jsonb('migration').$type<MigrationClaim>(),
});

/** gallery_id: the row goes with its gallery (ON DELETE CASCADE). */
const galleryId = () => id('gallery_id').references(() => galleries.id, { onDelete: 'cascade' });

export const identities = pgTable(
  'identities',
  {
    galleryId: galleryId().notNull(),
    id: id('id').generatedByDefaultAsIdentity(),
    externalId: text('external_id').notNull(),
    displayName: text('display_name'),
    metadata: jsonb('metadata').$type<Record<string, unknown>>(),
    createdAt: ts('created_at').notNull(),
    deletedAt: ts('deleted_at'),
  },
  (t) => [
    primaryKey({ columns: [t.galleryId, t.id] }),
    uniqueIndex('identities_gallery_external_live')
      .on(t.galleryId, t.externalId)
      .where(sql`${t.deletedAt} IS NULL`),
  ],
);

export const faces = pgTable(
  'faces',
  {
    galleryId: galleryId().notNull(),
    id: id('id').generatedByDefaultAsIdentity(),
    identityId: id('identity_id').notNull(),
    photoPath: text('photo_path'),
    photoHash: text('photo_hash'),
    box: jsonb('box').$type<FaceBox>(),
    keypoints: jsonb('keypoints').$type<FaceKeypoints>(),
    quality: doublePrecision('quality'),
    embedding: vector('embedding').notNull(), // unit length
    createdAt: ts('created_at').notNull(),
    deleted: boolean('deleted').notNull().default(false),
  },
  (t) => [
    primaryKey({ columns: [t.galleryId, t.id] }),
    foreignKey({ columns: [t.galleryId, t.identityId], foreignColumns: [identities.galleryId, identities.id] }).onDelete('cascade'),
    index('faces_gallery_identity').on(t.galleryId, t.identityId),
    index('faces_gallery_photo_hash').on(t.galleryId, t.photoHash),
  ],
);

// A migration's re-embedded vectors until the switch (schema.ts); distributed by gallery like faces.
export const stagedEmbeddings = pgTable(
  'staged_embeddings',
  {
    galleryId: galleryId().notNull(),
    faceId: id('face_id').notNull(),
    modelId: text('model_id').notNull(),
    embedding: vector('embedding').notNull(),
  },
  (t) => [primaryKey({ columns: [t.galleryId, t.faceId] })],
);

export const apiKeys = pgTable('api_keys', {
  id: id('id').primaryKey().generatedByDefaultAsIdentity(),
  name: text('name').notNull(),
  keyHash: text('key_hash').notNull().unique(),
  // null: the key may use every gallery. (A reference table pointing at a reference table: allowed by Citus.)
  galleryId: galleryId(),
  createdAt: ts('created_at').notNull(),
  revokedAt: ts('revoked_at'),
});

export const jobs = pgTable(
  'jobs',
  {
    id: id('id').primaryKey().generatedByDefaultAsIdentity(),
    kind: text('kind').notNull(),
    galleryId: galleryId(),
    status: text('status').$type<JobStatus>().notNull(),
    total: integer('total'),
    done: integer('done').notNull().default(0),
    params: jsonb('params').$type<Record<string, unknown>>(),
    result: jsonb('result').$type<Record<string, unknown>>(),
    error: text('error'),
    createdAt: ts('created_at').notNull(),
    updatedAt: ts('updated_at').notNull(),
  },
  (t) => [index('jobs_status').on(t.status)],
);

export const modelThresholds = pgTable(
  'model_thresholds',
  {
    modelId: text('model_id').notNull(),
    far: doublePrecision('far').notNull(),
    threshold: doublePrecision('threshold').notNull(),
    impostorPairs: integer('impostor_pairs').notNull(),
    genuinePairs: integer('genuine_pairs').notNull(),
    tar: doublePrecision('tar'),
    calibratedAt: ts('calibrated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.modelId, t.far] })],
);
