// MetaStore on SQLite through any synchronous drizzle driver, the one implementation for every
// runtime: better-sqlite3 (Node), bun:sqlite (drizzle's bun-sqlite driver), a Durable Object's
// SQLite (durable-sqlite) and Deno's node:sqlite (behind the durable-sqlite driver,
// runtime/deno-sqlite.ts). Each method is one statement or one transaction. Deletes are soft and
// numbered (galleries.delete_seq) so that a derived index (sqlite/hnsw-vector-index.ts) can tell
// which deletes it has applied. What differs between drivers stays outside: the runtime opens the
// database with its pragmas and hands over how to close it; vectors are read with raw SQL and
// decoded by blobToEmbedding, so no driver's blob type (Buffer, Uint8Array, ArrayBuffer) leaks in.
// Runtime-neutral: no node: module.
import { and, count, eq, gt, isNull, sql } from 'drizzle-orm';
import type { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { CosfaceError } from '../../errors.js';
import { apiKeys, faces, galleries, identities, modelThresholds, stagedEmbeddings, type FaceBox, type GalleryRow, type IdentityRow } from '../../db/schema.js';
import type * as schema from '../../db/schema.js';
import { blobBytes, blobToEmbedding, embeddingToBlob } from '../embedding.js';
import { migratingError, migrationActive } from '../meta.js';
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

/** A drizzle SQLite database in synchronous mode (better-sqlite3, bun-sqlite, durable-sqlite). */
export type SyncSqliteDb = BaseSQLiteDatabase<'sync', unknown, typeof schema>;

/**
 * Every write transaction is BEGIN IMMEDIATE: it takes the write lock (waiting up to the busy
 * timeout for another process: a CLI enroll beside the server) before it reads. A deferred one that
 * reads first cannot wait for the lock when it upgrades and fails with SQLITE_BUSY at once.
 * (durable-sqlite ignores the option: a Durable Object has one writer.)
 */
const WRITE = { behavior: 'immediate' } as const;

export class SqliteMeta implements MetaStore {
  readonly dialect = 'sqlite' as const;
  /** Hot-path queries prepared once: building a drizzle query costs more than running it. */
  private readonly q;

  constructor(
    private readonly db: SyncSqliteDb,
    private readonly closeDb: () => void = () => undefined,
  ) {
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
      candidates: db
        .select({ faceId: faces.id, identityId: faces.identityId, embedding: rawEmbedding(), externalId: identities.externalId, displayName: identities.displayName })
        .from(faces)
        .innerJoin(identities, eq(identities.id, faces.identityId))
        .where(
          and(
            sql`${faces.id} IN (SELECT value FROM json_each(${ph('ids')}))`,
            eq(faces.galleryId, ph('galleryId')),
            sql`${faces.deleted} = 0`,
            isNull(identities.deletedAt),
          ),
        )
        .prepare(),
      keyByHash: db
        .select({ k: apiKeys, gallery: galleries.name })
        .from(apiKeys)
        .leftJoin(galleries, eq(galleries.id, apiKeys.galleryId))
        .where(eq(apiKeys.keyHash, ph('keyHash')))
        .prepare(),
      liveFaces: db
        .select({ n: count() })
        .from(faces)
        .where(and(eq(faces.galleryId, ph('galleryId')), sql`${faces.deleted} = 0`))
        .prepare(),
      liveIdentities: db
        .select({ n: count() })
        .from(identities)
        .where(and(eq(identities.galleryId, ph('galleryId')), isNull(identities.deletedAt)))
        .prepare(),
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

  async insertGallery(g: NewGallery): Promise<GalleryRecord | undefined> {
    return this.db.transaction((tx) => {
      if (this.q.galleryByName.get({ name: g.name })) return undefined;
      return galleryRecord(tx.insert(galleries).values(g).returning().get());
    }, WRITE);
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
      .map((r) => ({ ...galleryRecord(r.g), identities: Number(r.identities), faces: Number(r.faces) }));
  }

  async counts(galleryId: number): Promise<GalleryCounts> {
    return { identities: this.q.liveIdentities.get({ galleryId })!.n, faces: this.q.liveFaces.get({ galleryId })!.n };
  }

  async deletedFaceCount(galleryId: number): Promise<number> {
    return this.count(sql`SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ${galleryId} AND deleted = 1`);
  }

  async deleteGallery(galleryId: number): Promise<void> {
    // identities, faces, keys and jobs go with it (ON DELETE CASCADE; foreign keys are on).
    this.db.delete(galleries).where(eq(galleries.id, galleryId)).run();
  }

  async liveIdentity(galleryId: number, externalId: string): Promise<IdentityRecord | undefined> {
    const r = this.q.liveIdentity.get({ galleryId, externalId });
    return r && identityRecord(r);
  }

  async insertIdentity(galleryId: number, i: NewIdentity): Promise<IdentityRecord | undefined> {
    return this.db.transaction(() => {
      if (this.q.liveIdentity.get({ galleryId, externalId: i.externalId })) return undefined;
      return identityRecord(this.q.insertIdentity.get({ galleryId, ...i })!);
    }, WRITE);
  }

  async identityFaceCount(_galleryId: number, identityId: number): Promise<number> {
    return this.count(sql`SELECT COUNT(*) AS n FROM faces WHERE identity_id = ${identityId} AND deleted = 0`);
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
      .map((r) => ({ ...identityRecord(r.i), faces: Number(r.faces) }));
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
    }, WRITE);
  }

  async insertFaces(galleryId: number, rows: readonly NewFace[]): Promise<number[]> {
    return this.db.transaction((tx) => {
      assertNotMigrating(tx, galleryId);
      return rows.map((f) => this.q.insertFace.get({ galleryId, ...f, embedding: embeddingToBlob(f.embedding) })!.id);
    }, WRITE);
  }

  async insertIdentitiesAndFaces(galleryId: number, idents: readonly NewIdentity[], rows: readonly NewFaceOfNew[]): Promise<{ identityIds: number[]; faceIds: number[] } | undefined> {
    const taken = new Error('identity taken');
    try {
      return this.db.transaction((tx) => {
        assertNotMigrating(tx, galleryId);
        const identityIds = idents.map((i) => {
          if (this.q.liveIdentity.get({ galleryId, externalId: i.externalId })) throw taken; // rolls back
          return this.q.insertIdentity.get({ galleryId, ...i })!.id;
        });
        const faceIds = rows.map(({ newIdentity, ...f }) =>
          this.q.insertFace.get({ galleryId, ...f, identityId: newIdentity === undefined ? f.identityId : identityIds[newIdentity]!, embedding: embeddingToBlob(f.embedding) })!.id,
        );
        return { identityIds, faceIds };
      }, WRITE);
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
    }, WRITE);
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
    return this.q.candidates.all({ ids: JSON.stringify(faceIds), galleryId }).map((r) => ({ ...r, embedding: blobToEmbedding(r.embedding) }));
  }

  async identityEmbeddings(_galleryId: number, identityId: number): Promise<{ id: number; embedding: Float32Array }[]> {
    return this.db
      .select({ id: faces.id, embedding: rawEmbedding() })
      .from(faces)
      .where(and(eq(faces.identityId, identityId), eq(faces.deleted, false)))
      .orderBy(faces.id)
      .all()
      .map((r) => ({ id: r.id, embedding: blobToEmbedding(r.embedding) }));
  }

  /**
   * Every live face of a gallery with its vector, in id order, a page at a time (the edge's
   * exact-scan index loads from it). The vector is one buffer reused for every row: copy it to keep
   * it (the index copies it in), so loading 100,000 faces leaves no 100,000 float arrays for the GC.
   */
  *liveVectors(galleryId: number, pageSize = 2000): Generator<{ id: number; embedding: Float32Array }> {
    let after = 0;
    let scratch = new Float32Array(0);
    for (;;) {
      const page = this.db
        .select({ id: faces.id, embedding: rawEmbedding() })
        .from(faces)
        .where(and(eq(faces.galleryId, galleryId), eq(faces.deleted, false), gt(faces.id, after)))
        .orderBy(faces.id)
        .limit(pageSize)
        .all();
      for (const r of page) {
        const bytes = blobBytes(r.embedding);
        if (scratch.length * 4 !== bytes.byteLength) scratch = new Float32Array(bytes.byteLength >>> 2);
        yield { id: r.id, embedding: blobToEmbedding(bytes, scratch) };
      }
      if (page.length < pageSize) return;
      after = page[page.length - 1]!.id;
    }
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
    }, WRITE);
  }

  async thresholds(modelId: string): Promise<ThresholdRecord[]> {
    return this.db
      .select()
      .from(modelThresholds)
      .where(eq(modelThresholds.modelId, modelId))
      .all()
      .map(({ modelId: _m, ...rest }) => rest);
  }

  // ---- model migration ----

  async claimMigration(galleryId: number, target: MigrationTarget, owner: string, now: Date, takeOver: (holder: MigrationClaim) => boolean): Promise<ClaimResult> {
    return this.db.transaction((t) => {
      const { row, claim } = claimOf(t, galleryId);
      if (!row) throw new CosfaceError('GALLERY_NOT_FOUND', `gallery ${galleryId} not found`);
      if (claim && claim.owner !== owner && migrationActive(claim, now.getTime()) && !takeOver(claim)) return { claimed: false as const, holder: claim };
      t.delete(stagedEmbeddings)
        .where(and(eq(stagedEmbeddings.galleryId, galleryId), sql`${stagedEmbeddings.modelId} <> ${target.modelId}`))
        .run();
      const same = claim && claim.modelId === target.modelId;
      const next: MigrationClaim = { ...target, owner, startedAt: same ? claim.startedAt : now.getTime(), heartbeatAt: now.getTime() };
      t.update(galleries).set({ migration: next }).where(eq(galleries.id, galleryId)).run();
      return { claimed: true as const, staged: stagedCountIn(t, galleryId, target.modelId) };
    }, WRITE);
  }

  async renewMigration(galleryId: number, owner: string, now: Date): Promise<boolean> {
    return this.db.transaction((t) => {
      const { claim } = claimOf(t, galleryId);
      if (!claim || claim.owner !== owner) return false;
      t.update(galleries).set({ migration: { ...claim, heartbeatAt: now.getTime() } }).where(eq(galleries.id, galleryId)).run();
      return true;
    }, WRITE);
  }

  async unstagedFaces(galleryId: number, afterId: number, limit: number): Promise<FaceToStage[]> {
    const rows = this.db.values<[number, number, string, string | null, string | null, string | null]>(sql`
      SELECT f.id, f.identity_id, i.external_id, f.photo_path, f.photo_hash, f.box
      FROM faces f JOIN identities i ON i.id = f.identity_id
      WHERE f.gallery_id = ${galleryId} AND f.deleted = 0 AND f.id > ${afterId}
        AND NOT EXISTS (SELECT 1 FROM staged_embeddings s WHERE s.gallery_id = f.gallery_id AND s.face_id = f.id
          AND s.model_id = (SELECT json_extract(g.migration, '$.modelId') FROM galleries g WHERE g.id = ${galleryId}))
      ORDER BY f.id LIMIT ${limit}`);
    return rows.map(([id, identityId, externalId, photoPath, photoHash, box]) => ({
      id: Number(id),
      identityId: Number(identityId),
      externalId,
      photoPath,
      photoHash,
      box: box === null ? null : (JSON.parse(box) as FaceBox),
    }));
  }

  async stageEmbeddings(galleryId: number, owner: string, rows: readonly { faceId: number; embedding: Float32Array }[]): Promise<boolean> {
    return this.db.transaction((t) => {
      const { claim } = claimOf(t, galleryId);
      if (!claim || claim.owner !== owner) return false;
      for (const r of rows) {
        const embedding = embeddingToBlob(r.embedding);
        t.insert(stagedEmbeddings)
          .values({ galleryId, faceId: r.faceId, modelId: claim.modelId, embedding })
          .onConflictDoUpdate({ target: [stagedEmbeddings.galleryId, stagedEmbeddings.faceId], set: { modelId: claim.modelId, embedding } })
          .run();
      }
      t.update(galleries).set({ migration: { ...claim, heartbeatAt: Date.now() } }).where(eq(galleries.id, galleryId)).run();
      return true;
    }, WRITE);
  }

  async stagedCount(galleryId: number): Promise<number> {
    const { claim } = claimOf(this.db, galleryId);
    return claim ? stagedCountIn(this.db, galleryId, claim.modelId) : 0;
  }

  async switchModel(galleryId: number, owner: string, drop: readonly number[]): Promise<SwitchResult> {
    let unstaged: number[] = [];
    try {
      return this.db.transaction((t) => {
        const { claim } = claimOf(t, galleryId);
        if (!claim || claim.owner !== owner) return { switched: false as const, reason: 'not-holder' as const };
        let dropped: number[] = [];
        if (drop.length > 0) {
          const seq = bumpDeleteSeq(t, galleryId);
          dropped = t
            .update(faces)
            .set({ deleted: true, deleteSeq: seq })
            .where(and(eq(faces.galleryId, galleryId), eq(faces.deleted, false), sql`${faces.id} IN (SELECT value FROM json_each(${JSON.stringify(drop)}))`))
            .returning({ id: faces.id })
            .all()
            .map((r) => r.id);
        }
        unstaged = t
          .values<[number]>(sql`SELECT f.id FROM faces f WHERE f.gallery_id = ${galleryId} AND f.deleted = 0
            AND NOT EXISTS (SELECT 1 FROM staged_embeddings s WHERE s.gallery_id = f.gallery_id AND s.face_id = f.id AND s.model_id = ${claim.modelId})
            ORDER BY f.id`)
          .map((r) => Number(r[0]));
        if (unstaged.length > 0) throw ROLLBACK; // the drop too: nothing changes
        t.run(sql`UPDATE faces SET embedding = (SELECT s.embedding FROM staged_embeddings s WHERE s.gallery_id = faces.gallery_id AND s.face_id = faces.id)
          WHERE gallery_id = ${galleryId} AND deleted = 0`);
        // The old model's vectors of deleted faces go too (zeros of the new dimension: never searched).
        t.run(sql`UPDATE faces SET embedding = zeroblob(${claim.dimension * 4}) WHERE gallery_id = ${galleryId} AND deleted = 1`);
        const g = t
          .update(galleries)
          .set({ modelId: claim.modelId, modelVersion: claim.modelVersion, dimension: claim.dimension, generation: sql`${galleries.generation} + 1`, migration: null })
          .where(eq(galleries.id, galleryId))
          .returning()
          .get()!;
        t.delete(stagedEmbeddings).where(eq(stagedEmbeddings.galleryId, galleryId)).run();
        const n = Number(t.values<[number]>(sql`SELECT COUNT(*) FROM faces WHERE gallery_id = ${galleryId} AND deleted = 0`)[0]![0]);
        return { switched: true as const, faces: n, dropped, gallery: galleryRecord(g) };
      }, WRITE);
    } catch (e) {
      if (e === ROLLBACK) return { switched: false, reason: 'unstaged', faceIds: unstaged };
      throw e;
    }
  }

  async releaseMigration(galleryId: number, owner: string | null, discard: boolean): Promise<boolean> {
    return this.db.transaction((t) => {
      const { claim } = claimOf(t, galleryId);
      if (!claim || (owner !== null && claim.owner !== owner)) return false;
      t.update(galleries).set({ migration: null }).where(eq(galleries.id, galleryId)).run();
      if (discard) t.delete(stagedEmbeddings).where(eq(stagedEmbeddings.galleryId, galleryId)).run();
      return true;
    }, WRITE);
  }

  async keyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const r = this.q.keyByHash.get({ keyHash });
    return r && keyRecord(r);
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
      .map(keyRecord);
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
    this.closeDb();
  }

  private count(q: ReturnType<typeof sql>): number {
    // values(): rows as arrays on every driver (get() without fields is an object on some, an array on bun-sqlite).
    return Number(this.db.values<[number]>(q)[0]![0]);
  }
}

