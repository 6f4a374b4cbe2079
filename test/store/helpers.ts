// Test helpers: temporary store folders and a fingerprint of everything in a database file.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cosface-${prefix}-`));
}

/** sha256 over every row of every table, read through a separate connection. */
export function dbFingerprint(path: string): string {
  const db = new Database(path, { readonly: true });
  const h = createHash('sha256');
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  for (const t of tables) {
    h.update(t);
    for (const row of db.prepare(`SELECT * FROM "${t}" ORDER BY rowid`).raw().iterate()) {
      h.update(JSON.stringify(row, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)));
    }
  }
  db.close();
  return h.digest('hex');
}
