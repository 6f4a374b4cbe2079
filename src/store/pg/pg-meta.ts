// MetaStore on PostgreSQL through drizzle's pg dialect: the same queries for PGlite (embedded) and a
// server reached through node-postgres. Writes of several rows run in one transaction, so an
// acknowledged write is committed (and, with Postgres's default synchronous_commit, on disk).
// Every query on identities and faces names its gallery_id, so under Citus it goes to one shard.
import { and, asc, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from '../../db/schema-pg.js';
import { apiKeys, faces, galleries, identities, modelThresholds } from '../../db/schema-pg.js';
import type {
  ApiKeyRecord,
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
    return (await this.db.select().from(galleries).where(eq(galleries.name, name)).limit(1))[0];
  }

  async galleryById(id: number): Promise<GalleryRecord | undefined> {
    return (await this.db.select().from(galleries).where(eq(galleries.id, id)).limit(1))[0];
  }

  async insertGallery(g: NewGallery): Promise<GalleryRecord | undefined> {
    const rows = await this.db.insert(galleries).values(g).onConflictDoNothing({ target: galleries.name }).returning();
    return rows[0];
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
    return rows.map((r) => ({ ...r.g, identities: r.identities, faces: r.faces }));
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
    const insert = async (tx: Pick<PgDb, 'insert'>) => {
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
    return rows.length <= INSERT_CHUNK ? insert(this.db) : this.db.transaction(insert);
  }

  async insertIdentitiesAndFaces(galleryId: number, idents: readonly NewIdentity[], rows: readonly NewFaceOfNew[]): Promise<{ identityIds: number[]; faceIds: number[] } | undefined> {
    try {
      return await this.db.transaction(async (tx) => {
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

function identityRecord(r: typeof identities.$inferSelect): IdentityRecord {
  return { ...r, metadata: r.metadata ?? null };
}
