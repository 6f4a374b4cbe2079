// Opens the Postgres backend: PGlite (Postgres compiled to WASM, in this process, with pgvector) for
// pglite:<dir> and pglite:memory, or a server through a node-postgres pool for postgres:// URLs.
// Either way the schema is brought up to date from migrations/pg (the first one creates the vector
// extension) before the store answers.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import * as schema from '../../db/schema-pg.js';
import { migrationsFolder } from '../../db/open-db.js';
import { CosfaceError } from '../../errors.js';
import type { ExactScorer } from '../exact-scorer.js';
import type { ParsedLocation } from '../open-store.js';
import type { StoreParts } from '../store.js';
import { PgMeta, type PgDb } from './pg-meta.js';
import { PgVectorIndex } from './pgvector-index.js';

export type PgParts = Pick<StoreParts, 'meta' | 'index' | 'backend' | 'closeBackend'>;

export async function openPgParts(loc: Exclude<ParsedLocation, { kind: 'sqlite' }>, _o: { scorer: ExactScorer; exactBelow: number }): Promise<PgParts> {
  const { db, close } = loc.kind === 'pglite' ? await openPglite(loc.dir) : await openNodePostgres(loc.url);
  try {
    await migrate(db, loc.kind);
  } catch (e) {
    await close().catch(() => undefined);
    throw new CosfaceError('BAD_INPUT', `cannot prepare the Postgres database: ${(e as Error).message}`, { cause: e });
  }
  return { meta: new PgMeta(db), index: new PgVectorIndex(db), backend: 'postgres', closeBackend: close };
}

interface SharedPglite {
  db: Promise<PgDb>;
  refs: number;
  close: () => Promise<void>;
}

/**
 * PGlite instances open in this process, by data folder. A folder may be opened by one instance
 * only (two would corrupt it), so stores on the same pglite:<dir> share one, closed with the last.
 */
const openPglites = new Map<string, SharedPglite>();

async function openPglite(dir: string | null): Promise<{ db: PgDb; close: () => Promise<void> }> {
  if (dir === null) return createPglite(undefined);
  const dataDir = resolve(dir);
  let shared = openPglites.get(dataDir);
  if (!shared) {
    const made = createPglite(dataDir);
    const entry: SharedPglite = {
      db: made.then((m) => m.db),
      refs: 0,
      close: async () => (await made).close(),
    };
    openPglites.set(dataDir, entry);
    made.catch(() => openPglites.delete(dataDir));
    shared = entry;
  }
  shared.refs++;
  const entry = shared;
  let db: PgDb;
  try {
    db = await entry.db;
  } catch (e) {
    entry.refs--;
    throw e;
  }
  let closed = false;
  return {
    db,
    close: async () => {
      if (closed) return;
      closed = true;
      if (--entry.refs === 0) {
        openPglites.delete(dataDir);
        await entry.close();
      }
    },
  };
}

async function createPglite(dataDir: string | undefined): Promise<{ db: PgDb; close: () => Promise<void> }> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { vector } = await import('@electric-sql/pglite-pgvector');
  const { drizzle } = await import('drizzle-orm/pglite');
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  let client;
  try {
    client = await PGlite.create({ ...(dataDir ? { dataDir } : {}), extensions: { vector } });
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `cannot open PGlite at ${dataDir ?? 'memory'}: ${(e as Error).message}`, { cause: e });
  }
  const db = drizzle(client, { schema }) as unknown as PgDb;
  return { db, close: () => client.close() };
}

async function openNodePostgres(url: string): Promise<{ db: PgDb; close: () => Promise<void> }> {
  const pg = (await import('pg')).default;
  const { drizzle } = await import('drizzle-orm/node-postgres');
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => undefined); // an idle client dropped by the server; the pool replaces it
  try {
    const c = await pool.connect();
    c.release();
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw new CosfaceError('BAD_INPUT', `cannot connect to Postgres: ${(e as Error).message}`, { cause: e });
  }
  const db = drizzle(pool, { schema }) as unknown as PgDb;
  return { db, close: () => pool.end() };
}

async function migrate(db: PgDb, kind: 'pglite' | 'postgres'): Promise<void> {
  const migrationsDir = migrationsFolder('pg');
  if (kind === 'pglite') {
    const { migrate } = await import('drizzle-orm/pglite/migrator');
    await migrate(db as never, { migrationsFolder: migrationsDir });
  } else {
    const { migrate } = await import('drizzle-orm/node-postgres/migrator');
    await migrate(db as never, { migrationsFolder: migrationsDir });
  }
}
