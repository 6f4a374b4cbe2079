// Applies the bundled SQLite migrations (src/db/sqlite-migrations.generated.ts) to a synchronous
// drizzle database in one transaction, recording them in __drizzle_migrations exactly as drizzle's
// Node migrator does, so a database file moves between Node, Bun and Deno unchanged.
import { sql } from 'drizzle-orm';
import { SQLITE_MIGRATIONS, type BundledMigration } from '../../db/sqlite-migrations.generated.js';
import type { SyncSqliteDb } from '../sqlite/sqlite-meta.js';

/** Returns the tags applied now (empty when the schema was current). */
export function migrateSync(db: SyncSqliteDb, migrations: readonly BundledMigration[] = SQLITE_MIGRATIONS): string[] {
  return db.transaction((tx) => {
    tx.run(sql`CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`);
    const last = tx.values<[number, string, number]>(sql`SELECT id, hash, created_at FROM "__drizzle_migrations" ORDER BY created_at DESC LIMIT 1`)[0];
    const applied: string[] = [];
    for (const m of migrations) {
      if (last && Number(last[2]) >= m.folderMillis) continue;
      for (const stmt of m.sql) if (stmt.trim()) tx.run(sql.raw(stmt));
      tx.run(sql`INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (${m.hash}, ${m.folderMillis})`);
      applied.push(m.tag);
    }
    return applied;
  });
}
