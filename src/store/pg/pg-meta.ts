// MetaStore on PostgreSQL through drizzle's pg dialect: the same queries for PGlite (embedded) and a
// server reached through node-postgres. Writes of several rows run in one transaction, so an
// acknowledged write is committed (and, with Postgres's default synchronous_commit, on disk).
// Every query on identities and faces names its gallery_id, so under Citus it goes to one shard.
import { and, asc, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import { CosfaceError } from '../../errors.js';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from '../../db/schema-pg.js';
import { apiKeys, faces, galleries, identities, modelThresholds, stagedEmbeddings, vectorLiteral } from '../../db/schema-pg.js';
import type { FaceBox, MigrationClaim } from '../../db/schema.js';
import { migratingError, migrationActive } from '../meta.js';
import { hnswIndexName, hnswIndexSql } from './pgvector-index.js';
import type {
  ApiKeyRecord,
  ClaimResult,
  FaceToStage,
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

export type PgDb = PgDatabase<PgQueryResultHKT, typeof schema>;

/** Rows of a raw query, whichever driver ran it (both answer { rows }). */
export async function rawRows<T>(db: Pick<PgDb, 'execute'>, q: SQL): Promise<T[]> {
  return ((await db.execute(q)) as unknown as { rows: T[] }).rows;
}

/** A unique-constraint violation (SQLSTATE 23505), however deep the driver wrapped it. */
function isUniqueViolation(e: unknown): boolean {
  for (let x = e as { code?: string; cause?: unknown } | undefined; x; x = x.cause as typeof x) if (x.code === '23505') return true;
  return false;
}

const INSERT_CHUNK = 500;

export class PgMeta implements MetaStore {
  readonly dialect = 'postgres' as const;

  constructor(readonly db: PgDb) {}

  async galleryByName(name: string): Promise<GalleryRecord | undefined> {
    return galleryRecord((await this.db.select().from(galleries).where(eq(galleries.name, name)).limit(1))[0]);
  }

  async galleryById(id: number): Promise<GalleryRecord | undefined> {
    return galleryRecord((await this.db.select().from(galleries).where(eq(galleries.id, id)).limit(1))[0]);
  }

  async insertGallery(g: NewGallery): Promise<GalleryRecord | undefined> {
    const rows = await this.db.insert(galleries).values(g).onConflictDoNothing({ target: galleries.name }).returning();
    return galleryRecord(rows[0]);
  }

  async listGalleries(): Promise<(GalleryRecord & GalleryCounts)[]> {
    const rows = await this.db
      .select({
        g: galleries,
        identities: sql<number>`(SELECT COUNT(*)::int FROM identities i WHERE i.gallery_id = galleries.id AND i.deleted_at IS NULL)`,
        faces: sql<number>`(SELECT COUNT(*)::int FROM faces f WHERE f.gallery_id = galleries.id AND NOT f.deleted)`,
      })
      .from(galleries)
      .orderBy(asc(galleries.name));
    return rows.map((r) => ({ ...galleryRecord(r.g)!, identities: r.identities, faces: r.faces }));
  }

  async counts(galleryId: number): Promise<GalleryCounts> {
    const [r] = await rawRows<GalleryCounts>(
      this.db,
      sql`SELECT (SELECT COUNT(*)::int FROM identities WHERE gallery_id = ${galleryId} AND deleted_at IS NULL) AS identities,
                 (SELECT COUNT(*)::int FROM faces WHERE gallery_id = ${galleryId} AND NOT deleted) AS faces`,
    );
    return { identities: Number(r!.identities), faces: Number(r!.faces) };
  }

  async deletedFaceCount(galleryId: number): Promise<number> {
    const [r] = await rawRows<{ n: number }>(this.db, sql`SELECT COUNT(*)::int AS n FROM faces WHERE gallery_id = ${galleryId} AND deleted`);
    return Number(r!.n);
  }

  async deleteGallery(galleryId: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      // Children first, each by gallery_id (one shard under Citus), then the gallery row.
      await tx.delete(stagedEmbeddings).where(eq(stagedEmbeddings.galleryId, galleryId));
      await tx.delete(faces).where(eq(faces.galleryId, galleryId));
      await tx.delete(identities).where(eq(identities.galleryId, galleryId));
      await tx.delete(apiKeys).where(eq(apiKeys.galleryId, galleryId));
      await tx.delete(schema.jobs).where(eq(schema.jobs.galleryId, galleryId));
      await tx.delete(galleries).where(eq(galleries.id, galleryId));
    });
  }

  async liveIdentity(galleryId: number, externalId: string): Promise<IdentityRecord | undefined> {
    const rows = await this.db
      .select()
      .from(identities)
      .where(and(eq(identities.galleryId, galleryId), eq(identities.externalId, externalId), isNull(identities.deletedAt)))
      .limit(1);
    return rows[0] && identityRecord(rows[0]);
  }

  async insertIdentity(galleryId: number, i: NewIdentity): Promise<IdentityRecord | undefined> {
    // The live external id is unique (a partial unique index): a second one is no row, not an error.
    const [row] = await this.db
      .insert(identities)
      .values({ galleryId, ...i })
      .onConflictDoNothing({ target: [identities.galleryId, identities.externalId], where: sql`deleted_at IS NULL` })
      .returning();
    return row && identityRecord(row);
  }

  async identityFaceCount(galleryId: number, identityId: number): Promise<number> {
    const [r] = await rawRows<{ n: number }>(
      this.db,
      sql`SELECT COUNT(*)::int AS n FROM faces WHERE gallery_id = ${galleryId} AND identity_id = ${identityId} AND NOT deleted`,
    );
    return Number(r!.n);
  }

  async listIdentities(galleryId: number, page: { limit?: number; offset: number }): Promise<(IdentityRecord & { faces: number })[]> {
    const q = this.db
      .select({
        i: identities,
        faces: sql<number>`(SELECT COUNT(*)::int FROM faces f WHERE f.gallery_id = identities.gallery_id AND f.identity_id = identities.id AND NOT f.deleted)`,
      })
      .from(identities)
      .where(and(eq(identities.galleryId, galleryId), isNull(identities.deletedAt)))
      .orderBy(asc(identities.id))
      .$dynamic();
    if (page.limit !== undefined && page.limit >= 0) q.limit(page.limit);
    const rows = await q.offset(page.offset);
    return rows.map((r) => ({ ...identityRecord(r.i), faces: r.faces }));
  }

  async updateIdentity(galleryId: number, identityId: number, patch: { displayName?: string | null; metadata?: Record<string, unknown> | null }): Promise<void> {
    if (Object.keys(patch).length === 0) return;
    await this.db
      .update(identities)
      .set(patch)
      .where(and(eq(identities.galleryId, galleryId), eq(identities.id, identityId)));
  }

  async deleteIdentity(galleryId: number, identityId: number): Promise<number[]> {
    return this.db.transaction(async (tx) => {
      await tx
        .update(identities)
        .set({ deletedAt: new Date() })
        .where(and(eq(identities.galleryId, galleryId), eq(identities.id, identityId)));
      const rows = await tx
        .update(faces)
        .set({ deleted: true })
        .where(and(eq(faces.galleryId, galleryId), eq(faces.identityId, identityId), eq(faces.deleted, false)))
        .returning({ id: faces.id });
      return rows.map((r) => r.id).sort((a, b) => a - b);
    });
  }

  async insertFaces(galleryId: number, rows: readonly NewFace[]): Promise<number[]> {
    const insert = async (tx: Pick<PgDb, 'insert' | 'select'>) => {
      await assertNotMigrating(tx, galleryId);
      const ids: number[] = [];
      for (let at = 0; at < rows.length; at += INSERT_CHUNK) {
        const chunk = rows.slice(at, at + INSERT_CHUNK);
        const out = await tx
          .insert(faces)
          .values(chunk.map((f) => ({ galleryId, ...f })))
          .returning({ id: faces.id });
        // Identity values are drawn in VALUES order; sorting makes the pairing explicit.
        ids.push(...out.map((r) => r.id).sort((a, b) => a - b));
      }
      return ids;
    };
    // One transaction: the migration check (a share lock on the gallery row, which a migration's
    // claim and switch update) and the rows.
    return this.db.transaction(insert);
  }

  async insertIdentitiesAndFaces(galleryId: number, idents: readonly NewIdentity[], rows: readonly NewFaceOfNew[]): Promise<{ identityIds: number[]; faceIds: number[] } | undefined> {
    try {
      return await this.db.transaction(async (tx) => {
        await assertNotMigrating(tx, galleryId);
        const identityIds: number[] = [];
        for (const i of idents) {
          const [row] = await tx.insert(identities).values({ galleryId, ...i }).returning({ id: identities.id });
          identityIds.push(row!.id);
        }
        const faceIds: number[] = [];
        for (let at = 0; at < rows.length; at += INSERT_CHUNK) {
          const chunk = rows.slice(at, at + INSERT_CHUNK);
          const out = await tx
            .insert(faces)
            .values(chunk.map(({ newIdentity, ...f }) => ({ galleryId, ...f, identityId: newIdentity === undefined ? f.identityId : identityIds[newIdentity]! })))
            .returning({ id: faces.id });
          faceIds.push(...out.map((r) => r.id).sort((a, b) => a - b));
        }
        return { identityIds, faceIds };
      });
    } catch (e) {
      if (isUniqueViolation(e)) return undefined; // a live identity with one of these external ids
      throw e;
    }
  }

  async deleteFace(galleryId: number, faceId: number): Promise<boolean> {
    const rows = await this.db
      .update(faces)
      .set({ deleted: true })
      .where(and(eq(faces.galleryId, galleryId), eq(faces.id, faceId), eq(faces.deleted, false)))
      .returning({ id: faces.id });
    return rows.length > 0;
  }

  async hasPhoto(galleryId: number, photoHash: string): Promise<boolean> {
    const rows = await this.db
      .select({ id: faces.id })
      .from(faces)
      .where(and(eq(faces.galleryId, galleryId), eq(faces.photoHash, photoHash), eq(faces.deleted, false)))
      .limit(1);
    return rows.length > 0;
  }

  async candidates(galleryId: number, faceIds: readonly number[]): Promise<CandidateRecord[]> {
    if (faceIds.length === 0) return [];
    return this.db
      .select({
        faceId: faces.id,
        identityId: faces.identityId,
        embedding: faces.embedding,
        externalId: identities.externalId,
        displayName: identities.displayName,
      })
      .from(faces)
      .innerJoin(identities, and(eq(identities.galleryId, faces.galleryId), eq(identities.id, faces.identityId)))
      .where(and(eq(faces.galleryId, galleryId), inArray(faces.id, [...faceIds]), eq(faces.deleted, false), isNull(identities.deletedAt)));
  }

  async identityEmbeddings(galleryId: number, identityId: number): Promise<{ id: number; embedding: Float32Array }[]> {
    return this.db
      .select({ id: faces.id, embedding: faces.embedding })
      .from(faces)
      .where(and(eq(faces.galleryId, galleryId), eq(faces.identityId, identityId), eq(faces.deleted, false)))
      .orderBy(asc(faces.id));
  }

  async listFaces(galleryId: number, identityId: number): Promise<StoredFaceRecord[]> {
    return this.db
      .select({ id: faces.id, box: faces.box, keypoints: faces.keypoints, quality: faces.quality, photoHash: faces.photoHash, createdAt: faces.createdAt })
      .from(faces)
      .where(and(eq(faces.galleryId, galleryId), eq(faces.identityId, identityId), eq(faces.deleted, false)))
      .orderBy(asc(faces.id));
  }

  async setThresholds(modelId: string, rows: readonly ThresholdRecord[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.delete(modelThresholds).where(eq(modelThresholds.modelId, modelId));
      if (rows.length > 0) await tx.insert(modelThresholds).values(rows.map((t) => ({ modelId, ...t })));
    });
  }

  async thresholds(modelId: string): Promise<ThresholdRecord[]> {
    const rows = await this.db.select().from(modelThresholds).where(eq(modelThresholds.modelId, modelId));
    return rows.map(({ modelId: _m, ...rest }) => rest);
  }

  // ---- model migration (meta.ts). The gallery row is locked FOR UPDATE by every step that
  // changes the claim, and FOR SHARE by face inserts, so a switch never meets a face inserted
  // after its check. ----

  async claimMigration(galleryId: number, target: MigrationTarget, owner: string, now: Date, takeOver: (holder: MigrationClaim) => boolean): Promise<ClaimResult> {
    return this.db.transaction(async (tx) => {
      const claim = await lockedClaim(tx, galleryId);
      if (claim === undefined) throw new CosfaceError('GALLERY_NOT_FOUND', `gallery ${galleryId} not found`);
      if (claim && claim.owner !== owner && migrationActive(claim, now.getTime()) && !takeOver(claim)) return { claimed: false as const, holder: claim };
      await tx.delete(stagedEmbeddings).where(and(eq(stagedEmbeddings.galleryId, galleryId), sql`${stagedEmbeddings.modelId} <> ${target.modelId}`));
      const same = claim && claim.modelId === target.modelId;
      const next: MigrationClaim = { ...target, owner, startedAt: same ? claim.startedAt : now.getTime(), heartbeatAt: now.getTime() };
      await tx.update(galleries).set({ migration: next }).where(eq(galleries.id, galleryId));
      return { claimed: true as const, staged: await stagedCountOf(tx, galleryId, target.modelId) };
    });
  }

  async renewMigration(galleryId: number, owner: string, now: Date): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const claim = await lockedClaim(tx, galleryId);
      if (!claim || claim.owner !== owner) return false;
      await tx.update(galleries).set({ migration: { ...claim, heartbeatAt: now.getTime() } }).where(eq(galleries.id, galleryId));
      return true;
    });
  }

  async unstagedFaces(galleryId: number, afterId: number, limit: number): Promise<FaceToStage[]> {
    const rows = await rawRows<{ id: number | string; identity_id: number | string; external_id: string; photo_path: string | null; photo_hash: string | null; box: FaceBox | null }>(
      this.db,
      sql`SELECT f.id, f.identity_id, i.external_id, f.photo_path, f.photo_hash, f.box
          FROM faces f JOIN identities i ON i.gallery_id = f.gallery_id AND i.id = f.identity_id
          WHERE f.gallery_id = ${galleryId} AND NOT f.deleted AND f.id > ${afterId}
            AND NOT EXISTS (SELECT 1 FROM staged_embeddings s WHERE s.gallery_id = f.gallery_id AND s.face_id = f.id
              AND s.model_id = (SELECT g.migration->>'modelId' FROM galleries g WHERE g.id = ${galleryId}))
          ORDER BY f.id LIMIT ${limit}`,
    );
    return rows.map((r) => ({ id: Number(r.id), identityId: Number(r.identity_id), externalId: r.external_id, photoPath: r.photo_path, photoHash: r.photo_hash, box: r.box }));
  }

  async stageEmbeddings(galleryId: number, owner: string, rows: readonly { faceId: number; embedding: Float32Array }[]): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const claim = await lockedClaim(tx, galleryId);
      if (!claim || claim.owner !== owner) return false;
      for (let at = 0; at < rows.length; at += INSERT_CHUNK) {
        const chunk = rows.slice(at, at + INSERT_CHUNK);
        await tx
          .insert(stagedEmbeddings)
          .values(chunk.map((r) => ({ galleryId, faceId: r.faceId, modelId: claim.modelId, embedding: r.embedding })))
          .onConflictDoUpdate({ target: [stagedEmbeddings.galleryId, stagedEmbeddings.faceId], set: { modelId: sql`excluded.model_id`, embedding: sql`excluded.embedding` } });
      }
      await tx.update(galleries).set({ migration: { ...claim, heartbeatAt: Date.now() } }).where(eq(galleries.id, galleryId));
      return true;
    });
  }

  async stagedCount(galleryId: number): Promise<number> {
    const g = await this.galleryById(galleryId);
    return g?.migration ? stagedCountOf(this.db, galleryId, g.migration.modelId) : 0;
  }

  async switchModel(galleryId: number, owner: string, drop: readonly number[]): Promise<SwitchResult> {
    const rollback = new Error('rollback');
    let unstaged: number[] = [];
    try {
      return await this.db.transaction(async (tx) => {
        const claim = await lockedClaim(tx, galleryId);
        if (!claim || claim.owner !== owner) return { switched: false as const, reason: 'not-holder' as const };
        let dropped: number[] = [];
        if (drop.length > 0) {
          const out = await tx
            .update(faces)
            .set({ deleted: true })
            .where(and(eq(faces.galleryId, galleryId), eq(faces.deleted, false), inArray(faces.id, [...drop])))
            .returning({ id: faces.id });
          dropped = out.map((r) => r.id).sort((a, b) => a - b);
        }
        unstaged = (
          await rawRows<{ id: number | string }>(
            tx,
            sql`SELECT f.id FROM faces f WHERE f.gallery_id = ${galleryId} AND NOT f.deleted
                AND NOT EXISTS (SELECT 1 FROM staged_embeddings s WHERE s.gallery_id = f.gallery_id AND s.face_id = f.id AND s.model_id = ${claim.modelId})
                ORDER BY f.id`,
          )
        ).map((r) => Number(r.id));
        if (unstaged.length > 0) throw rollback; // the drop too: nothing changes
        // The old index goes first (its expression casts to the old dimension), then the vectors.
        await tx.execute(sql.raw(`DROP INDEX IF EXISTS ${hnswIndexName(galleryId)}`));
        await tx.execute(sql`UPDATE faces f SET embedding = s.embedding FROM staged_embeddings s
          WHERE f.gallery_id = ${galleryId} AND NOT f.deleted AND s.gallery_id = f.gallery_id AND s.face_id = f.id`);
        // The old model's vectors of deleted faces go too (zeros of the new dimension: never searched).
        await tx.execute(sql`UPDATE faces SET embedding = ${vectorLiteral(new Float32Array(claim.dimension))}::vector WHERE gallery_id = ${galleryId} AND deleted`);
        const [row] = await tx
          .update(galleries)
          .set({ modelId: claim.modelId, modelVersion: claim.modelVersion, dimension: claim.dimension, generation: sql`${galleries.generation} + 1`, migration: null })
          .where(eq(galleries.id, galleryId))
          .returning();
        await tx.delete(stagedEmbeddings).where(eq(stagedEmbeddings.galleryId, galleryId));
        const g = galleryRecord(row)!;
        const ddl = hnswIndexSql(g);
        if (ddl) await tx.execute(sql.raw(ddl));
        const [n] = await rawRows<{ n: number }>(tx, sql`SELECT COUNT(*)::int AS n FROM faces WHERE gallery_id = ${galleryId} AND NOT deleted`);
        return { switched: true as const, faces: Number(n!.n), dropped, gallery: g };
      });
    } catch (e) {
      if (e === rollback) return { switched: false, reason: 'unstaged', faceIds: unstaged };
      throw e;
    }
  }

  async releaseMigration(galleryId: number, owner: string | null, discard: boolean): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const claim = await lockedClaim(tx, galleryId);
      if (!claim || (owner !== null && claim.owner !== owner)) return false;
      await tx.update(galleries).set({ migration: null }).where(eq(galleries.id, galleryId));
      if (discard) await tx.delete(stagedEmbeddings).where(eq(stagedEmbeddings.galleryId, galleryId));
      return true;
    });
  }

  async keyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const rows = await this.keyQuery().where(eq(apiKeys.keyHash, keyHash)).limit(1);
    return rows[0];
  }

  async insertKey(k: { name: string; keyHash: string; galleryId: number | null; createdAt: Date }): Promise<ApiKeyRecord> {
    await this.db.insert(apiKeys).values(k);
    return (await this.keyByHash(k.keyHash))!;
  }

  async listKeys(): Promise<ApiKeyRecord[]> {
    return this.keyQuery().orderBy(asc(apiKeys.id));
  }

  async hasAdminKey(): Promise<boolean> {
    const rows = await this.db
      .select({ id: apiKeys.id })
      .from(apiKeys)
      .where(and(isNull(apiKeys.galleryId), isNull(apiKeys.revokedAt)))
      .limit(1);
    return rows.length > 0;
  }

  async revokeKey(id: number, at: Date): Promise<boolean> {
    const rows = await this.db
      .update(apiKeys)
      .set({ revokedAt: at })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id });
    return rows.length > 0;
  }

  async close(): Promise<void> {
    // The connection (pool or PGlite instance) is closed by whoever opened it (open-pg.ts).
  }

  private keyQuery() {
    return this.db
      .select({
        id: apiKeys.id,
        name: apiKeys.name,
        galleryId: apiKeys.galleryId,
        gallery: galleries.name,
        createdAt: apiKeys.createdAt,
        revokedAt: apiKeys.revokedAt,
      })
      .from(apiKeys)
      .leftJoin(galleries, eq(galleries.id, apiKeys.galleryId))
      .$dynamic();
  }
}

