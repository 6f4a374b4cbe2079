// Crash safety under real load: a real `cosface serve` on a SQLite file, several concurrent HTTP
// clients enrolling (by embedding, and one by photo), SIGKILL at a random moment, restart, check.
// After every kill: every acknowledged (2xx) write is in the database as acknowledged, no request
// that failed or got no answer is half there, and the HNSW index agrees with the database
// (`cosface gallery stats --check`). Plus kills while a snapshot is being written (SIGTERM makes
// the server save its indexes; SIGKILL follows at a random moment) and while a gallery is deleted.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { checkGallery, DIM, http, readDb, repoRoot, rng, sleep, startServer, unit, vector, type DbView, type HttpResult, type ServerProcess } from './harness.js';

export interface CrashOptions {
  dir: string;
  /** Kills under the mixed enroll load. */
  kills: number;
  /** Kills while the server writes index snapshots on SIGTERM. */
  snapshotKills: number;
  /** Kills while a gallery is being deleted. */
  deleteKills: number;
  /** Faces in the gallery whose snapshot is written when the server stops. */
  bigGalleryFaces: number;
  /** Faces in each gallery that is deleted under a kill. */
  doomedFaces: number;
  clients: number;
  seed: number;
  log?: (line: string) => void;
}

export interface CrashReport {
  kills: number;
  snapshotKills: number;
  snapshotKillsMidWrite: number;
  deleteKills: number;
  deleteKillsBeforeAnswer: number;
  ackedFaces: number;
  ackedDeletes: number;
  unackedRequests: number;
  lostFaces: string[];
  lostDeletes: string[];
  halfWritten: string[];
  disagreements: string[];
  searchMisses: string[];
  photoFaces: number;
  /** Answers by status ('none': cut off by the kill); any 5xx is a problem. */
  statuses: Record<string, number>;
  serverErrors: string[];
}

const GALLERY = 'crash';
const BIG = 'big';

interface EnrollReq {
  kind: 'enroll';
  items: { identity: string; seed: number }[];
  res?: HttpResult;
}
interface AckedFace {
  id: number;
  identity: string;
  seed: number | null; // null: from a photo
}

const photoBytes = ['obama-240p.jpg', 'obama_small.jpg', 't1.jpg'].map((f) => readFileSync(path.join(repoRoot, 'test/fixtures/photos', f)));