/** faces.embedding as the driver returns it (drizzle's buffer mode would call Buffer, which workerd lacks). */
function rawEmbedding() {
  return sql<unknown>`${faces.embedding}`;
}

function galleryRecord(g: GalleryRow): GalleryRecord {
  const { deleteSeq: _s, ...rest } = g;
  return { ...rest, migration: rest.migration ?? null };
}

function identityRecord(r: IdentityRow): IdentityRecord {
  return { ...r, metadata: r.metadata ?? null };
}

function keyRecord(r: { k: typeof apiKeys.$inferSelect; gallery: string | null }): ApiKeyRecord {
  return { id: r.k.id, name: r.k.name, galleryId: r.k.galleryId, gallery: r.gallery, createdAt: r.k.createdAt, revokedAt: r.k.revokedAt ?? null };
}

/** Bumps the gallery's delete_seq (once per deleting transaction): the number the deleted faces get. */
function bumpDeleteSeq(tx: Pick<SyncSqliteDb, 'update'>, galleryId: number): number {
  return tx
    .update(galleries)
    .set({ deleteSeq: sql`${galleries.deleteSeq} + 1` })
    .where(eq(galleries.id, galleryId))
    .returning({ s: galleries.deleteSeq })
    .get()!.s;
}

/** Throws MIGRATING when a migration holds the gallery (called inside the inserting transaction). */
function assertNotMigrating(db: Pick<SyncSqliteDb, 'select'>, galleryId: number): void {
  const row = db.select({ m: galleries.migration, name: galleries.name }).from(galleries).where(eq(galleries.id, galleryId)).get();
  if (row && migrationActive(row.m)) throw migratingError(row.name, row.m!);
}

const ROLLBACK = Symbol('rollback');

function claimOf(db: Pick<SyncSqliteDb, 'select'>, galleryId: number): { row: GalleryRow | undefined; claim: MigrationClaim | null } {
  const row = db.select().from(galleries).where(eq(galleries.id, galleryId)).get();
  return { row, claim: row?.migration ?? null };
}

function stagedCountIn(db: Pick<SyncSqliteDb, 'values'>, galleryId: number, modelId: string): number {
  return Number(
    db.values<[number]>(sql`SELECT COUNT(*) FROM staged_embeddings s JOIN faces f ON f.id = s.face_id
      WHERE s.gallery_id = ${galleryId} AND s.model_id = ${modelId} AND f.deleted = 0`)[0]![0],
  );
}
