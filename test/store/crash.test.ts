// Crash test: a child process enrolls continuously and is killed with SIGKILL at random points;
// after each kill every acknowledged face is found by search, the index agrees with the database,
// and no half-written face exists. On SQLite (derived hnswlib index: snapshots, replay) and on
// Postgres (PGlite on a folder: WAL recovery, the index inside the database).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { parseVector } from '../../src/db/schema-pg.js';
import { openStore, type Store } from '../../src/store/index.js';
import { rawRows, type PgMeta } from '../../src/store/pg/pg-meta.js';
import { BACKENDS, type BackendName } from '../helpers/backends.js';
import { seededRandom } from '../../src/bench/search-bench.js';
import { crashTestVector, CRASH_DIM, CRASH_GALLERY } from './crash-vectors.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
/** Kills per backend: PGlite takes seconds to start (and to recover) in each round. */
const ROUNDS: Record<BackendName, number> = { sqlite: 6, pglite: 1 };

interface Acked {
  faceId: number;
  identity: string;
  vecSeed: number;
}

/** Runs the child until it has acked at least one face, then SIGKILLs it after `delayMs` more. */
function runAndKill(dbPath: string, round: number, delayMs: number): Promise<{ acks: Acked[]; dels: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dbPath, String(round)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acks: Acked[] = [];
    const dels: string[] = [];
    let buf = '';
    let stderr = '';
    let timer: NodeJS.Timeout | null = null;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const [kind, a, b, c] = line.split(' ');
        if (kind === 'ack') {
          acks.push({ faceId: Number(a), identity: b!, vecSeed: Number(c) });
          if (!timer) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
        } else if (kind === 'del') dels.push(a!);
      }
    });
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${_code}): ${stderr}`));
      else resolve({ acks, dels });
    });
  });
}

interface RawFace {
  id: number;
  embedding: Float32Array;
  deleted: boolean;
  identityDeleted: boolean;
}

/** Every face row and the deleted identities, read around the store (SQLite) or through its connection (Postgres). */
async function rawRowsOf(backend: BackendName, dbPath: string, store: Store): Promise<{ rows: RawFace[]; deletedIdentities: Set<string> }> {
  if (backend === 'sqlite') {
    const raw = new Database(dbPath, { readonly: true });
    const rows = (
      raw
        .prepare('SELECT f.id, f.embedding, f.deleted, i.deleted_at AS identityDeleted FROM faces f LEFT JOIN identities i ON i.id = f.identity_id')
        .all() as { id: number; embedding: Buffer; deleted: number; identityDeleted: number | null }[]
    ).map((r) => ({
      id: r.id,
      embedding: r.embedding.byteLength % 4 === 0 ? new Float32Array(r.embedding.buffer.slice(r.embedding.byteOffset, r.embedding.byteOffset + r.embedding.byteLength)) : new Float32Array(0),
      deleted: r.deleted === 1,
      identityDeleted: r.identityDeleted !== null,
    }));
    const deletedIdentities = new Set((raw.prepare('SELECT external_id AS e FROM identities WHERE deleted_at IS NOT NULL').all() as { e: string }[]).map((r) => r.e));
    raw.close();
    return { rows, deletedIdentities };
  }
  const db = (store.meta as PgMeta).db;
  const rows = (
    await rawRows<{ id: string | number; embedding: string; deleted: boolean; identityDeleted: boolean }>(
      db,
      sql`SELECT f.id, f.embedding::text AS embedding, f.deleted, (i.deleted_at IS NOT NULL) AS "identityDeleted"
          FROM faces f LEFT JOIN identities i ON i.gallery_id = f.gallery_id AND i.id = f.identity_id`,
    )
  ).map((r) => ({ id: Number(r.id), embedding: parseVector(r.embedding), deleted: r.deleted, identityDeleted: r.identityDeleted }));
  const deletedIdentities = new Set((await rawRows<{ e: string }>(db, sql`SELECT external_id AS e FROM identities WHERE deleted_at IS NOT NULL`)).map((r) => r.e));
  return { rows, deletedIdentities };
}

describe.each(BACKENDS)('crash safety on %s', (backend) => {
  const dir = mkdtempSync(join(tmpdir(), 'cosface-crash-'));
  const dbPath = backend === 'sqlite' ? join(dir, 'crash.db') : `pglite:${join(dir, 'pg')}`;
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const rounds = ROUNDS[backend];

  it(`loses no acknowledged enrollment across ${rounds} SIGKILLs at random points`, async () => {
    const rand = seededRandom(42);
    const acked: Acked[] = [];
    const ackedDeletes = new Set<string>();
    const opens: string[] = [];
    for (let round = 0; round < rounds; round++) {
      // PGlite writes are slower: a longer run before the kill, for as many acknowledged writes.
      const delay = backend === 'sqlite' ? 50 + Math.floor(rand() * 900) : 1000 + Math.floor(rand() * 2000);
      const { acks, dels } = await runAndKill(dbPath, round, delay);
      acked.push(...acks);
      dels.forEach((d) => ackedDeletes.add(d));
      expect(acks.length).toBeGreaterThan(0);

      const store = await openStore(dbPath, {
        exactBelow: 0,
        onIndexEvent: (e) => {
          if (e.kind === 'opened') opens.push(e.how === 'snapshot' ? `snapshot+${e.replayed} replayed+${e.deletesApplied} deletes` : `rebuilt (${e.reason})`);
        },
      });
      // No half-written face: every row has a full unit-length embedding and a live or deleted identity.
      const { rows, deletedIdentities } = await rawRowsOf(backend, dbPath, store);
      for (const r of rows) {
        expect(r.embedding.length).toBe(CRASH_DIM);
        expect(Math.abs(Math.hypot(...r.embedding) - 1)).toBeLessThan(1e-5);
        // A deleted identity never keeps live faces (identity and faces are deleted in one transaction).
        if (r.identityDeleted) expect(r.deleted).toBe(true);
      }
      for (const d of ackedDeletes) expect(deletedIdentities.has(d)).toBe(true);

      const check = await store.checkConsistency(CRASH_GALLERY);
      expect(check.missingFromIndex).toEqual([]);
      expect(check.extraInIndex).toEqual([]);
      expect(check.vectorMismatches).toEqual([]);
      expect(check.indexLive).toBe(check.dbLive);
      // Every acknowledged face is found by HNSW search, unless its identity was deleted
      // (acknowledged, or committed just before the kill); deleted ones are never returned.
      for (const a of acked) {
        const res = await store.identify(CRASH_GALLERY, crashTestVector(a.vecSeed), { k: 1, ef: 256 });
        expect(res.method).toBe('hnsw');
        if (deletedIdentities.has(a.identity)) {
          expect(res.candidates[0]?.identity).not.toBe(a.identity);
        } else {
          expect(res.candidates[0]?.faceId).toBe(a.faceId);
          expect(res.candidates[0]!.score).toBeGreaterThan(0.9999);
        }
      }
      await store.close();
    }
    expect(acked.length).toBeGreaterThan(rounds * 5);
    console.log(`crash test (${backend}): ${acked.length} acknowledged faces, ${ackedDeletes.size} acknowledged identity deletes over ${rounds} kills; index after each kill: ${opens.join('; ') || 'in the database'}`);
  }, 300_000);
});
