// Opens the SQLite database (better-sqlite3, WAL) and brings its schema up to date from migrations/sqlite.
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as schema from './schema.js';
import { sqliteOpenPragmas, type SqlitePragmaOptions } from './sqlite-pragmas.js';

export type Db = BetterSQLite3Database<typeof schema>;

export type OpenDbOptions = SqlitePragmaOptions;

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
  sqlite.exec(sqliteOpenPragmas(opts));
  sqlite.pragma('foreign_keys = ON');
  const db = drizzle(sqlite, { schema });
  if (!opts.readonly) migrate(db, { migrationsFolder: migrationsFolder() });
  return { sqlite, db };
}
