// The database opens in WAL mode with every generated migration applied, and reopening is a no-op.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrationsFolder, openDatabase } from '../../src/db/open-db.js';
import { galleries, identities } from '../../src/db/schema.js';

describe('openDatabase', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cosface-db-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('applies the generated migrations on open, in WAL mode with full sync and foreign keys', () => {
    const path = join(dir, 'a.db');
    const { sqlite } = openDatabase(path);
    const tables = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    for (const t of ['api_keys', 'faces', 'galleries', 'identities', 'jobs', 'model_thresholds']) expect(tables).toContain(t);
    expect(sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(sqlite.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(sqlite.pragma('foreign_keys', { simple: true })).toBe(1);
    const journal = JSON.parse(readFileSync(join(migrationsFolder(), 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
    const applied = sqlite.prepare('SELECT COUNT(*) AS n FROM __drizzle_migrations').get() as { n: number };
    expect(applied.n).toBe(journal.entries.length);
    sqlite.close();
    // Reopening applies nothing twice and keeps the data.
    const again = openDatabase(path);
    expect((again.sqlite.prepare('SELECT COUNT(*) AS n FROM __drizzle_migrations').get() as { n: number }).n).toBe(journal.entries.length);
    again.sqlite.close();
  });

  it('takes its busy timeout from COSFACE_BUSY_TIMEOUT_MS and synchronous NORMAL when asked', () => {
    const before = process.env.COSFACE_BUSY_TIMEOUT_MS;
    process.env.COSFACE_BUSY_TIMEOUT_MS = '1234'; // better-sqlite3's own default is 5000
    try {
      const { sqlite } = openDatabase(join(dir, 'c.db'), { synchronous: 'normal' });
      expect(sqlite.pragma('busy_timeout', { simple: true })).toBe(1234);
      expect(sqlite.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
      sqlite.close();
    } finally {
      if (before === undefined) delete process.env.COSFACE_BUSY_TIMEOUT_MS;
      else process.env.COSFACE_BUSY_TIMEOUT_MS = before;
    }
  });

  it('keeps external ids unique among live identities only, and cascades gallery deletes', () => {
    const { db, sqlite } = openDatabase(join(dir, 'b.db'));
    const g = db
      .insert(galleries)
      .values({ name: 'g', modelId: 'm', modelVersion: '1', dimension: 4, hnswM: 16, hnswEfConstruction: 200, hnswEf: 64, createdAt: new Date() })
      .returning()
      .get();
    const add = () => db.insert(identities).values({ galleryId: g.id, externalId: 'alice', createdAt: new Date() }).returning().get();
    const first = add();
    expect(add).toThrow(/UNIQUE/);
    sqlite.prepare('UPDATE identities SET deleted_at = 1 WHERE id = ?').run(first.id);
    expect(add().id).not.toBe(first.id); // a deleted identity frees its external id
    sqlite.prepare('DELETE FROM galleries WHERE id = ?').run(g.id);
    expect((sqlite.prepare('SELECT COUNT(*) AS n FROM identities').get() as { n: number }).n).toBe(0);
    sqlite.close();
  });
});
