// VectorIndex for the Postgres backend: pgvector's HNSW inside the database, so the search is the
// SQL itself and there is no derived state to snapshot, replay or rebuild after a crash (the index
// is transactional). Each gallery gets a partial index over its own live faces:
//
//   CREATE INDEX faces_hnsw_g<id> ON faces USING hnsw ((embedding::vector(<d>)) vector_ip_ops)
//     WITH (m = .., ef_construction = ..) WHERE gallery_id = <id> AND NOT deleted
//
// and a search repeats that predicate and expression, so the planner walks only that gallery's
// graph: no post-filtering, so recall does not collapse when a gallery is a small part of the table
// (chosen over one global index with hnsw.iterative_scan by measurement: BENCHMARKS.md), and each
// gallery keeps its own dimension. pgvector's `<#>` is the NEGATIVE inner product (ascending order
// = best first). The beam (hnsw.ef_search) is set with SET LOCAL inside the search's transaction,
// which also holds under Citus and poolers (docs/scale-out.md).
import { sql } from 'drizzle-orm';
import { vectorLiteral } from '../../db/schema-pg.js';
import type { GalleryRecord } from '../meta.js';
import type { IndexConsistency, VectorIndex, VectorIndexStats, VectorSearch, VectorSearchOptions } from '../vector-index.js';
import { rawRows, type PgDb } from './pg-meta.js';

/** pgvector's limits: HNSW indexes `vector` up to 2000 dimensions, m in [2, 100], ef_construction in [4, 1000], ef_search in [1, 1000]. */
export const PGVECTOR_LIMITS = { maxIndexDimension: 2000, maxM: 100, maxEfConstruction: 1000, maxEfSearch: 1000 } as const;

/** How long a gallery's live-face count (used to choose exact scan vs HNSW and the beam) is reused. */
const COUNT_TTL_MS = 2000;

export function hnswIndexName(galleryId: number): string {
  return `faces_hnsw_g${galleryId}`;
}

/** The CREATE INDEX of a gallery's partial HNSW index (idempotent); null above pgvector's dimension limit (exact scans only). */
export function hnswIndexSql(g: Pick<GalleryRecord, 'id' | 'dimension' | 'hnswM' | 'hnswEfConstruction' | 'generation'>): string | null {
  if (g.dimension > PGVECTOR_LIMITS.maxIndexDimension) return null;
  const { m, efConstruction } = pgHnswParams(g);
  const id = int(g.id);
  return (
    `CREATE INDEX IF NOT EXISTS ${hnswIndexName(id)} ON faces USING hnsw ((embedding::vector(${int(g.dimension)})) vector_ip_ops) ` +
    `WITH (m = ${m}, ef_construction = ${efConstruction}) WHERE ${galleryPredicate(g)}`
  );
}

/**
 * The partial index's predicate, repeated literally by every search. A gallery that switched model
 * (generation > 0) also requires the new dimension: the switch builds the index in the same
 * transaction that rewrote the vectors, and an index build also reads the rows' previous versions
 * (still visible to older snapshots), whose vectors of the old dimension must not reach the cast.
 */
function galleryPredicate(g: Pick<GalleryRecord, 'id' | 'dimension' | 'generation'>): string {
  const base = `gallery_id = ${int(g.id)} AND NOT deleted`;
  return g.generation > 0 ? `${base} AND vector_dims(embedding) = ${int(g.dimension)}` : base;
}

/** The HNSW build parameters pgvector accepts closest to the gallery's. */
export function pgHnswParams(g: Pick<GalleryRecord, 'hnswM' | 'hnswEfConstruction'>): { m: number; efConstruction: number } {
  const m = Math.min(Math.max(g.hnswM, 2), PGVECTOR_LIMITS.maxM);
  const efConstruction = Math.min(Math.max(g.hnswEfConstruction, 2 * m, 4), PGVECTOR_LIMITS.maxEfConstruction);
  return { m, efConstruction };
}

export class PgVectorIndex implements VectorIndex {
  readonly kind = 'pgvector';
  /** Galleries whose index is known to exist, with the generation it was made for. */
  private readonly ensured = new Map<number, number>();
  private readonly liveCache = new Map<number, { n: number; at: number }>();

  constructor(private readonly db: PgDb) {}

  async addGallery(g: GalleryRecord): Promise<void> {
    await this.ensureIndex(g);
  }

  /** Creates the gallery's partial HNSW index when it is missing (idempotent). */
  async ensureIndex(g: GalleryRecord): Promise<void> {
    if (this.ensured.get(g.id) === g.generation) return;
    const ddl = hnswIndexSql(g);
    if (ddl) await this.db.execute(sql.raw(ddl));
    this.ensured.set(g.id, g.generation);
  }

  async prepareSwitch(): Promise<void> {
    // The switch's transaction builds the new index (pg-meta.ts).
  }

  /** The gallery switched model: its index was rebuilt in the switch's transaction (pg-meta.ts). */
  async modelSwitched(g: GalleryRecord): Promise<void> {
    this.ensured.delete(g.id);
    this.liveCache.delete(g.id);
  }

  async liveCount(g: GalleryRecord): Promise<number> {
    const hit = this.liveCache.get(g.id);
    if (hit && performance.now() - hit.at < COUNT_TTL_MS) return hit.n;
    const [r] = await rawRows<{ n: number }>(this.db, sql`SELECT COUNT(*)::int AS n FROM faces WHERE gallery_id = ${g.id} AND NOT deleted`);
    const n = Number(r!.n);
    this.liveCache.set(g.id, { n, at: performance.now() });
    return n;
  }

