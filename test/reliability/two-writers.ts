// Two writers on one database: `cosface serve` taking enrollments over HTTP while a `cosface
// enroll` process writes the same gallery of the same SQLite file. Both must finish (or one fail
// with the stable BUSY code), nothing acknowledged may be lost, the server must find what the CLI
// enrolled without a restart, and the index must agree with the database afterwards.
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { checkGallery, cli, http, readDb, repoRoot, sleep, startServer, vector, type Consistency } from './harness.js';

export interface TwoWritersReport {
  cli: { code: number; added: number | null; error: string | null };
  httpAcked: number;
  httpStatuses: Record<string, number>;
  lost: string[];
  /** CLI-enrolled faces the running server did not find by their own embedding. */
  serverMisses: string[];
  consistency: Consistency;
}

export async function runTwoWriters(o: { dir: string; clients?: number; log?: (l: string) => void }): Promise<TwoWritersReport> {
  const db = path.join(o.dir, 'two.db');
  const G = 'shared';
  const s = await startServer(db);
  const statuses: Record<string, number> = {};
  const acked = new Map<number, string>();
  let stop = false;
  try {
    const g = await http(s.url, 'POST', '/v1/galleries', { name: G });
    if (g.status !== 201) throw new Error(`create gallery: ${g.status}`);
    const client = async (c: number) => {
      for (let n = 0; !stop; n++) {
        const identity = `http-${c}-${n}`;
        const r = await http(s.url, 'POST', `/v1/galleries/${G}/enroll`, { faces: [{ identity, embedding: vector(c * 100_000 + n) }] });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status === 201) acked.set((r.body as { faces: { id: number }[] }).faces[0]!.id, identity);
        // Searches too, so the server holds the gallery's index (and vectors) in memory throughout.
        const q = await http(s.url, 'POST', `/v1/galleries/${G}/identify`, { embedding: vector(c * 100_000 + n), k: 1 });
        statuses[q.status] = (statuses[q.status] ?? 0) + 1;
      }
    };
    const clients = Array.from({ length: o.clients ?? 3 }, (_, c) => client(c));
    await sleep(300);
    const e = await cli(['enroll', path.join(repoRoot, 'examples/gallery'), '--gallery', G, '--db', db, '--backend', 'wasm', '--json']);
    await sleep(300);
    stop = true;
    await Promise.all(clients);
    const cliErr = /^error ([A-Z_]+): (.*)$/m.exec(e.stderr);
    const added = e.code === 0 ? (JSON.parse(e.stdout) as { added: number }).added : null;
    o.log?.(`cli enroll: exit ${e.code}${added !== null ? `, ${added} faces` : ''}${cliErr ? `, ${cliErr[1]}: ${cliErr[2]}` : ''}; http: ${JSON.stringify(statuses)}`);

    // The running server finds every face the CLI wrote, by its own embedding.
    const view = readDb(db);
    const gid = view.galleries.get(G)!;
    const serverMisses: string[] = [];
    const cliFaces = [...view.faces.values()].filter((f) => f.galleryId === gid && !view.identities.get(f.identityId)!.externalId.startsWith('http-'));
    for (const f of cliFaces) {
      const r = await http(s.url, 'POST', `/v1/galleries/${G}/identify`, { embedding: Array.from(f.embedding), k: 1 });
      const top = (r.body as { candidates?: { faceId: number; score: number }[] }).candidates?.[0];
      if (r.status !== 200 || top?.faceId !== f.id) serverMisses.push(`face ${f.id} (${view.identities.get(f.identityId)!.externalId}): ${r.status} top ${JSON.stringify(top)}`);
    }
    const lost = [...acked].filter(([id, who]) => view.faces.get(id)?.deleted !== false || view.identities.get(view.faces.get(id)!.identityId)?.externalId !== who).map(([id, who]) => `face ${id} of ${who}`);
    if (added !== null && cliFaces.length !== added) lost.push(`the CLI reported ${added} faces, the database has ${cliFaces.length}`);
    await s.kill('SIGTERM');
    const consistency = await checkGallery(db, G);
    return { cli: { code: e.code, added, error: cliErr ? `${cliErr[1]}: ${cliErr[2]}` : null }, httpAcked: acked.size, httpStatuses: statuses, lost, serverMisses, consistency };
  } finally {
    stop = true;
    await s.kill('SIGKILL');
  }
}

export interface BusyReport {
  http: { status: number; code: string | undefined };
  cli: { code: number; error: string | null };
  afterRelease: { http: number; cli: number };
  unchanged: boolean;
}

/**
 * When another process holds the write lock past the busy timeout (here a transaction held open on
 * purpose, with COSFACE_BUSY_TIMEOUT_MS=300), a write over HTTP answers 503 BUSY and the CLI exits
 * 2 with BUSY, writing nothing; once the lock is released both succeed.
 */
export async function runBusy(o: { dir: string; log?: (l: string) => void }): Promise<BusyReport> {
  const { default: Database } = await import('better-sqlite3');
  const { dbFingerprint } = await import('./harness.js');
  const db = path.join(o.dir, 'busy.db');
  const env = { COSFACE_BUSY_TIMEOUT_MS: '300' };
  const s = await startServer(db, { env });
  try {
    await http(s.url, 'POST', '/v1/galleries', { name: 'g' });
    const before = dbFingerprint(db);
    const holder = new Database(db);
    holder.pragma('busy_timeout = 5000');
    holder.exec('BEGIN IMMEDIATE');
    let r: Awaited<ReturnType<typeof http>>;
    let e: Awaited<ReturnType<typeof cli>>;
    try {
      r = await http(s.url, 'POST', '/v1/galleries/g/enroll', { faces: [{ identity: 'a', embedding: vector(1) }] });
      e = await cli(['enroll', path.join(repoRoot, 'examples/gallery'), '--gallery', 'g', '--db', db, '--backend', 'wasm'], { env });
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    const unchanged = dbFingerprint(db) === before;
    const code = (r.body as { error?: { code?: string } }).error?.code;
    const cliErr = /^error ([A-Z_]+): (.*)$/m.exec(e.stderr);
    o.log?.(`write lock held: HTTP ${r.status} ${code}; CLI exit ${e.code} ${cliErr?.[1]}: ${cliErr?.[2]}`);
    const r2 = await http(s.url, 'POST', '/v1/galleries/g/enroll', { faces: [{ identity: 'a', embedding: vector(1) }] });
    const people = path.join(o.dir, 'people');
    mkdirSync(path.join(people, 'obama'), { recursive: true });
    copyFileSync(path.join(repoRoot, 'examples/gallery/obama/obama.jpg'), path.join(people, 'obama', 'obama.jpg'));
    const e2 = await cli(['enroll', people, '--gallery', 'g', '--db', db, '--backend', 'wasm'], { env });
    return {
      http: { status: r.status, code },
      cli: { code: e.code, error: cliErr ? cliErr[1]! : null },
      afterRelease: { http: r2.status, cli: e2.code },
      unchanged,
    };
  } finally {
    await s.kill('SIGTERM');
  }
}
