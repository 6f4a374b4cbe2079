// MetaStore on SQLite (better-sqlite3 through drizzle): synchronous underneath, each method one
// statement or one transaction. Deletes are soft and numbered (galleries.delete_seq) so that the
// derived HNSW index (sqlite/hnsw-vector-index.ts) can tell which deletes it has applied.
import type Database from 'better-sqlite3';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Db, OpenedDb } from '../../db/open-db.js';
import { apiKeys, faces, galleries, identities, modelThresholds, type GalleryRow, type IdentityRow } from '../../db/schema.js';
import { blobToEmbedding, embeddingToBlob } from '../embedding.js';
import * as mig from '../edge/sync-sqlite-migration.js';
import type { SyncSqliteDb } from '../edge/sync-sqlite-meta.js';
import type {
  ApiKeyRecord,
  ClaimResult,
  FaceToStage,
  MigrationClaim,
  MigrationTarget,
  SwitchResult,
  CandidateRecord,
  GalleryCounts,
  GalleryRecord,
  IdentityRecord,
  MetaStore,
  NewFace,
  NewGallery,
  NewIdentity,
  NewFaceOfNew,
  StoredFaceRecord,
  ThresholdRecord,
} from '../meta.js';

export class SqliteMeta implements MetaStore {
  readonly dialect = 'sqlite' as const;
  readonly sqlite: Database.Database;
  private readonly db: Db;
  /** Hot-path queries prepared once: building a drizzle query costs more than running it. */
  private readonly q;

