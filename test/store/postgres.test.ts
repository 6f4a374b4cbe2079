// What only the Postgres backend has: a schema Citus can distribute by gallery (checked on the
// migrated catalog), searches that walk the gallery's own HNSW index (checked with EXPLAIN), and
// the network driver (node-postgres through a socket to PGlite) behaving like the embedded one.
import { createServer } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { openStore, scoreExactTs, type Store } from '../../src/store/index.js';
import { rawRows, type PgMeta } from '../../src/store/pg/pg-meta.js';
import type { PgVectorIndex } from '../../src/store/pg/pgvector-index.js';
import { makeClusteredGallery } from '../../src/bench/search-bench.js';
import { testDb, type TestDb } from '../helpers/backends.js';

/** Tables Citus distributes by gallery_id, and small ones it copies to every node. */
const DISTRIBUTED = ['faces', 'identities', 'staged_embeddings'];
const REFERENCE = ['api_keys', 'galleries', 'jobs', 'model_thresholds'];

describe('Postgres schema and search', () => {
  let db: TestDb;
  let store: Store;
  const q = <T>(text: string) => rawRows<T>((store.meta as PgMeta).db, sql.raw(text));

  beforeAll(async () => {
    db = await testDb('pglite', 'pgschema');
    store = await db.open({ exactBelow: 0, scorer: scoreExactTs });
  });
  afterAll(async () => {
    await store?.close();
    await db?.dispose();
  });

  it('can be distributed by gallery: gallery_id in every key of the big tables, no reference table pointing at them', async () => {
    const tables = (await q<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).map((r) => r.t);
    expect(tables).toEqual([...DISTRIBUTED, ...REFERENCE].sort()); // a new table must be classified here
    // Every primary key, unique constraint and unique index (partial ones too) of a distributed table holds gallery_id.
    const keys = await q<{ t: string; name: string; cols: string[] }>(`
      SELECT c.relname AS t, i.relname AS name,
             ARRAY(SELECT a.attname::text FROM unnest(x.indkey) k JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k) AS cols
      FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND (x.indisunique OR x.indisprimary)`);
    const distributedKeys = keys.filter((k) => DISTRIBUTED.includes(k.t));
    expect(distributedKeys.length).toBeGreaterThanOrEqual(3); // two primary keys, the live external-id index
    for (const k of distributedKeys) expect(k.cols, `${k.t}.${k.name}`).toContain('gallery_id');
    // Foreign keys: between distributed tables only on gallery_id = gallery_id (co-located); from a
    // distributed table to a reference table allowed; from a reference table to a distributed one never.
    const fks = await q<{ t: string; ref: string; cols: string[]; refcols: string[] }>(`
      SELECT c.relname AS t, r.relname AS ref,
             ARRAY(SELECT a.attname::text FROM unnest(f.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
             ARRAY(SELECT a.attname::text FROM unnest(f.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n ORDER BY k.o) AS refcols
      FROM pg_constraint f JOIN pg_class c ON c.oid = f.conrelid JOIN pg_class r ON r.oid = f.confrelid
      WHERE f.contype = 'f'`);
    expect(fks.length).toBeGreaterThan(0);
    for (const fk of fks) {
      if (REFERENCE.includes(fk.t)) expect(DISTRIBUTED, `${fk.t} -> ${fk.ref}`).not.toContain(fk.ref);
      if (DISTRIBUTED.includes(fk.t) && DISTRIBUTED.includes(fk.ref)) {
        const at = fk.cols.indexOf('gallery_id');
        expect(at, `${fk.t} -> ${fk.ref} without gallery_id`).toBeGreaterThanOrEqual(0);
        expect(fk.refcols[at]).toBe('gallery_id');
      }
    }
    // The distribution column is never null, and identity columns of distributed tables are bigint (Citus).
    const cols = await q<{ t: string; c: string; nullable: string; type: string; identity: string }>(`
      SELECT table_name AS t, column_name AS c, is_nullable AS nullable, data_type AS type, is_identity AS identity
      FROM information_schema.columns WHERE table_schema = 'public'`);
    for (const t of DISTRIBUTED) {
      expect(cols.find((c) => c.t === t && c.c === 'gallery_id')).toMatchObject({ nullable: 'NO', type: 'bigint' });
      for (const c of cols.filter((x) => x.t === t && x.identity === 'YES')) expect(c.type).toBe('bigint');
    }
    // The vector extension came with the migrations.
    expect((await q<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`))[0]?.v).toMatch(/^0\.8\./);
  });

  it("searches walk the gallery's own partial HNSW index, with ef_search set per query", async () => {
    const data = makeClusteredGallery(120, { facesPerIdentity: 3, seed: 4 });
    for (const name of ['a', 'b']) {
      await store.createGallery(name, { modelId: 'synthetic', dimension: 128 });
      for (let i = 0; i < 40; i++) await store.addIdentity(name, { externalId: `p${i}` });
      await store.addFaces(
        name,
        Array.from({ length: 120 }, (_, r) => ({ identity: `p${data.identityOf[r]}`, face: { embedding: data.vectors.subarray(r * 128, (r + 1) * 128) } })),
      );
    }
    const ga = (await store.meta.galleryByName('a'))!;
    const gb = (await store.meta.galleryByName('b'))!;
    const probe = data.vectors.subarray(0, 128);
    const plan = await (store.index as PgVectorIndex).explain(ga, probe, 32, 64);
    expect(plan).toMatch(new RegExp(`Index Scan using faces_hnsw_g${ga.id} on faces`));
    expect(plan).not.toMatch(/Sort|Seq Scan/);
    expect(await (store.index as PgVectorIndex).explain(gb, probe, 32, 64)).toMatch(new RegExp(`faces_hnsw_g${gb.id}`));
    // The index answers like the exact scan for this gallery, and never with the other gallery's faces.
    const hnsw = await store.identify('a', probe, { k: 3 });
    const exact = await store.identify('a', probe, { k: 3, exact: true });
    expect(hnsw.method).toBe('hnsw');
    expect(hnsw.candidates).toEqual(exact.candidates);
    const bFaces = new Set((await q<{ id: number }>(`SELECT id FROM faces WHERE gallery_id = ${gb.id}`)).map((r) => Number(r.id)));
    for (const c of hnsw.candidates) expect(bFaces.has(c.faceId)).toBe(false);
    // Deleting a gallery drops its index.
    await store.deleteGallery('b');
    expect(await q(`SELECT 1 FROM pg_indexes WHERE indexname = 'faces_hnsw_g${gb.id}'`)).toEqual([]);
  });
});

describe('node-postgres through a socket (the driver a real server uses)', () => {
  let server: { stop(): Promise<void> } | null = null;
  let pglite: { close(): Promise<void> } | null = null;
  let url = '';

  beforeAll(async () => {
    const { PGlite } = await import('@electric-sql/pglite');
    const { vector } = await import('@electric-sql/pglite-pgvector');
    const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
    const pg = await PGlite.create({ extensions: { vector } });
    pglite = pg;
    const port = await freePort();
    const s = new PGLiteSocketServer({ db: pg, port, host: '127.0.0.1', maxConnections: 16 });
    await s.start();
    server = s;
    url = `postgres://postgres:secret@127.0.0.1:${port}/postgres`;
  });
  afterAll(async () => {
    await server?.stop();
    await pglite?.close();
  });

  it('migrates, enrolls, identifies and gives the same error codes as the embedded driver', async () => {
    const store = await openStore(url, { scorer: scoreExactTs });
    try {
      expect(store.backend).toBe('postgres');
      expect(store.location).not.toContain('secret'); // the password stays out of logs
      await store.createGallery('net', { modelId: 'synthetic', dimension: 4 });
      await store.addIdentity('net', { externalId: 'x', metadata: { a: 1 } });
      await store.addIdentity('net', { externalId: 'y' });
      await store.addFaces('net', [
        { identity: 'x', face: { embedding: [1, 0, 0, 0], box: { x: 1, y: 2, width: 3, height: 4 } } },
        { identity: 'y', face: { embedding: [0, 1, 0, 0] } },
      ]);
      const r = await store.identify('net', [0.9, 0.2, 0, 0], { k: 2 });
      expect(r.candidates.map((c) => c.identity)).toEqual(['x', 'y']);
      expect(await store.getIdentity('net', 'x')).toMatchObject({ metadata: { a: 1 }, faces: 1 });
      const codes: string[] = [];
      for (const attempt of [
        () => store.createGallery('net', { modelId: 'synthetic', dimension: 4 }),
        () => store.addIdentity('net', { externalId: 'x' }),
        () => store.addFace('net', 'x', { embedding: [1, 0, 0] }),
        () => store.deleteFace('net', 12345),
      ]) codes.push(await attempt().then(() => 'ok', (e: unknown) => (isCosfaceError(e) ? e.code : String(e))));
      expect(codes).toEqual(['GALLERY_EXISTS', 'DUPLICATE_IDENTITY', 'DIMENSION_MISMATCH', 'FACE_NOT_FOUND']);
    } finally {
      await store.close();
    }
    // Reopening migrates nothing twice and sees the data.
    const again = await openStore(url, { scorer: scoreExactTs });
    expect((await again.listGalleries()).map((g) => [g.name, g.identities, g.faces])).toEqual([['net', 2, 2]]);
    await again.close();
  });

  it('a server that cannot be reached is a clear error', async () => {
    const port = await freePort();
    const err = await openStore(`postgres://postgres:pw@127.0.0.1:${port}/postgres`).then(() => null, (e: unknown) => e);
    expect(isCosfaceError(err, 'BAD_INPUT')).toBe(true);
    expect((err as Error).message).toMatch(/cannot connect to Postgres/);
    expect((err as Error).message).not.toContain('pw@');
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
