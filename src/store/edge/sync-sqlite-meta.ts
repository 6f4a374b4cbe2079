// MetaStore on any synchronous drizzle SQLite driver, for the runtimes without better-sqlite3: Bun
// (bun:sqlite through drizzle's bun-sqlite driver), workerd (a Durable Object's SQLite through
// drizzle's durable-sqlite driver) and Deno (node:sqlite behind the same driver, deno-sqlite.ts).
// Same schema, migrations and semantics as sqlite/sqlite-meta.ts (better-sqlite3), written with
// drizzle's API only; vectors are read with raw SQL so that no driver's blob type (Buffer,
// ArrayBuffer, Uint8Array) leaks in. Runtime-neutral: no node: module.
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { apiKeys, faces, galleries, identities, modelThresholds, type GalleryRow, type IdentityRow } from '../../db/schema.js';
import type * as schema from '../../db/schema.js';
import * as mig from './sync-sqlite-migration.js';
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

/** A drizzle SQLite database in synchronous mode (bun-sqlite, durable-sqlite, better-sqlite3). */
export type SyncSqliteDb = BaseSQLiteDatabase<'sync', unknown, typeof schema>;

export class SyncSqliteMeta implements MetaStore {
  readonly dialect = 'sqlite' as const;

  constructor(
    private readonly db: SyncSqliteDb,
    private readonly closeDb: () => void = () => undefined,
  ) {}

  async galleryByName(name: string): Promise<GalleryRecord | undefined> {
    const r = this.db.select().from(galleries).where(eq(galleries.name, name)).get();
    return r && galleryRecord(r);
  }

  async galleryById(id: number): Promise<GalleryRecord | undefined> {
    const r = this.db.select().from(galleries).where(eq(galleries.id, id)).get();
    return r && galleryRecord(r);
  }

  async insertGallery(g: NewGallery): Promise<GalleryRecord | undefined> {
    return this.db.transaction((tx) => {
      if (tx.select({ id: galleries.id }).from(galleries).where(eq(galleries.name, g.name)).get()) return undefined;
      return galleryRecord(tx.insert(galleries).values(g).returning().get());
    });
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
    return {
      identities: this.count(sql`SELECT COUNT(*) AS n FROM identities WHERE gallery_id = ${galleryId} AND deleted_at IS NULL`),
      faces: this.count(sql`SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ${galleryId} AND deleted = 0`),
    };
  }

  async deletedFaceCount(galleryId: number): Promise<number> {
    return this.count(sql`SELECT COUNT(*) AS n FROM faces WHERE gallery_id = ${galleryId} AND deleted = 1`);
  }

  async deleteGallery(galleryId: number): Promise<void> {
    // identities, faces, keys and jobs go with it (ON DELETE CASCADE; foreign keys are on).
    this.db.delete(galleries).where(eq(galleries.id, galleryId)).run();
  }

  async liveIdentity(galleryId: number, externalId: string): Promise<IdentityRecord | undefined> {
    const r = this.db
      .select()
      .from(identities)
      .where(and(eq(identities.galleryId, galleryId), eq(identities.externalId, externalId), isNull(identities.deletedAt)))
      .get();
    return r && identityRecord(r);
  }

