// The pgvector side of `cosface bench search --db <pglite:dir | postgres://...>`: the same gallery
// and probes as the hnswlib run, loaded into the Postgres store's faces table, indexed with the
// store's own partial HNSW index, and searched with the store's own SQL (PgVectorIndex.search) at
// each ef. Recall is against the same exact top-k. Also measured: one global index over two
// galleries with hnsw.iterative_scan, the alternative to a partial index per gallery.
import { performance } from 'node:perf_hooks';
import { sql } from 'drizzle-orm';
import { vectorLiteral } from '../db/schema-pg.js';
import type { GalleryRecord } from '../store/meta.js';
import { openStore } from '../store/open-store.js';
import { rawRows, type PgMeta } from '../store/pg/pg-meta.js';
import { hnswIndexName, pgHnswParams, type PgVectorIndex } from '../store/pg/pgvector-index.js';
import type { ClusteredGallery } from './search-bench.js';

export interface PgSearchRow {
  location: string;
  pgvector: string;
  loadSeconds: number;
  loadPerSecond: number;
  indexSeconds: number;
  indexPerSecond: number;
  /** Faces added one transaction each with the index in place (steady-state enrollment). */
  incrementalPerSecond: number;
  indexBytesPerVector: number;
  tableBytesPerVector: number;
  /** The exact scan in SQL (enable_indexscan off), over the first 50 probes. */
  exactViaSql: { p50Ms: number; p99Ms: number };
  hnsw: { ef: number; recall1: number; recall10: number; p50Ms: number; p99Ms: number; qps: number }[];
  /** A global index shared with a second gallery of the same size, filtered by gallery_id. */
  sharedIndex?: { otherFaces: number; ef: number; plain: { recall1: number; p50Ms: number }; iterative: { recall1: number; p50Ms: number } };
}

const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;