function galleryRecord(r: typeof galleries.$inferSelect | undefined): GalleryRecord | undefined {
  return r && { ...r, migration: r.migration ?? null };
}

/** The gallery's claim under a row lock (FOR UPDATE); undefined when there is no such gallery. */
async function lockedClaim(tx: Pick<PgDb, 'select'>, galleryId: number): Promise<MigrationClaim | null | undefined> {
  const [r] = await tx.select({ m: galleries.migration }).from(galleries).where(eq(galleries.id, galleryId)).for('update');
  return r ? (r.m ?? null) : undefined;
}

/** Throws MIGRATING when a migration holds the gallery; the share lock keeps a claim or switch out until the insert commits. */
async function assertNotMigrating(tx: Pick<PgDb, 'select'>, galleryId: number): Promise<void> {
  const [r] = await tx.select({ m: galleries.migration, name: galleries.name }).from(galleries).where(eq(galleries.id, galleryId)).for('share');
  if (r && migrationActive(r.m)) throw migratingError(r.name, r.m!);
}

async function stagedCountOf(db: Pick<PgDb, 'execute'>, galleryId: number, modelId: string): Promise<number> {
  const [r] = await rawRows<{ n: number }>(
    db,
    sql`SELECT COUNT(*)::int AS n FROM staged_embeddings s JOIN faces f ON f.gallery_id = s.gallery_id AND f.id = s.face_id
        WHERE s.gallery_id = ${galleryId} AND s.model_id = ${modelId} AND NOT f.deleted`,
  );
  return Number(r!.n);
}

function identityRecord(r: typeof identities.$inferSelect): IdentityRecord {
  return { ...r, metadata: r.metadata ?? null };
}
