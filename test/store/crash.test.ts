// Crash test: a child process enrolls continuously and is killed with SIGKILL at random points;
// after each kill every acknowledged face is found by search, the index agrees with the database,
// and no half-written face exists.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { seededRandom } from '../../src/bench/search-bench.js';
import { crashTestVector, CRASH_DIM, CRASH_GALLERY } from './crash-vectors.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const ROUNDS = 6;

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

describe('crash safety', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cosface-crash-'));
  const dbPath = join(dir, 'crash.db');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`loses no acknowledged enrollment across ${ROUNDS} SIGKILLs at random points`, async () => {
    const rand = seededRandom(42);
    const acked: Acked[] = [];
    const ackedDeletes = new Set<string>();
    const opens: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const { acks, dels } = await runAndKill(dbPath, round, 50 + Math.floor(rand() * 900));
      acked.push(...acks);
      dels.forEach((d) => ackedDeletes.add(d));
      expect(acks.length).toBeGreaterThan(0);

      // No half-written face: every row has a full unit-length embedding and a live or deleted identity.
      const raw = new Database(dbPath, { readonly: true });
      const rows = raw
        .prepare('SELECT f.id, f.embedding, f.deleted, i.deleted_at AS identityDeleted FROM faces f LEFT JOIN identities i ON i.id = f.identity_id')
        .all() as { id: number; embedding: Buffer; deleted: number; identityDeleted: number | null }[];
      const deletedIdentities = new Set(
        (raw.prepare('SELECT external_id AS e FROM identities WHERE deleted_at IS NOT NULL').all() as { e: string }[]).map((r) => r.e),
      );
      raw.close();
      for (const r of rows) {
        expect(r.embedding.byteLength).toBe(CRASH_DIM * 4);
        const v = new Float32Array(r.embedding.buffer.slice(r.embedding.byteOffset, r.embedding.byteOffset + r.embedding.byteLength));
        expect(Math.abs(Math.hypot(...v) - 1)).toBeLessThan(1e-5);
        // A deleted identity never keeps live faces (identity and faces are deleted in one transaction).
        if (r.identityDeleted !== null) expect(r.deleted).toBe(1);
      }
      for (const d of ackedDeletes) expect(deletedIdentities.has(d)).toBe(true);

      const store = await openStore(dbPath, {
        exactBelow: 0,
        onIndexEvent: (e) => {
          if (e.kind === 'opened') opens.push(e.how === 'snapshot' ? `snapshot+${e.replayed} replayed+${e.deletesApplied} deletes` : `rebuilt (${e.reason})`);
        },
      });
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
    expect(acked.length).toBeGreaterThan(ROUNDS * 5);
    console.log(`crash test: ${acked.length} acknowledged faces, ${ackedDeletes.size} acknowledged identity deletes over ${ROUNDS} kills; index after each kill: ${opens.join('; ')}`);
  });
});