  async search(g: GalleryRecord, probe: Float32Array, k: number, o: VectorSearchOptions): Promise<VectorSearch> {
    await this.ensureIndex(g);
    const limit = int(k);
    const useIndex = o.method === 'hnsw' && g.dimension <= PGVECTOR_LIMITS.maxIndexDimension;
    const ef = Math.min(Math.max(int(o.ef), limit, 1), PGVECTOR_LIMITS.maxEfSearch);
    const query = searchSql(g, probe, limit);
    const rows = await this.db.transaction(async (tx) => {
      if (useIndex) await tx.execute(sql.raw(`SET LOCAL hnsw.ef_search = ${ef}`));
      // An exact scan: the planner may not take the graph (its answers are approximate).
      else await tx.execute(sql.raw('SET LOCAL enable_indexscan = off'));
      return rawRows<{ id: number | string; score: number | string }>(tx, query);
    });
    // Scores come back from float4 arithmetic in the database; the store re-ranks with its scorer
    // so that both backends report the same numbers.
    return { faces: rows.map((r) => ({ faceId: Number(r.id), score: Number(r.score) })), exactScores: false };
  }

  /** The plan Postgres chooses for a search (EXPLAIN), to check that it walks the gallery's index. */
  async explain(g: GalleryRecord, probe: Float32Array, k: number, ef: number): Promise<string> {
    await this.ensureIndex(g);
    const rows = await this.db.transaction(async (tx) => {
      await tx.execute(sql.raw(`SET LOCAL hnsw.ef_search = ${Math.min(Math.max(int(ef), 1), PGVECTOR_LIMITS.maxEfSearch)}`));
      return rawRows<{ 'QUERY PLAN': string }>(tx, sql`EXPLAIN ${searchSql(g, probe, int(k))}`);
    });
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  }

  async added(g: GalleryRecord, faces: readonly { id: number; v: Float32Array }[]): Promise<void> {
    const hit = this.liveCache.get(g.id);
    if (hit) hit.n += faces.length;
  }

  async deleted(g: GalleryRecord, faceIds: readonly number[]): Promise<void> {
    const hit = this.liveCache.get(g.id);
    if (hit) hit.n = Math.max(0, hit.n - faceIds.length);
  }

  async dropGallery(g: GalleryRecord): Promise<void> {
    await this.db.execute(sql.raw(`DROP INDEX IF EXISTS ${hnswIndexName(int(g.id))}`));
    this.ensured.delete(g.id);
    this.liveCache.delete(g.id);
  }

  async stats(g: GalleryRecord): Promise<VectorIndexStats> {
    const [r] = await rawRows<{ live: number; deleted: number; bytes: number | null }>(
      this.db,
      sql`SELECT COUNT(*) FILTER (WHERE NOT deleted)::int AS live, COUNT(*) FILTER (WHERE deleted)::int AS deleted,
                 pg_relation_size(to_regclass(${hnswIndexName(int(g.id))}))::float8 AS bytes
          FROM faces WHERE gallery_id = ${g.id}`,
    );
    const live = Number(r!.live);
    return {
      size: live,
      live,
      deleted: 0, // deleted rows leave the partial index's predicate: never searched
      capacity: live,
      snapshotLastFaceId: null,
      snapshotBytes: r!.bytes === null ? null : Number(r!.bytes),
      unsavedChanges: 0,
      rebuilding: false,
    };
  }

  /**
   * The index lives in the database and changes in the same transactions as the rows, so there is
   * nothing to drift; what can go wrong is the index itself (missing, or invalid after a failed
   * build): then every live face counts as missing from it.
   */
  async check(g: GalleryRecord): Promise<IndexConsistency> {
    const ids = (await rawRows<{ id: number | string }>(this.db, sql`SELECT id FROM faces WHERE gallery_id = ${g.id} AND NOT deleted ORDER BY id`)).map((r) =>
      Number(r.id),
    );
    let healthy = g.dimension > PGVECTOR_LIMITS.maxIndexDimension; // exact scans only: no index to check
    if (!healthy) {
      const [ix] = await rawRows<{ valid: boolean }>(
        this.db,
        sql`SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass(${hnswIndexName(int(g.id))})`,
      );
      healthy = ix?.valid === true;
    }
    return { dbLive: ids.length, indexLive: healthy ? ids.length : 0, missingFromIndex: healthy ? [] : ids, extraInIndex: [], vectorMismatches: [] };
  }

  async checkpoint(): Promise<void> {
    // Nothing derived to persist: the index is written with the rows.
  }

  async rebuild(g: GalleryRecord): Promise<void> {
    await this.ensureIndex(g);
    if (g.dimension <= PGVECTOR_LIMITS.maxIndexDimension) await this.db.execute(sql.raw(`REINDEX INDEX ${hnswIndexName(int(g.id))}`));
  }

  async close(): Promise<void> {
    this.ensured.clear();
    this.liveCache.clear();
  }
}

/**
 * A gallery's search. The ORDER BY expression and the WHERE clause are the partial index's own,
 * literally (the planner matches a partial index's predicate against constants, not parameters).
 */
function searchSql(g: GalleryRecord, probe: Float32Array, limit: number) {
  const d = sql.raw(String(int(g.dimension)));
  const lit = vectorLiteral(probe);
  return sql`SELECT id, -(embedding::vector(${d}) <#> ${lit}::vector(${d})) AS score
    FROM faces WHERE ${sql.raw(galleryPredicate(g))}
    ORDER BY embedding::vector(${d}) <#> ${lit}::vector(${d}) LIMIT ${sql.raw(String(int(limit)))}`;
}

/** A value spliced into SQL text must be a plain integer. */
function int(x: number): number {
  if (!Number.isSafeInteger(x)) throw new Error(`not an integer: ${x}`);
  return x;
}