export async function benchPgSearch(o: {
  location: string;
  g: ClusteredGallery;
  probes: Float32Array;
  /** Exact top-k face rows (1-based row numbers) per probe. */
  truth: Int32Array[];
  efs: number[];
  k: number;
  m: number;
  efConstruction: number;
  incremental?: number;
  sharedIndexCheck?: boolean;
  /** Faces of the second gallery in the shared-index check (default: as many as the first). */
  sharedOther?: number;
  log: (s: string) => void;
}): Promise<PgSearchRow> {
  const { g, probes, truth, efs, k, log } = o;
  const n = g.n;
  const dim = g.dim;
  const queries = truth.length;
  const store = await openStore(o.location, { exactBelow: 0 });
  if (store.backend !== 'postgres') throw new Error('bench search --db needs a Postgres location (pglite:<dir> or postgres://...)');
  const meta = store.meta as PgMeta;
  const index = store.index as PgVectorIndex;
  const db = meta.db;
  try {
    const [{ v: pgvector } = { v: '?' }] = await rawRows<{ v: string }>(db, sql`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`);
    const name = `bench-${n}-${Date.now()}`;
    const gal = (await meta.insertGallery({ name, modelId: 'synthetic', modelVersion: '1', dimension: dim, hnswM: o.m, hnswEfConstruction: o.efConstruction, hnswEf: efs[0]!, createdAt: new Date() }))!;
    try {
      // Identities, then faces in 1000-row transactions, without the index (bulk load).
      const t0 = performance.now();
      const identityIds: number[] = [];
      for (let i0 = 0; i0 < g.identities; i0 += 1000) {
        const vals = [];
        for (let i = i0; i < Math.min(g.identities, i0 + 1000); i++) vals.push(sql`(${gal.id}, ${`p${i}`}, now())`);
        const rows = await rawRows<{ id: number }>(db, sql`INSERT INTO identities (gallery_id, external_id, created_at) VALUES ${sql.join(vals, sql`, `)} RETURNING id`);
        identityIds.push(...rows.map((r) => Number(r.id)).sort((a, b) => a - b));
      }
      const faceIdOfRow = new Float64Array(n);
      for (let r0 = 0; r0 < n; r0 += 1000) {
        const batch = [];
        for (let r = r0; r < Math.min(n, r0 + 1000); r++) {
          batch.push({ identityId: identityIds[g.identityOf[r]!]!, photoPath: null, photoHash: null, box: null, keypoints: null, quality: null, embedding: g.vectors.subarray(r * dim, (r + 1) * dim), createdAt: new Date() });
        }
        const ids = await meta.insertFaces(gal.id, batch);
        ids.forEach((id, i) => (faceIdOfRow[r0 + i] = id));
        if (r0 > 0 && r0 % 20_000 === 0) log(`  pg n=${n}: loaded ${r0}`);
      }
      const loadSeconds = (performance.now() - t0) / 1000;
      log(`pg n=${n}: loaded in ${loadSeconds.toFixed(1)} s`);
      // The graph is built in memory when it fits maintenance_work_mem (the default 64 MB holds
      // about 40k 128-d faces at M=32); past that pgvector builds on disk, far slower.
      await db.execute(sql.raw(`SET maintenance_work_mem = '${Math.max(64, Math.ceil((n * (4 * dim + 16 * o.m * 2 + 64)) / 2 ** 20 * 1.5))}MB'`));
      const t1 = performance.now();
      await index.ensureIndex(gal);
      const indexSeconds = (performance.now() - t1) / 1000;
      log(`pg n=${n}: HNSW index (m=${pgHnswParams(gal).m}, ef_construction=${pgHnswParams(gal).efConstruction}) built in ${indexSeconds.toFixed(1)} s`);
      const [sizes] = await rawRows<{ ix: number; tb: number }>(
        db,
        sql`SELECT pg_relation_size(to_regclass(${hnswIndexName(gal.id)}))::float8 AS ix, pg_total_relation_size('faces')::float8 AS tb`,
      );
      const rowOfFace = new Map<number, number>();
      faceIdOfRow.forEach((id, r) => rowOfFace.set(id, r + 1));

      const runSearch = async (method: 'hnsw' | 'exact', ef: number, count = queries) => {
        const times: number[] = [];
        let hit1 = 0;
        let hit10 = 0;
        const th = performance.now();
        for (let qi = 0; qi < count; qi++) {
          const p = probes.subarray(qi * dim, (qi + 1) * dim);
          const t = performance.now();
          const res = await index.search(gal, p, k, { method, ef });
          times.push(performance.now() - t);
          const got = res.faces.map((f) => rowOfFace.get(f.faceId));
          const want = truth[qi]!;
          if (got[0] === want[0]) hit1++;
          const set = new Set(want);
          for (const r of got) if (r !== undefined && set.has(r)) hit10++;
        }
        const s = [...times].sort((a, b) => a - b);
        return { recall1: hit1 / count, recall10: hit10 / (count * k), p50Ms: pct(s, 0.5), p99Ms: pct(s, 0.99), qps: (count / (performance.now() - th)) * 1000 };
      };
      const hnsw = [];
      for (const ef of efs) {
        const r = await runSearch('hnsw', ef);
        log(`pg n=${n}: ef=${ef} recall@1 ${r.recall1.toFixed(4)} p50 ${r.p50Ms.toFixed(2)} ms`);
        hnsw.push({ ef, ...r });
      }
      // The exact scan reads every row in WASM: its latency from the first 50 probes.
      const exactProbes = Math.min(queries, 50);
      const ex = await runSearch('exact', 0, exactProbes);
      log(`pg n=${n}: exact SQL scan (${exactProbes} probes) recall@1 ${ex.recall1.toFixed(4)} p50 ${ex.p50Ms.toFixed(1)} ms`);

      // Steady-state enrollment with the index in place: one face per transaction.
      const extra = o.incremental ?? 200;
      const t2 = performance.now();
      for (let i = 0; i < extra; i++) {
        const v = g.generator.sample(g.centres.subarray(0, dim));
        await meta.insertFaces(gal.id, [{ identityId: identityIds[0]!, photoPath: null, photoHash: null, box: null, keypoints: null, quality: null, embedding: v, createdAt: new Date() }]);
      }
      const incrementalPerSecond = extra / ((performance.now() - t2) / 1000);
      log(`pg n=${n}: ${extra} single-face inserts with the index: ${incrementalPerSecond.toFixed(0)}/s`);

      const row: PgSearchRow = {
        location: store.location,
        pgvector,
        loadSeconds,
        loadPerSecond: n / loadSeconds,
        indexSeconds,
        indexPerSecond: n / indexSeconds,
        incrementalPerSecond,
        indexBytesPerVector: Number(sizes!.ix) / n,
        tableBytesPerVector: Number(sizes!.tb) / n,
        exactViaSql: { p50Ms: ex.p50Ms, p99Ms: ex.p99Ms },
        hnsw,
      };
      if (o.sharedIndexCheck) row.sharedIndex = await sharedIndexCheck(db, gal, g, probes, truth, rowOfFace, efs[efs.length - 1]!, o.sharedOther ?? n, o, log);
      return row;
    } finally {
      await index.dropGallery(gal);
      await meta.deleteGallery(gal.id);
    }
  } finally {
    await store.close();
  }
}

/**
 * The alternative design: one HNSW index over the whole table (every gallery), the gallery chosen
 * by a WHERE filter. A second gallery as large as the first shares the index; searches for the
 * first are filtered after the graph walk, so without iterative scans about half of the ef
 * candidates are thrown away; with hnsw.iterative_scan the walk goes on until k rows pass.
 */