  async insertIdentity(galleryId: number, i: NewIdentity): Promise<IdentityRecord | undefined> {
    return this.db.transaction((tx) => {
      const live = tx
        .select({ id: identities.id })
        .from(identities)
        .where(and(eq(identities.galleryId, galleryId), eq(identities.externalId, i.externalId), isNull(identities.deletedAt)))
        .get();
      if (live) return undefined;
      return identityRecord(tx.insert(identities).values({ galleryId, ...i }).returning().get());
    });
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
    });
  }

  async insertFaces(galleryId: number, rows: readonly NewFace[]): Promise<number[]> {
    return this.db.transaction((tx) => {
      mig.assertNotMigrating(tx, galleryId);
      return rows.map(
        (f) =>
          tx
            .insert(faces)
            .values({ galleryId, ...f, embedding: vectorBlob(f.embedding) as Buffer })
            .returning({ id: faces.id })
            .get().id,
      );
    });
  }

  async insertIdentitiesAndFaces(galleryId: number, idents: readonly NewIdentity[], rows: readonly NewFaceOfNew[]): Promise<{ identityIds: number[]; faceIds: number[] } | undefined> {
    const taken = new Error('identity taken');
    try {
      return this.db.transaction((tx) => {
        mig.assertNotMigrating(tx, galleryId);
        const identityIds = idents.map((i) => {
          const live = tx
            .select({ id: identities.id })
            .from(identities)
            .where(and(eq(identities.galleryId, galleryId), eq(identities.externalId, i.externalId), isNull(identities.deletedAt)))
            .get();
          if (live) throw taken; // rolls back
          return tx.insert(identities).values({ galleryId, ...i }).returning({ id: identities.id }).get().id;
        });
        const faceIds = rows.map(
          ({ newIdentity, ...f }) =>
            tx
              .insert(faces)
              .values({ galleryId, ...f, identityId: newIdentity === undefined ? f.identityId : identityIds[newIdentity]!, embedding: vectorBlob(f.embedding) as Buffer })
              .returning({ id: faces.id })
              .get().id,
        );
        return { identityIds, faceIds };
      });
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
    });
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
    // json_each keeps one statement for any number of candidate ids.
    const rows = this.db.all<{ faceId: number; identityId: number; embedding: unknown; externalId: string; displayName: string | null }>(
      sql`SELECT f.id AS faceId, f.identity_id AS identityId, f.embedding AS embedding, i.external_id AS externalId, i.display_name AS displayName
          FROM faces f JOIN identities i ON i.id = f.identity_id
          WHERE f.id IN (SELECT value FROM json_each(${JSON.stringify(faceIds)})) AND f.gallery_id = ${galleryId} AND f.deleted = 0 AND i.deleted_at IS NULL`,
    );
    return rows.map((r) => ({ ...r, faceId: Number(r.faceId), identityId: Number(r.identityId), embedding: blobVector(r.embedding) }));
  }

  async identityEmbeddings(_galleryId: number, identityId: number): Promise<{ id: number; embedding: Float32Array }[]> {
    return this.db
      .all<{ id: number; embedding: unknown }>(sql`SELECT id, embedding FROM faces WHERE identity_id = ${identityId} AND deleted = 0 ORDER BY id`)
      .map((r) => ({ id: Number(r.id), embedding: blobVector(r.embedding) }));
  }

  /**
   * Every live face of a gallery with its vector, in id order, a page at a time (the exact-scan
   * index loads from it). The vector is one buffer reused for every row: copy it to keep it (the
   * index copies it in), so loading 100,000 faces leaves no 100,000 float arrays for the GC.
   */
  *liveVectors(galleryId: number, pageSize = 2000): Generator<{ id: number; embedding: Float32Array }> {
    let after = 0;
    let scratch: Float32Array | null = null;
    for (;;) {
      const page = this.db.all<{ id: number; embedding: unknown }>(
        sql`SELECT id, embedding FROM faces WHERE gallery_id = ${galleryId} AND deleted = 0 AND id > ${after} ORDER BY id LIMIT ${pageSize}`,
      );
      for (const r of page) {
        scratch = blobVector(r.embedding, scratch);
        yield { id: Number(r.id), embedding: scratch };
      }
      if (page.length < pageSize) return;
      after = Number(page[page.length - 1]!.id);
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
    });
  }

  async thresholds(modelId: string): Promise<ThresholdRecord[]> {
    return this.db
      .select()
      .from(modelThresholds)
      .where(eq(modelThresholds.modelId, modelId))
      .all()
      .map(({ modelId: _m, ...rest }) => rest);
  }

  async keyByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const r = this.db
      .select({ k: apiKeys, gallery: galleries.name })
      .from(apiKeys)
      .leftJoin(galleries, eq(galleries.id, apiKeys.galleryId))
      .where(eq(apiKeys.keyHash, keyHash))
      .get();
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

  // ---- model migration (the same code as the better-sqlite3 meta: sync-sqlite-migration.ts) ----

  async claimMigration(galleryId: number, target: MigrationTarget, owner: string, now: Date, takeOver: (holder: MigrationClaim) => boolean): Promise<ClaimResult> {
    return mig.claimMigration(this.db, undefined, galleryId, target, owner, now, takeOver);
  }

  async renewMigration(galleryId: number, owner: string, now: Date): Promise<boolean> {
    return mig.renewMigration(this.db, undefined, galleryId, owner, now);
  }

  async unstagedFaces(galleryId: number, afterId: number, limit: number): Promise<FaceToStage[]> {
    return mig.unstagedFaces(this.db, galleryId, afterId, limit);
  }

  async stageEmbeddings(galleryId: number, owner: string, rows: readonly { faceId: number; embedding: Float32Array }[]): Promise<boolean> {
    return mig.stageEmbeddings(this.db, undefined, galleryId, owner, rows, vectorBlob);
  }

  async stagedCount(galleryId: number): Promise<number> {
    return mig.stagedCount(this.db, galleryId);
  }

  async switchModel(galleryId: number, owner: string, drop: readonly number[]): Promise<SwitchResult> {
    return mig.switchModel(this.db, undefined, galleryId, owner, drop, galleryRecord);
  }

  async releaseMigration(galleryId: number, owner: string | null, discard: boolean): Promise<boolean> {
    return mig.releaseMigration(this.db, undefined, galleryId, owner, discard);
  }

  private count(q: ReturnType<typeof sql>): number {
    // values(): rows as arrays on every driver (get() without fields is an object on some, an array on bun-sqlite).
    return Number(this.db.values<[number]>(q)[0]![0]);
  }
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

function bumpDeleteSeq(tx: Pick<SyncSqliteDb, 'update'>, galleryId: number): number {
  return tx
    .update(galleries)
    .set({ deleteSeq: sql`${galleries.deleteSeq} + 1` })
    .where(eq(galleries.id, galleryId))
    .returning({ s: galleries.deleteSeq })
    .get()!.s;
}

/**
 * Float32 little-endian bytes, the faces.embedding column format (embedding.ts writes the same).
 * A Buffer where the runtime has one (better-sqlite3 binds nothing else), else a Uint8Array.
 */
export function vectorBlob(v: Float32Array): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) view.setFloat32(i * 4, v[i]!, true);
  const B = (globalThis as { Buffer?: { from(b: ArrayBuffer): Uint8Array } }).Buffer;
  return B ? B.from(out.buffer) : out;
}

/** A blob as any driver returns it (Buffer, Uint8Array, ArrayBuffer, number[]) -> floats (into `into` when it has the length). */
export function blobVector(b: unknown, into?: Float32Array | null): Float32Array {
  const bytes = b instanceof Uint8Array ? b : b instanceof ArrayBuffer ? new Uint8Array(b) : Array.isArray(b) ? Uint8Array.from(b as number[]) : null;
  if (!bytes) throw new Error(`embedding column holds ${typeof b}, not a blob`);
  const n = bytes.byteLength >>> 2;
  const out = into && into.length === n ? into : new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
