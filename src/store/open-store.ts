// Opening a store from a location: a SQLite file path or ':memory:' (better-sqlite3 + hnswlib), a
// postgres:// URL (node-postgres + pgvector) or pglite:<dir> / pglite:memory (PGlite, Postgres as
// WASM in this process, + pgvector). The Postgres modules load only when a Postgres store is opened.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { openDatabase } from '../db/open-db.js';
import { CosfaceError } from '../errors.js';
import { defaultScorer } from './default-scorer.js';
import { arrayRows, type ExactRowsFactory, type ExactScorer } from './exact-scorer.js';
import { HnswVectorIndex } from './sqlite/hnsw-vector-index.js';
import { SqliteMeta, type SyncSqliteDb } from './sqlite/sqlite-meta.js';
import { Store, type StoreOptions } from './store.js';

/** The default store location when neither --db nor COSFACE_DB says otherwise. */
export const DEFAULT_DB = './cosface.db';

/** The location to use: the given one, else $COSFACE_DB, else ./cosface.db. */
export function storeLocation(given?: string | null): string {
  if (typeof given === 'string' && given.length > 0) return given;
  const env = process.env.COSFACE_DB;
  return env && env.length > 0 ? env : DEFAULT_DB;
}

export type ParsedLocation =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string }
  | { kind: 'pglite'; dir: string | null };

/** Which backend a location names. */
export function parseLocation(location: string): ParsedLocation {
  if (typeof location !== 'string' || location.length === 0) throw new CosfaceError('BAD_INPUT', 'openStore: a database location is required');
  if (/^postgres(ql)?:\/\//i.test(location)) return { kind: 'postgres', url: location };
  if (/^pglite:/i.test(location)) {
    const rest = location.slice('pglite:'.length);
    if (rest === 'memory' || rest === ':memory:' || rest === '') return { kind: 'pglite', dir: null };
    return { kind: 'pglite', dir: rest.startsWith('//') ? rest.slice(2) : rest };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new CosfaceError('BAD_INPUT', `unsupported database URL "${redact(location)}": use a SQLite path, postgres://... or pglite:<dir>`);
  }
  return { kind: 'sqlite', path: location };
}

/** A location fit for logs: the password of a URL replaced by ***. */
export function redact(location: string): string {
  return location.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}

async function scorerFor(opts: StoreOptions): Promise<{ scorer: ExactScorer; name: string; rows: ExactRowsFactory }> {
  const chosen = opts.scorer ? { scorer: opts.scorer, name: 'custom', rows: arrayRows(opts.scorer) } : await defaultScorer();
  return opts.exactRows ? { ...chosen, rows: opts.exactRows } : chosen;
}

/**
 * Opens (creating if needed) a store, applying migrations. `location`: a SQLite file path or
 * ':memory:' (index snapshots in `<path>.index/` unless opts.indexDir says otherwise), a
 * postgres://user@host/db URL, or pglite:<dir> / pglite:memory.
 */
export async function openStore(location: string, opts: StoreOptions = {}): Promise<Store> {
  const loc = parseLocation(location);
  const exactBelow = opts.exactBelow ?? 2000;
  if (loc.kind !== 'sqlite') {
    const { openPgParts } = await import('./pg/open-pg.js');
    const { scorer, name } = await scorerFor(opts);
    const parts = await openPgParts(loc, { scorer, exactBelow });
    return new Store({ ...parts, scorer, scorerName: name, exactBelow, location: redact(location), dbPath: null, indexDir: null });
  }
  const memory = loc.path === ':memory:';
  const abs = memory ? null : resolve(loc.path);
  if (abs) mkdirSync(dirname(abs), { recursive: true });
  const opened = openDatabase(abs ?? ':memory:', { synchronous: opts.synchronous ?? 'full' });
  const indexDir = opts.indexDir === undefined ? (abs ? abs + '.index' : null) : opts.indexDir && resolve(opts.indexDir);
  const { scorer, name, rows } = await scorerFor(opts);
  const index = new HnswVectorIndex(opened.sqlite, {
    dbPath: abs,
    indexDir,
    rows,
    checkpointEvery: opts.checkpointEvery ?? 10_000,
    rebuildDeletedFraction: opts.rebuildDeletedFraction ?? 0.25,
    rebuildMinDeleted: opts.rebuildMinDeleted ?? 64,
    ...(opts.shardFrom !== undefined ? { shardFrom: opts.shardFrom } : {}),
    ...(opts.onIndexEvent ? { onIndexEvent: opts.onIndexEvent } : {}),
  });
  return new Store({
    meta: new SqliteMeta(opened.db as unknown as SyncSqliteDb, () => {
      if (opened.sqlite.open) opened.sqlite.close();
    }),
    index,
    backend: 'sqlite',
    location: abs ?? ':memory:',
    dbPath: abs,
    indexDir,
    scorer,
    scorerName: name,
    exactBelow,
  });
}

/**
 * Whether a store may already exist there (for read commands that must not create one): a SQLite
 * file or PGlite folder that exists; a Postgres server always counts (its tables may be empty).
 */
export function storeMayExist(location: string): boolean {
  const loc = parseLocation(location);
  if (loc.kind === 'sqlite') return loc.path !== ':memory:' && existsSync(loc.path);
  if (loc.kind === 'pglite') return loc.dir !== null && existsSync(loc.dir);
  return true;
}

/** A location for messages: a SQLite path made absolute, a URL with its password hidden. */
export function describeLocation(location: string): string {
  const loc = parseLocation(location);
  return loc.kind === 'sqlite' && loc.path !== ':memory:' ? resolve(loc.path) : redact(location);
}