async function sharedIndexCheck(
  db: PgMeta['db'],
  gal: GalleryRecord,
  g: ClusteredGallery,
  probes: Float32Array,
  truth: Int32Array[],
  rowOfFace: Map<number, number>,
  ef: number,
  otherFaces: number,
  o: { k: number; m: number; efConstruction: number },
  log: (s: string) => void,
) {
  const dim = g.dim;
  const other = (
    await rawRows<{ id: number }>(
      db,
      sql`INSERT INTO galleries (name, model_id, model_version, dimension, hnsw_m, hnsw_ef_construction, hnsw_ef, created_at)
          VALUES (${`bench-other-${Date.now()}`}, 'synthetic', '1', ${dim}, ${o.m}, ${o.efConstruction}, ${ef}, now()) RETURNING id`,
    )
  )[0]!.id;
  try {
    const [ident] = await rawRows<{ id: number }>(db, sql`INSERT INTO identities (gallery_id, external_id, created_at) VALUES (${other}, 'x', now()) RETURNING id`);
    // The other gallery: faces around the first gallery's faces (cycling through them), as when
    // the same people are enrolled in two galleries: the worst case for filtering after the walk.
    for (let r0 = 0; r0 < otherFaces; r0 += 1000) {
      const vals = [];
      for (let r = r0; r < Math.min(otherFaces, r0 + 1000); r++) {
        const src = r % g.n;
        const v = g.generator.sample(g.vectors.subarray(src * dim, (src + 1) * dim));
        vals.push(sql`(${other}, ${ident!.id}, ${vectorLiteral(v)}::vector, now())`);
      }
      await db.execute(sql`INSERT INTO faces (gallery_id, identity_id, embedding, created_at) VALUES ${sql.join(vals, sql`, `)}`);
    }
    const { m, efConstruction } = pgHnswParams({ hnswM: o.m, hnswEfConstruction: o.efConstruction });
    const t0 = performance.now();
    await db.execute(sql.raw(`CREATE INDEX bench_global_hnsw ON faces USING hnsw ((embedding::vector(${dim})) vector_ip_ops) WITH (m = ${m}, ef_construction = ${efConstruction}) WHERE gallery_id IN (${gal.id}, ${other}) AND NOT deleted`));
    log(`shared index over ${g.n + otherFaces} faces built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // The per-gallery index goes (its gallery is deleted after this), so only the shared one is left.
    await db.execute(sql.raw(`DROP INDEX IF EXISTS ${hnswIndexName(gal.id)}`));
    const run = async (iterative: boolean) => {
      let hit = 0;
      const times: number[] = [];
      for (let qi = 0; qi < truth.length; qi++) {
        const lit = vectorLiteral(probes.subarray(qi * dim, (qi + 1) * dim));
        const t = performance.now();
        const rows = await db.transaction(async (tx) => {
          await tx.execute(sql.raw(`SET LOCAL hnsw.ef_search = ${ef}`));
          // Else the planner picks the btree on gallery_id and sorts: an exact answer, not the graph's.
          await tx.execute(sql.raw('SET LOCAL enable_sort = off'));
          if (iterative) await tx.execute(sql.raw(`SET LOCAL hnsw.iterative_scan = relaxed_order`));
          if (qi === 0) {
            const plan = await rawRows<{ 'QUERY PLAN': string }>(
              tx,
              sql`EXPLAIN SELECT id FROM faces WHERE gallery_id IN (${sql.raw(String(gal.id))}, ${sql.raw(String(other))}) AND NOT deleted AND gallery_id = ${gal.id}
                  ORDER BY embedding::vector(${sql.raw(String(dim))}) <#> ${lit}::vector(${sql.raw(String(dim))}) LIMIT ${o.k}`,
            );
            const text = plan.map((r) => r['QUERY PLAN']).join(' ');
            if (!text.includes('bench_global_hnsw')) throw new Error(`the shared-index query does not use the shared index: ${text.slice(0, 300)}`);
          }
          return rawRows<{ id: number }>(
            tx,
            sql`SELECT id FROM faces WHERE gallery_id IN (${sql.raw(String(gal.id))}, ${sql.raw(String(other))}) AND NOT deleted AND gallery_id = ${gal.id}
                ORDER BY embedding::vector(${sql.raw(String(dim))}) <#> ${lit}::vector(${sql.raw(String(dim))}) LIMIT ${o.k}`,
          );
        });
        times.push(performance.now() - t);
        if (rows.length > 0 && rowOfFace.get(Number(rows[0]!.id)) === truth[qi]![0]) hit++;
      }
      times.sort((a, b) => a - b);
      return { recall1: hit / truth.length, p50Ms: pct(times, 0.5) };
    };
    const plain = await run(false);
    const iterative = await run(true);
    log(`shared index, ef=${ef}: recall@1 ${plain.recall1.toFixed(4)} plain, ${iterative.recall1.toFixed(4)} with iterative_scan`);
    return { otherFaces, ef, plain, iterative };
  } finally {
    await db.execute(sql.raw('DROP INDEX IF EXISTS bench_global_hnsw'));
    await db.execute(sql`DELETE FROM faces WHERE gallery_id = ${other}`);
    await db.execute(sql`DELETE FROM identities WHERE gallery_id = ${other}`);
    await db.execute(sql`DELETE FROM galleries WHERE id = ${other}`);
  }
}
