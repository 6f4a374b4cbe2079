// The model-migration primitives of MetaStore (meta.ts) on any synchronous drizzle SQLite database:
// written once with drizzle's API, used by sqlite/sqlite-meta.ts (better-sqlite3) and by
// sync-sqlite-meta.ts (bun-sqlite, durable-sqlite, node:sqlite). Runtime-neutral: no node: module.
import { and, eq, sql } from 'drizzle-orm';
import type { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { CosfaceError } from '../../errors.js';
import { faces, galleries, stagedEmbeddings, type MigrationClaim } from '../../db/schema.js';
import type * as schema from '../../db/schema.js';
import { migratingError, migrationActive, type ClaimResult, type FaceToStage, type GalleryRecord, type MigrationTarget, type SwitchResult } from '../meta.js';
import type { FaceBox } from '../../db/schema.js';

type Db = BaseSQLiteDatabase<'sync', unknown, typeof schema>;
/** better-sqlite3 takes the write lock up front ('immediate'); other drivers run their default. */
export type TxBehavior = { behavior: 'immediate' } | undefined;

const ROLLBACK = Symbol('rollback');

function claimOf(db: Pick<Db, 'select'>, galleryId: number): { row: typeof galleries.$inferSelect | undefined; claim: MigrationClaim | null } {
  const row = db.select().from(galleries).where(eq(galleries.id, galleryId)).get();
  return { row, claim: row?.migration ?? null };
}

/** Throws MIGRATING when a migration holds the gallery (called inside the inserting transaction). */
export function assertNotMigrating(db: Pick<Db, 'select'>, galleryId: number): void {
  const row = db.select({ m: galleries.migration, name: galleries.name }).from(galleries).where(eq(galleries.id, galleryId)).get();
  if (row && migrationActive(row.m)) throw migratingError(row.name, row.m!);
}

export function claimMigration(db: Db, tx: TxBehavior, galleryId: number, target: MigrationTarget, owner: string, now: Date, takeOver: (holder: MigrationClaim) => boolean): ClaimResult {
  return db.transaction((t) => {
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
  }, tx);
}

export function renewMigration(db: Db, tx: TxBehavior, galleryId: number, owner: string, now: Date): boolean {
  return db.transaction((t) => {
    const { claim } = claimOf(t, galleryId);
    if (!claim || claim.owner !== owner) return false;
    t.update(galleries).set({ migration: { ...claim, heartbeatAt: now.getTime() } }).where(eq(galleries.id, galleryId)).run();
    return true;
  }, tx);
}

export function unstagedFaces(db: Db, galleryId: number, afterId: number, limit: number): FaceToStage[] {
  const rows = db.values<[number, number, string, string | null, string | null, string | null]>(sql`
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

export function stageEmbeddings(db: Db, tx: TxBehavior, galleryId: number, owner: string, rows: readonly { faceId: number; embedding: Float32Array }[], blob: (v: Float32Array) => unknown): boolean {
  return db.transaction((t) => {
    const { claim } = claimOf(t, galleryId);
    if (!claim || claim.owner !== owner) return false;
    for (const r of rows) {
      t.insert(stagedEmbeddings)
        .values({ galleryId, faceId: r.faceId, modelId: claim.modelId, embedding: blob(r.embedding) as Buffer })
        .onConflictDoUpdate({ target: [stagedEmbeddings.galleryId, stagedEmbeddings.faceId], set: { modelId: claim.modelId, embedding: blob(r.embedding) as Buffer } })
        .run();
    }
    t.update(galleries).set({ migration: { ...claim, heartbeatAt: Date.now() } }).where(eq(galleries.id, galleryId)).run();
    return true;
  }, tx);
}

function stagedCountIn(db: Pick<Db, 'values'>, galleryId: number, modelId: string): number {
  return Number(
    db.values<[number]>(sql`SELECT COUNT(*) FROM staged_embeddings s JOIN faces f ON f.id = s.face_id
      WHERE s.gallery_id = ${galleryId} AND s.model_id = ${modelId} AND f.deleted = 0`)[0]![0],
  );
}

export function stagedCount(db: Db, galleryId: number): number {
  const { claim } = claimOf(db, galleryId);
  return claim ? stagedCountIn(db, galleryId, claim.modelId) : 0;
}

export function switchModel(
  db: Db,
  tx: TxBehavior,
  galleryId: number,
  owner: string,
  drop: readonly number[],
  galleryRecord: (r: typeof galleries.$inferSelect) => GalleryRecord,
): SwitchResult {
  let unstaged: number[] = [];
  try {
    return db.transaction((t) => {
      const { claim } = claimOf(t, galleryId);
      if (!claim || claim.owner !== owner) return { switched: false as const, reason: 'not-holder' as const };
      let dropped: number[] = [];
      if (drop.length > 0) {
        const seq = t
          .update(galleries)
          .set({ deleteSeq: sql`${galleries.deleteSeq} + 1` })
          .where(eq(galleries.id, galleryId))
          .returning({ s: galleries.deleteSeq })
          .get()!.s;
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
    }, tx);
  } catch (e) {
    if (e === ROLLBACK) return { switched: false, reason: 'unstaged', faceIds: unstaged };
    throw e;
  }
}

export function releaseMigration(db: Db, tx: TxBehavior, galleryId: number, owner: string | null, discard: boolean): boolean {
  return db.transaction((t) => {
    const { claim } = claimOf(t, galleryId);
    if (!claim || (owner !== null && claim.owner !== owner)) return false;
    t.update(galleries).set({ migration: null }).where(eq(galleries.id, galleryId)).run();
    if (discard) t.delete(stagedEmbeddings).where(eq(stagedEmbeddings.galleryId, galleryId)).run();
    return true;
  }, tx);
}