export async function runCrashSuite(o: CrashOptions): Promise<CrashReport> {
  const log = o.log ?? (() => undefined);
  const db = path.join(o.dir, 'crash.db');
  const rand = rng(o.seed);
  const report: CrashReport = {
    kills: 0,
    snapshotKills: 0,
    snapshotKillsMidWrite: 0,
    deleteKills: 0,
    deleteKillsBeforeAnswer: 0,
    ackedFaces: 0,
    ackedDeletes: 0,
    unackedRequests: 0,
    lostFaces: [],
    lostDeletes: [],
    halfWritten: [],
    disagreements: [],
    searchMisses: [],
    photoFaces: 0,
    statuses: {},
    serverErrors: [],
  };
  const count = (r: HttpResult, what: string): HttpResult => {
    const k = r.status === 0 ? 'none' : String(r.status);
    report.statuses[k] = (report.statuses[k] ?? 0) + 1;
    if (r.status >= 500) report.serverErrors.push(`${what}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    return r;
  };
  const acked = new Map<number, AckedFace>(); // face id -> what was acknowledged
  const ackedDeleted = new Set<string>(); // identities whose DELETE got a 2xx
  const deleteTried = new Set<string>(); // identities with any DELETE sent (acked or not)
  const liveIdentities: string[] = []; // acknowledged identities a client may add to or delete
  const unackedEnrolls: EnrollReq[] = [];
  let seq = 0;

  let server = await startServer(db);
  const must = async (r: Promise<HttpResult>, what: string) => {
    const x = await r;
    if (x.status < 200 || x.status >= 300) throw new Error(`${what}: ${x.status} ${JSON.stringify(x.body)}`);
    return x;
  };
  await must(http(server.url, 'POST', '/v1/galleries', { name: GALLERY }), 'create gallery');
  if (o.snapshotKills > 0) {
    await must(http(server.url, 'POST', '/v1/galleries', { name: BIG }), 'create big gallery');
    await bulkEnroll(server, BIG, 'b', o.bigGalleryFaces, 1_000_000);
  }

  // ---- kills under mixed load ----
  for (let round = 0; round < o.kills; round++) {
    if (round > 0) server = await startServer(db);
    let stop = false;
    const roundAcks: AckedFace[] = [];
    const client = async (c: number) => {
      const r = rng(o.seed * 1000 + round * 37 + c);
      let n = 0;
      while (!stop) {
        n++;
        const x = r();
        if (c === 0 && n % 3 === 1) {
          // By photo: a new identity, then its face from a photo (two acknowledged steps).
          const identity = `r${round}-c${c}-p${n}`;
          const ri = count(await http(server.url, 'POST', `/v1/galleries/${GALLERY}/identities`, { externalId: identity }), 'create identity');
          if (ri.status !== 201) continue;
          liveIdentities.push(identity);
          const form = new FormData();
          form.set('image', new Blob([photoBytes[n % photoBytes.length]!]), 'photo.jpg');
          const rf = count(await http(server.url, 'POST', `/v1/galleries/${GALLERY}/identities/${identity}/faces`, form), 'add photo');
          if (rf.status === 201) {
            const a = { id: (rf.body as { face: { id: number } }).face.id, identity, seed: null };
            acked.set(a.id, a);
            roundAcks.push(a);
            report.photoFaces++;
          } else if (rf.status === 0) report.unackedRequests++;
        } else if (x < 0.55 || liveIdentities.length < 4) {
          // Bulk enroll: 1-3 new identities with 1-2 faces each, all or nothing.
          const items: EnrollReq['items'] = [];
          const people = 1 + Math.floor(r() * 3);
          for (let p = 0; p < people; p++) {
            const identity = `r${round}-c${c}-${n}-${p}`;
            const faces = 1 + Math.floor(r() * 2);
            for (let f = 0; f < faces; f++) items.push({ identity, seed: ++seq + o.seed * 10_000_000 });
          }
          const req: EnrollReq = { kind: 'enroll', items };
          req.res = count(await http(server.url, 'POST', `/v1/galleries/${GALLERY}/enroll`, { faces: items.map((it) => ({ identity: it.identity, embedding: vector(it.seed) })) }), 'enroll');
          if (req.res.status === 201) {
            const ids = (req.res.body as { faces: { id: number; identity: string }[] }).faces;
            ids.forEach((f, i) => {
              const a = { id: f.id, identity: items[i]!.identity, seed: items[i]!.seed };
              acked.set(a.id, a);
              roundAcks.push(a);
            });
            for (const p of new Set(items.map((i) => i.identity))) liveIdentities.push(p);
          } else {
            unackedEnrolls.push(req);
            report.unackedRequests++;
          }
        } else if (x < 0.85) {
          // One more face for an acknowledged identity.
          const identity = liveIdentities[Math.floor(r() * liveIdentities.length)]!;
          const s = ++seq + o.seed * 10_000_000;
          const res = count(await http(server.url, 'POST', `/v1/galleries/${GALLERY}/identities/${encodeURIComponent(identity)}/faces`, { embedding: vector(s) }), 'add face');
          if (res.status === 201) {
            const a = { id: (res.body as { face: { id: number } }).face.id, identity, seed: s };
            acked.set(a.id, a);
            roundAcks.push(a);
          } else if (res.status === 0) report.unackedRequests++;
        } else {
          // Delete an acknowledged identity with its faces.
          const i = Math.floor(r() * liveIdentities.length);
          const identity = liveIdentities[i]!;
          liveIdentities.splice(i, 1);
          deleteTried.add(identity);
          const res = count(await http(server.url, 'DELETE', `/v1/galleries/${GALLERY}/identities/${encodeURIComponent(identity)}`), 'delete identity');
          if (res.status === 200) {
            ackedDeleted.add(identity);
            report.ackedDeletes++;
          } else if (res.status === 0) report.unackedRequests++;
        }
      }
    };
    const clients = Array.from({ length: o.clients }, (_, c) => client(c));
    // Most kills come within 1.6 s; every fifth round runs 5-8 s, long enough for enrollments by
    // photo (the face pipeline on the CPU) to be acknowledged before the kill.
    await sleep(round % 5 === 4 ? 5000 + Math.floor(rand() * 3000) : 150 + Math.floor(rand() * 1500));
    stop = true; // no new requests; those in flight are cut by the kill
    await server.kill('SIGKILL');
    await Promise.all(clients);
    report.kills++;

    // Identities whose faces were added by a request that got no answer may be gone or not; an
    // identity may have a DELETE that was cut off: both are "maybe", never "half".
    const view = readDb(db);
    verify(view, round);
    const c = await checkGallery(db, GALLERY);
    if (!c.ok) report.disagreements.push(`round ${round}: ${GALLERY}: database ${c.dbLive} live, index ${c.indexLive}; missing ${c.missing}, extra ${c.extra}, mismatched ${c.mismatched}`);
    log(`kill ${round + 1}/${o.kills}: ${acked.size} acknowledged faces so far (${roundAcks.length} this round), ${report.unackedRequests} unanswered/failed requests; index ${c.ok ? 'agrees' : 'DISAGREES'} (${c.dbLive} live)`);

    // The restarted server finds this round's acknowledged faces by search (a sample).
    if (roundAcks.length > 0 && (round % 5 === 4 || round === o.kills - 1)) {
      const s = await startServer(db);
      try {
        for (const a of roundAcks.filter((x) => x.seed !== null && !deleteTried.has(x.identity)).slice(0, 10)) {
          const res = await http(s.url, 'POST', `/v1/galleries/${GALLERY}/identify`, { embedding: vector(a.seed!), k: 1 });
          const top = (res.body as { candidates?: { identity: string; faceId: number; score: number }[] }).candidates?.[0];
          if (res.status !== 200 || !top || top.faceId !== a.id || top.score < 0.9999) report.searchMisses.push(`round ${round}: face ${a.id} of ${a.identity}: ${res.status} ${JSON.stringify(top ?? res.body)}`);
        }
      } finally {
        await s.kill('SIGTERM');
      }
    }
  }

  function verify(view: DbView, round: number): void {
    const gid = view.galleries.get(GALLERY)!;
    const byName = new Map<string, { id: number; deleted: boolean }[]>();
    for (const i of view.identities.values()) if (i.galleryId === gid) byName.set(i.externalId, [...(byName.get(i.externalId) ?? []), i]);
    for (const a of acked.values()) {
      const f = view.faces.get(a.id);
      const ident = f ? view.identities.get(f.identityId) : undefined;
      if (!f || !ident || ident.externalId !== a.identity) {
        report.lostFaces.push(`round ${round}: face ${a.id} of ${a.identity} ${f ? 'belongs to another identity' : 'is missing'}`);
        continue;
      }
      if (f.deleted && !deleteTried.has(a.identity)) report.lostFaces.push(`round ${round}: face ${a.id} of ${a.identity} deleted without a delete`);
      if (a.seed !== null) {
        const want = unit(vector(a.seed));
        let diff = 0;
        for (let k = 0; k < DIM; k++) diff = Math.max(diff, Math.abs(want[k]! - f.embedding[k]!));
        if (f.embedding.length !== DIM || diff > 1e-6) report.lostFaces.push(`round ${round}: face ${a.id} of ${a.identity}: stored embedding differs (${diff})`);
      }
    }
    for (const name of ackedDeleted) {
      const rows = byName.get(name) ?? [];
      if (rows.some((r) => !r.deleted)) report.lostDeletes.push(`round ${round}: ${name} deleted (acknowledged) but live again`);
      for (const f of view.faces.values()) if (rows.some((r) => r.id === f.identityId) && !f.deleted) report.lostDeletes.push(`round ${round}: face ${f.id} of deleted ${name} is live`);
    }
    for (const req of unackedEnrolls) {
      const names = [...new Set(req.items.map((i) => i.identity))];
      const present = names.filter((n) => byName.has(n));
      const faces = [...view.faces.values()].filter((f) => present.some((n) => byName.get(n)!.some((r) => r.id === f.identityId)));
      const complete = present.length === names.length && faces.length === req.items.length;
      if (present.length > 0 && !complete) {
        report.halfWritten.push(`round ${round}: enroll of ${names.join(',')} (answer ${req.res?.status}): ${present.length}/${names.length} identities, ${faces.length}/${req.items.length} faces`);
      }
    }
    // Only requests of this round can be in doubt; keep the list short.
    unackedEnrolls.length = 0;
  }

  // ---- kills while the index snapshot is written ----
  for (let k = 0; k < o.snapshotKills; k++) {
    const s = await startServer(db);
    // Touch the big gallery so it is loaded and dirty: its snapshot is written on shutdown.
    const extra = 20;
    const ackedBig = await bulkEnroll(s, BIG, `s${k}-`, extra, 2_000_000 + k * 1000);
    const t0 = performance.now();
    await s.kill('SIGTERM').then(() => undefined);
    const shutdownMs = performance.now() - t0;
    // Again, now killed at a random moment inside that shutdown.
    const s2 = await startServer(db);
    await bulkEnroll(s2, BIG, `s${k}b-`, extra, 3_000_000 + k * 1000);
    const indexDir = `${db}.index`;
    const tmpFiles = () => (existsSync(indexDir) ? readdirSync(indexDir).filter((f) => f.endsWith('.tmp')) : []);
    s2.proc.kill('SIGTERM');
    if (k % 2 === 0) {
      // Aimed: kill as soon as a snapshot's temporary file appears.
      const until = performance.now() + Math.max(200, shutdownMs * 3);
      while (tmpFiles().length === 0 && performance.now() < until && s2.proc.exitCode === null) await sleep(0);
    } else {
      await sleep(Math.floor(rand() * Math.max(5, shutdownMs * 1.2)));
    }
    await s2.kill('SIGKILL');
    // A temporary file left behind proves the kill interrupted a snapshot write.
    const midWrite = tmpFiles().length > 0;
    report.snapshotKills++;
    if (midWrite) report.snapshotKillsMidWrite++;
    const view = readDb(db);
    for (const a of ackedBig) if (!view.faces.get(a) || view.faces.get(a)!.deleted) report.lostFaces.push(`snapshot kill ${k}: face ${a} of ${BIG} missing`);
    const c = await checkGallery(db, BIG);
    if (!c.ok) report.disagreements.push(`snapshot kill ${k}: ${BIG}: database ${c.dbLive} live, index ${c.indexLive}; missing ${c.missing}, extra ${c.extra}, mismatched ${c.mismatched}`);
    log(`snapshot kill ${k + 1}/${o.snapshotKills}: shutdown takes ${shutdownMs.toFixed(0)} ms; killed ${midWrite ? 'with a snapshot half written' : 'before or after the write'}; index ${c.ok ? 'agrees' : 'DISAGREES'} (${c.dbLive} live)`);
  }

  // ---- kills while a gallery is deleted ----
  // How long a delete of such a gallery takes unhurried, so the kills spread over that window.
  let deleteMs = 50;
  if (o.deleteKills > 0) {
    const s = await startServer(db);
    await must(http(s.url, 'POST', '/v1/galleries', { name: 'doomed-timing' }), 'create timing gallery');
    await bulkEnroll(s, 'doomed-timing', 't', o.doomedFaces, 5_000_000);
    await http(s.url, 'POST', '/v1/galleries/doomed-timing/identify', { embedding: vector(1), k: 1 });
    const t = performance.now();
    await must(http(s.url, 'DELETE', '/v1/galleries/doomed-timing'), 'timing delete');
    deleteMs = Math.max(5, performance.now() - t);
    await s.kill('SIGTERM');
    log(`a delete of a ${o.doomedFaces}-face gallery takes ${deleteMs.toFixed(0)} ms; kills fall in [0, ${(deleteMs * 1.5).toFixed(0)}] ms after it is sent`);
  }
  for (let k = 0; k < o.deleteKills; k++) {
    const name = `doomed-${k}`;
    const s = await startServer(db);
    await must(http(s.url, 'POST', '/v1/galleries', { name }), 'create doomed gallery');
    await bulkEnroll(s, name, 'd', o.doomedFaces, 4_000_000 + k * 100_000);
    await http(s.url, 'POST', `/v1/galleries/${name}/identify`, { embedding: vector(1), k: 1 }); // loads its index
    const t0 = performance.now();
    const pending = http(s.url, 'DELETE', `/v1/galleries/${name}`);
    const delay = Math.floor(rand() * deleteMs * 1.5);
    await sleep(delay);
    const answeredBefore = await Promise.race([pending.then((r) => r.status), sleep(0).then(() => -1)]);
    await s.kill('SIGKILL');
    const res = await pending;
    report.deleteKills++;
    if (res.status !== 200) report.deleteKillsBeforeAnswer++;
    const view = readDb(db);
    const gid = view.galleries.get(name);
    const identities = [...view.identities.values()].filter((i) => i.galleryId === gid);
    const faces = [...view.faces.values()].filter((f) => f.galleryId === gid);
    let state: string;
    if (gid === undefined) {
      state = 'gone';
      const known = new Set(view.galleries.values());
      const orphans = [...view.identities.values()].filter((i) => !known.has(i.galleryId)).length + [...view.faces.values()].filter((f) => !known.has(f.galleryId)).length;
      if (orphans > 0) report.halfWritten.push(`delete kill ${k}: ${orphans} identity/face rows of a deleted gallery remain`);
    } else {
      state = `still there (${identities.length} identities, ${faces.length} faces)`;
      if (res.status === 200) report.lostDeletes.push(`delete kill ${k}: ${name} deleted (acknowledged) but still there`);
      if (faces.length !== o.doomedFaces) report.halfWritten.push(`delete kill ${k}: ${name} has ${faces.length}/${o.doomedFaces} faces`);
      const c = await checkGallery(db, name);
      if (!c.ok) report.disagreements.push(`delete kill ${k}: ${name}: database ${c.dbLive} live, index ${c.indexLive}`);
    }
    log(`delete kill ${k + 1}/${o.deleteKills}: killed ${delay} ms after DELETE (${(performance.now() - t0).toFixed(0)} ms), answer ${res.status || 'none'}${answeredBefore > 0 ? ' before the kill' : ''}; gallery ${state}`);
  }

  report.ackedFaces = acked.size;
  return report;
}

/** Enrolls n faces by embedding in batches of 500 (identities `${prefix}${i}`); returns the face ids. */
async function bulkEnroll(s: ServerProcess, gallery: string, prefix: string, n: number, seedBase: number): Promise<number[]> {
  const ids: number[] = [];
  for (let start = 0; start < n; start += 500) {
    const faces = Array.from({ length: Math.min(500, n - start) }, (_, i) => ({ identity: `${prefix}${start + i}`, embedding: vector(seedBase + start + i) }));
    const r = await http(s.url, 'POST', `/v1/galleries/${gallery}/enroll`, { faces });
    if (r.status !== 201) throw new Error(`bulk enroll into ${gallery}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    ids.push(...(r.body as { faces: { id: number }[] }).faces.map((f) => f.id));
  }
  return ids;
}

export function crashProblems(r: CrashReport): number {
  return r.lostFaces.length + r.lostDeletes.length + r.halfWritten.length + r.disagreements.length + r.searchMisses.length + r.serverErrors.length;
}
