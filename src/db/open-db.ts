// Opens the SQLite database (better-sqlite3, WAL) and brings its schema up to date from migrations/sqlite.
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as schema from './schema.js';
import { busyTimeoutMs } from './busy.js';

export type Db = BetterSQLite3Database<typeof schema>;

export interface OpenDbOptions {
  /**
   * 'full' (default): a commit is on disk when it returns, surviving power loss as well as a process
   * crash. 'normal': in WAL mode survives a process crash but may lose the last commits on power
   * loss; faster for bulk loads.
   */
  synchronous?: 'full' | 'normal';
  readonly?: boolean;
}

export interface OpenedDb {
  sqlite: Database.Database;
  db: Db;
}

/**
 * A dialect's migrations folder (migrations/sqlite, migrations/pg). migrations/ ships next to src/
 * (and next to dist/src/ after a build), so walk up to it.
 */
export function migrationsFolder(dialect: 'sqlite' | 'pg' = 'sqlite'): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'migrations', dialect);
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cosface: migrations/ folder not found above ' + fileURLToPath(import.meta.url));
}

export function openDatabase(path: string, opts: OpenDbOptions = {}): OpenedDb {
  const sqlite = new Database(path, { readonly: opts.readonly ?? false });
  sqlite.pragma(`busy_timeout = ${busyTimeoutMs()}`);
  if (!opts.readonly) {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  }
  sqlite.pragma('foreign_keys = ON');
  const db = drizzle(sqlite, { schema });
  if (!opts.readonly) migrate(db, { migrationsFolder: migrationsFolder() });
  return { sqlite, db };
}