  constructor(opened: OpenedDb) {
    this.sqlite = opened.sqlite;
    const db = (this.db = opened.db);
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
      candidates: this.sqlite.prepare(
        `SELECT f.id AS faceId, f.identity_id AS identityId, f.embedding, i.external_id AS externalId, i.display_name AS displayName
         FROM faces f JOIN identities i ON i.id = f.identity_id
         WHERE f.id IN (SELECT value FROM json_each(?)) AND f.gallery_id = ? AND f.deleted = 0 AND i.deleted_at IS NULL`,
      ),
      keyByHash: this.sqlite.prepare(
        `SELECT k.id, k.name, k.gallery_id AS galleryId, g.name AS gallery, k.created_at AS createdAt, k.revoked_at AS revokedAt
         FROM api_keys k LEFT JOIN galleries g ON g.id = k.gallery_id WHERE k.key_hash = ?`,
      ),
      liveFaces: this.sqlite.prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND deleted = 0'),
      liveIdentities: this.sqlite.prepare('SELECT COUNT(*) AS n FROM identities WHERE gallery_id = ? AND deleted_at IS NULL'),
    };
  }

  async galleryByName(name: string): Promise<GalleryRecord | undefined> {
    const r = this.q.galleryByName.get({ name });
    return r && galleryRecord(r);
  }

  async galleryById(id: number): Promise<GalleryRecord | undefined> {
    const r = this.db.select().from(galleries).where(eq(galleries.id, id)).get();
    return r && galleryRecord(r);
  }

  // Every write transaction is BEGIN IMMEDIATE: it takes the write lock (waiting up to the busy
  // timeout for another process: a CLI enroll beside the server) before it reads. A deferred one
  // that reads first cannot wait for the lock when it upgrades and fails with SQLITE_BUSY at once.

  async insertGallery(g: NewGallery): Promise<GalleryRecord | undefined> {
    return this.sqlite.transaction(() => {
      if (this.q.galleryByName.get({ name: g.name })) return undefined;
      return galleryRecord(this.db.insert(galleries).values(g).returning().get());
    }).immediate();
  }

  async listGalleries(): Promise<(GalleryRecord & GalleryCounts)[]> {
    return this.db
      .select({
        g: galleries,
        identities: sql<number>`(SELECT COUNT(*) FROM identities i WHERE i.gallery_id = galleries.id AND i.deleted_at IS NULL)`,
        faces: sql<number>`(SELECT COUNT(*) FROM faces f WHERE f.gallery_id = galleries.id AND f.deleted = 0)`,
      })
      .from(galleries)
      .orderBy(galleries.name)
      .all()
      .map((r) => ({ ...galleryRecord(r.g), identities: r.identities, faces: r.faces }));
  }

  async counts(galleryId: number): Promise<GalleryCounts> {
    return {
      identities: (this.q.liveIdentities.get(galleryId) as { n: number }).n,
      faces: (this.q.liveFaces.get(galleryId) as { n: number }).n,
    };
  }

  async deletedFaceCount(galleryId: number): Promise<number> {
    return (this.sqlite.prepare('SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ? AND deleted = 1').get(galleryId) as { n: number }).n;
  }

  async deleteGallery(galleryId: number): Promise<void> {
    // identities, faces, keys and jobs go with it (ON DELETE CASCADE).
    this.db.delete(galleries).where(eq(galleries.id, galleryId)).run();
  }

  async liveIdentity(galleryId: number, externalId: string): Promise<IdentityRecord | undefined> {
    return this.q.liveIdentity.get({ galleryId, externalId }) as IdentityRecord | undefined;
  }

  async insertIdentity(galleryId: number, i: NewIdentity): Promise<IdentityRecord | undefined> {
    return this.sqlite.transaction(() => {
      if (this.q.liveIdentity.get({ galleryId, externalId: i.externalId })) return undefined;
      return identityRecord(this.q.insertIdentity.get({ galleryId, ...i })!);
    }).immediate();
  }

  async identityFaceCount(_galleryId: number, identityId: number): Promise<number> {
    return (this.sqlite.prepare('SELECT COUNT(*) AS n FROM faces WHERE identity_id = ? AND deleted = 0').get(identityId) as { n: number }).n;
  }

  async listIdentities(galleryId: number, page: { limit?: number; offset: number }): Promise<(IdentityRecord & { faces: number })[]> {
    return this.db
      .select({
        i: identities,
        faces: sql<number>`(SELECT COUNT(*) FROM faces f WHERE f.identity_id = identities.id AND f.deleted = 0)`,
      })
      .from(identities)
      .where(and(eq(identities.galleryId, galleryId), isNull(identities.deletedAt)))
      .orderBy(identities.id)
      .limit(page.limit ?? -1)
      .offset(page.offset)
      .all()
      .map((r) => ({ ...identityRecord(r.i), faces: r.faces }));
  }

  async updateIdentity(galleryId: number, identityId: number, patch: { displayName?: string | null; metadata?: Record<string, unknown> | null }): Promise<void> {
    if (Object.keys(patch).length === 0) return;
    this.db
      .update(identities)
      .set(patch)
      .where(and(eq(identities.id, identityId), eq(identities.galleryId, galleryId)))
      .run();
  }

  async deleteIdentity(galleryId: number, identityId: number): Promise<number[]> {
    return this.db.transaction((tx) => {
      const seq = bumpDeleteSeq(tx, galleryId);
      tx.update(identities).set({ deletedAt: new Date() }).where(eq(identities.id, identityId)).run();
      return tx
        .update(faces)
        .set({ deleted: true, deleteSeq: seq })
        .where(and(eq(faces.identityId, identityId), eq(faces.deleted, false)))
        .returning({ id: faces.id })
        .all()
        .map((r) => r.id);
    }, { behavior: 'immediate' });
  }

  async insertFaces(galleryId: number, rows: readonly NewFace[]): Promise<number[]> {
    return this.sqlite.transaction(() => {
      mig.assertNotMigrating(this.db, galleryId);
      return rows.map((f) => this.q.insertFace.get({ galleryId, ...f, embedding: embeddingToBlob(f.embedding) })!.id);
    }).immediate();
  }

  async insertIdentitiesAndFaces(galleryId: number, idents: readonly NewIdentity[], rows: readonly NewFaceOfNew[]): Promise<{ identityIds: number[]; faceIds: number[] } | undefined> {
    const taken = new Error('identity taken');
    try {
      return this.sqlite.transaction(() => {
        mig.assertNotMigrating(this.db, galleryId);
        const identityIds = idents.map((i) => {
          if (this.q.liveIdentity.get({ galleryId, externalId: i.externalId })) throw taken; // rolls back
          return this.q.insertIdentity.get({ galleryId, ...i })!.id;
        });
        const faceIds = rows.map(({ newIdentity, ...f }) =>
          this.q.insertFace.get({ galleryId, ...f, identityId: newIdentity === undefined ? f.identityId : identityIds[newIdentity]!, embedding: embeddingToBlob(f.embedding) })!.id,
        );
        return { identityIds, faceIds };
      }).immediate();
    } catch (e) {
      if (e === taken) return undefined;
      throw e;
    }
  }

  async deleteFace(galleryId: number, faceId: number): Promise<boolean> {
    return this.db.transaction((tx) => {
      const row = tx
        .select({ id: faces.id })
        .from(faces)
        .where(and(eq(faces.id, faceId), eq(faces.galleryId, galleryId), eq(faces.deleted, false)))
        .get();
      if (!row) return false;
      const seq = bumpDeleteSeq(tx, galleryId);
      tx.update(faces).set({ deleted: true, deleteSeq: seq }).where(eq(faces.id, faceId)).run();
      return true;
    }, { behavior: 'immediate' });
  }

  async hasPhoto(galleryId: number, photoHash: string): Promise<boolean> {
    return !!this.db
      .select({ id: faces.id })
      .from(faces)
      .where(and(eq(faces.galleryId, galleryId), eq(faces.photoHash, photoHash), eq(faces.deleted, false)))
      .limit(1)
      .get();
  }

  async candidates(galleryId: number, faceIds: readonly number[]): Promise<CandidateRecord[]> {
    if (faceIds.length === 0) return [];
    const rows = this.q.candidates.all(JSON.stringify(faceIds), galleryId) as (Omit<CandidateRecord, 'embedding'> & { embedding: Buffer })[];
    return rows.map((r) => ({ ...r, embedding: blobToEmbedding(r.embedding) }));
  }

  async identityEmbeddings(_galleryId: number, identityId: number): Promise<{ id: number; embedding: Float32Array }[]> {
    return this.db
      .select({ id: faces.id, embedding: faces.embedding })
      .from(faces)
      .where(and(eq(faces.identityId, identityId), eq(faces.deleted, false)))
      .orderBy(faces.id)
      .all()
      .map((r) => ({ id: r.id, embedding: blobToEmbedding(r.embedding) }));
  }

  async listFaces(_galleryId: number, identityId: number): Promise<StoredFaceRecord[]> {
    return this.db
      .select({ id: faces.id, box: faces.box, keypoints: faces.keypoints, quality: faces.quality, photoHash: faces.photoHash, createdAt: faces.createdAt })
      .from(faces)
      .where(and(eq(faces.identityId, identityId), eq(faces.deleted, false)))
      .orderBy(faces.id)
      .all();
  }

  async setThresholds(modelId: string, rows: readonly ThresholdRecord[]): Promise<void> {
    this.db.transaction((tx) => {
      tx.delete(modelThresholds).where(eq(modelThresholds.modelId, modelId)).run();
      for (const t of rows) tx.insert(modelThresholds).values({ modelId, ...t }).run();
    }, { behavior: 'immediate' });
  }

  async thresholds(modelId: string): Promise<ThresholdRecord[]> {
    return this.db
      .select()
      .from(modelThresholds)
      .where(eq(modelThresholds.modelId, modelId))
      .all()
      .map(({ modelId: _m, ...rest }) => rest);
  }

  // ---- model migration (shared with the edge meta: edge/sync-sqlite-migration.ts) ----

  private get syncDb(): SyncSqliteDb {
    return this.db as unknown as SyncSqliteDb;
  }

  async claimMigration(galleryId: number, target: MigrationTarget, owner: string, now: Date, takeOver: (holder: MigrationClaim) => boolean): Promise<ClaimResult> {
    return mig.claimMigration(this.syncDb, IMMEDIATE, galleryId, target, owner, now, takeOver);
  }

  async renewMigration(galleryId: number, owner: string, now: Date): Promise<boolean> {
    return mig.renewMigration(this.syncDb, IMMEDIATE, galleryId, owner, now);
  }

  async unstagedFaces(galleryId: number, afterId: number, limit: number): Promise<FaceToStage[]> {
    return mig.unstagedFaces(this.syncDb, galleryId, afterId, limit);
  }

  async stageEmbeddings(galleryId: number, owner: string, rows: readonly { faceId: number; embedding: Float32Array }[]): Promise<boolean> {
    return mig.stageEmbeddings(this.syncDb, IMMEDIATE, galleryId, owner, rows, embeddingToBlob);
  }

  async stagedCount(galleryId: number): Promise<number> {
    return mig.stagedCount(this.syncDb, galleryId);
  }

  async switchModel(galleryId: number, owner: string, drop: readonly number[]): Promise<SwitchResult> {
    return mig.switchModel(this.syncDb, IMMEDIATE, galleryId, owner, drop, galleryRecord);
  }

  async releaseMigration(galleryId: number, owner: string | null, discard: boolean): Promise<boolean> {
    return mig.releaseMigration(this.syncDb, IMMEDIATE, galleryId, owner, discard);
  }

  async keyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const r = this.q.keyByHash.get(keyHash) as
      | { id: number; name: string; galleryId: number | null; gallery: string | null; createdAt: number; revokedAt: number | null }
      | undefined;
    if (!r) return undefined;
    return { ...r, createdAt: new Date(r.createdAt), revokedAt: r.revokedAt === null ? null : new Date(r.revokedAt) };
  }

  async insertKey(k: { name: string; keyHash: string; galleryId: number | null; createdAt: Date }): Promise<ApiKeyRecord> {
    const row = this.db.insert(apiKeys).values(k).returning().get();
    return (await this.keyByHash(row.keyHash))!;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return this.db
      .select({ k: apiKeys, gallery: galleries.name })
      .from(apiKeys)
      .leftJoin(galleries, eq(galleries.id, apiKeys.galleryId))
      .orderBy(apiKeys.id)
      .all()
      .map((r) => ({ id: r.k.id, name: r.k.name, galleryId: r.k.galleryId, gallery: r.gallery, createdAt: r.k.createdAt, revokedAt: r.k.revokedAt ?? null }));
  }

  async hasAdminKey(): Promise<boolean> {
    return !!this.db.select({ id: apiKeys.id }).from(apiKeys).where(and(isNull(apiKeys.galleryId), isNull(apiKeys.revokedAt))).get();
  }

  async revokeKey(id: number, at: Date): Promise<boolean> {
    return !!this.db
      .update(apiKeys)
      .set({ revokedAt: at })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id })
      .get();
  }

  async close(): Promise<void> {
    if (this.sqlite.open) this.sqlite.close();
  }
}

const IMMEDIATE = { behavior: 'immediate' } as const;

function galleryRecord(g: GalleryRow): GalleryRecord {
  const { deleteSeq: _s, ...rest } = g;
  return { ...rest, migration: rest.migration ?? null };
}

function identityRecord(r: IdentityRow): IdentityRecord {
  return { ...r, metadata: r.metadata ?? null };
}

function bumpDeleteSeq(tx: Pick<Db, 'update'>, galleryId: number): number {
  return tx
    .update(galleries)
    .set({ deleteSeq: sql`${galleries.deleteSeq} + 1` })
    .where(eq(galleries.id, galleryId))
    .returning({ s: galleries.deleteSeq })
    .get()!.s;
}
