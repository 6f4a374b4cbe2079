// The store backends every store, commands and server suite runs on: SQLite (a real file,
// better-sqlite3 + hnswlib) and Postgres (PGlite with pgvector, the same drizzle queries a server
// gets through node-postgres). A TestDb is one empty database with a location the CLI accepts.
// PGlite costs about a second to start, so a test file keeps one instance open (`pglite:<dir>`
// stores in one process share it) and `fresh()` empties it between uses.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { openStore, scoreExactTs, type Store, type StoreOptions } from '../../src/store/index.js';
import { PgMeta, rawRows } from '../../src/store/pg/pg-meta.js';

export type BackendName = 'sqlite' | 'pglite';
export const BACKENDS: readonly BackendName[] = ['sqlite', 'pglite'];

export interface TestDb {
  backend: BackendName;
  /** What --db / openStore takes. */
  location: string;
  dir: string;
  open(opts?: StoreOptions): Promise<Store>;
  /** Every row of every table, hashed (read through the given open store on Postgres). */
  fingerprint(store?: Store): Promise<string>;
  /** The rows of one table. */
  rows(table: string, store?: Store): Promise<Record<string, unknown>[]>;
  /** Removes everything (and, on Postgres, releases the held instance). */
  dispose(): Promise<void>;
}

const PG_TABLES = ['galleries', 'identities', 'faces', 'staged_embeddings', 'api_keys', 'jobs', 'model_thresholds'];

/**
 * A test file's database on a backend. sqlite: a fresh file per fresh(); pglite: one folder whose
 * instance stays open (held by `keeper`) and is emptied by fresh().
 */
export async function testDb(backend: BackendName, prefix = 'db'): Promise<TestDb & { fresh(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `cosface-${prefix}-${backend}-`));
  if (backend === 'sqlite') {
    let n = 0;
    const t = {
      backend,
      dir,
      location: join(dir, `db${n}.sqlite`),
      open: (opts: StoreOptions = {}) => openStore(t.location, opts),
      async fresh() {
        t.location = join(dir, `db${++n}.sqlite`);
      },
      async fingerprint() {
        return sqliteFingerprint(t.location);
      },
      async rows(table: string) {
        const db = new Database(t.location, { readonly: true });
        try {
          return db.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).all() as Record<string, unknown>[];
        } finally {
          db.close();
        }
      },
      async dispose() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return t;
  }
  const location = `pglite:${join(dir, 'pg')}`;
  // Holds the instance open for the whole file; the stores tests open share it.
  const keeper = await openStore(location, { scorer: scoreExactTs });
  const pg = () => (keeper.meta as PgMeta).db;
  const t = {
    backend,
    dir,
    location,
    open: (opts: StoreOptions = {}) => openStore(location, opts),
    async fresh() {
      const indexes = await rawRows<{ name: string }>(pg(), sql`SELECT indexname AS name FROM pg_indexes WHERE indexname LIKE 'faces_hnsw_g%'`);
      for (const ix of indexes) await pg().execute(sql.raw(`DROP INDEX IF EXISTS "${ix.name}"`));
      await pg().execute(sql.raw(`TRUNCATE ${PG_TABLES.join(', ')} RESTART IDENTITY CASCADE`));
    },
    async fingerprint() {
      const h = createHash('sha256');
      for (const table of PG_TABLES) {
        h.update(table);
        for (const row of await t.rows(table)) h.update(JSON.stringify(row));
      }
      return h.digest('hex');
    },
    async rows(table: string) {
      const order = table === 'model_thresholds' ? 'model_id, far' : table === 'identities' || table === 'faces' ? 'gallery_id, id' : table === 'staged_embeddings' ? 'gallery_id, face_id' : 'id';
      return rawRows<Record<string, unknown>>(pg(), sql.raw(`SELECT * FROM "${table}" ORDER BY ${order}`));
    },
    async dispose() {
      await keeper.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** sha256 over every row of every table of a SQLite file, read through a separate read-only connection. */
export function sqliteFingerprint(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    const h = createHash('sha256');
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    for (const t of tables) {
      h.update(t);
      for (const row of db.prepare(`SELECT * FROM "${t}" ORDER BY rowid`).raw().iterate()) {
        h.update(JSON.stringify(row, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)));
      }
    }
    return h.digest('hex');
  } finally {
    db.close();
  }
}
