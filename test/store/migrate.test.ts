// Migrating a gallery to another model (issue 16's acceptance: "A gallery migrated from one model
// to another answers identify throughout the migration (a test queries it continuously), and ends
// with every face re-embedded"). The committed photos (examples/gallery, test/fixtures/photos with
// the six-person t1.jpg) are enrolled with the vendored 128-d MobileFaceNet, then migrated to a
// small random InsightFace IResNet with a 512-d head (built here as ONNX) while another async loop
// identifies continuously: every answer before the switch is right on the old model, every answer
// after it is right on the new one (probes: each model's own embedding of the same photo), and at
// the end every live face holds the new model's embedding of its photo. A moved photo is found by
// its hash, a deleted one and a face enrolled without a photo are reported (and dropped, asked
// to), adding faces during the migration fails with MIGRATING. On SQLite and PGlite.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { decodeImage } from '../../src/pipeline/decode.js';
import { modelIdOf, openCliPipeline, CLI_MODEL_ID, type PipelineSession } from '../../src/commands/store-commands.js';
import { migrateGallery, type PhotoFace } from '../../src/migrate/migrate-gallery.js';
import type { Store } from '../../src/store/index.js';
import { BACKENDS, testDb, type TestDb } from '../helpers/backends.js';
import { repoRoot } from '../helpers/fixtures.js';
import { buildIResNet } from '../helpers/iresnet-onnx.js';
import { tempDir } from './helpers.js';

const G = 'staff';

interface Photo {
  identity: string;
  path: string;
  hash: string;
  old: PhotoFace[];
  neu: PhotoFace[];
}

/** Faces of a photo by each model, computed once per photo for the whole file. */
let photos: Photo[] = [];
let dir: string;
let modelPath: string;
let newModelId: string;
let oldSession: PipelineSession;
let newSession: PipelineSession;

async function facesOf(session: PipelineSession, bytes: Uint8Array): Promise<PhotoFace[]> {
  const img = await decodeImage(bytes);
  return (await session.pipeline.facesInImage(img)).map((f) => ({ box: f.box, embedding: Float32Array.from(f.embedding) }));
}

beforeAll(async () => {
  dir = tempDir('migrate');
  modelPath = join(dir, 'iresnet-512.onnx');
  writeFileSync(modelPath, buildIResNet({ layers: [1, 1, 1, 1], widths: [8, 8, 16, 16], features: 512, normalise: true, seed: 16 }).bytes);
  newModelId = await modelIdOf(modelPath);
  oldSession = await openCliPipeline({ backend: 'wasm', workers: 2, note: () => undefined });
  newSession = await openCliPipeline({ backend: 'wasm', workers: 2, note: () => undefined, model: { id: newModelId, dimension: 512, path: modelPath, metadata: {} } });
  const sources: { identity: string; file: string }[] = [];
  for (const who of readdirSync(join(repoRoot, 'examples/gallery')).sort()) {
    for (const f of readdirSync(join(repoRoot, 'examples/gallery', who)).sort()) sources.push({ identity: who, file: join(repoRoot, 'examples/gallery', who, f) });
  }
  sources.push({ identity: 'table', file: join(repoRoot, 'test/fixtures/photos/t1.jpg') });
  for (const s of sources) {
    const bytes = readFileSync(s.file);
    photos.push({ identity: s.identity, path: s.file, hash: createHash('sha256').update(bytes).digest('hex'), old: await facesOf(oldSession, bytes), neu: await facesOf(newSession, bytes) });
  }
}, 300_000);

afterAll(async () => {
  await oldSession?.close();
  await newSession?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};
const largest = (fs: PhotoFace[]) => fs.reduce((b, f) => (f.box[2] * f.box[3] > b.box[2] * b.box[3] ? f : b));

describe.each(BACKENDS)('gallery migration to a 512-d model (%s)', (backend) => {
  let db: TestDb & { fresh(): Promise<void> };
  let store: Store;
  beforeAll(async () => {
    db = await testDb(backend, 'migrate');
    store = await db.open();
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await db?.dispose();
  });

  it('answers identify throughout, switches atomically and ends with every face re-embedded', async () => {
    // Photos laid out as enroll reads them: one folder per identity.
    const people = join(dir, `people-${backend}`);
    const probes: { identity: string; faceId: number; old: Float32Array; neu: Float32Array }[] = [];
    await store.createGallery(G, { modelId: CLI_MODEL_ID, dimension: 128 });
    const layout: { identity: string; path: string; photo: Photo; face: PhotoFace; neu: PhotoFace }[] = [];
    for (const p of photos) {
      mkdirSync(join(people, p.identity), { recursive: true });
      const at = join(people, p.identity, p.path.split('/').pop()!);
      copyFileSync(p.path, at);
      if (p.identity === 'table') {
        // Six people in one photo: each face its own identity, told apart at migration by its box.
        expect(p.old.length).toBeGreaterThanOrEqual(4);
        p.old.forEach((f, i) => layout.push({ identity: `table-${i}`, path: at, photo: p, face: f, neu: p.neu[i]! }));
      } else layout.push({ identity: p.identity, path: at, photo: p, face: largest(p.old), neu: largest(p.neu) });
    }
    for (const l of layout) {
      if (!(await store.listIdentities(G)).some((i) => i.externalId === l.identity)) await store.addIdentity(G, { externalId: l.identity });
      const [x, y, width, height] = l.face.box;
      const [f] = await store.addFaces(G, [
        { identity: l.identity, face: { embedding: l.face.embedding, box: { x, y, width, height }, photoHash: l.photo.hash, photoPath: relative(process.cwd(), resolve(l.path)) } },
      ]);
      probes.push({ identity: l.identity, faceId: f!.id, old: Float32Array.from(l.face.embedding), neu: Float32Array.from(l.neu.embedding) });
    }
    // The same detector runs before either embedder: the boxes agree, so faces match by IoU.
    for (const p of photos) expect(p.neu.map((f) => f.box)).toEqual(p.old.map((f) => f.box));
    // A face enrolled as a bare embedding (no photo), one photo deleted, one renamed.
    await store.addIdentity(G, { externalId: 'api-only' });
    const [apiOnly] = await store.addFaces(G, [{ identity: 'api-only', face: { embedding: Array.from({ length: 128 }, (_, i) => Math.sin(i + 1)) } }]);
    const gone = layout.find((l) => l.identity === 'rose_leslie')!;
    rmSync(gone.path);
    const goneFace = probes.find((p) => p.identity === 'rose_leslie' && dot(p.old, gone.face.embedding) > 0.99999)!.faceId;
    const movedFrom = layout.find((l) => l.identity === 'biden')!.path;
    renameSync(movedFrom, join(people, 'renamed-biden.jpg'));
    const before = await store.getGallery(G);
    expect(before.faces).toBe(layout.length + 1);
    // A key scoped to the gallery (it keeps working: the gallery keeps its id and name).
    const keyHash = 'ab'.repeat(32);
    await store.meta.insertKey({ name: 'staff-key', keyHash, galleryId: before.id, createdAt: new Date() });

    // The continuous query loop: each answer checked against the model the gallery held when asked.
    const stats = { old: 0, neu: 0, duringMigration: 0, raced: 0, failures: [] as string[] };
    let migrating = false;
    let stop = false;
    const live = probes.filter((p) => p.faceId !== goneFace);
    const loop = (async () => {
      for (let i = 0; !stop; i++) {
        const p = live[i % live.length]!;
        const s = await store.gallerySettings(G);
        const isOld = s.modelId === CLI_MODEL_ID;
        try {
          const r = await store.identify(G, isOld ? p.old : p.neu, { k: 3, modelId: s.modelId });
          const top = r.candidates[0];
          if (!top || top.identity !== p.identity || top.score < 0.999) stats.failures.push(`${isOld ? 'old' : 'new'} ${p.identity}: ${JSON.stringify(r.candidates.slice(0, 2))}`);
          if (isOld) stats.old++;
          else stats.neu++;
          if (migrating && isOld) stats.duringMigration++;
        } catch (e) {
          // Only the query that read the old model just before the switch may meet the new one.
          if (isCosfaceError(e, 'MODEL_CHANGED') || isCosfaceError(e, 'MODEL_MISMATCH')) stats.raced++;
          else stats.failures.push(String(e));
        }
        await new Promise((r) => setImmediate(r));
      }
    })();

    let writeDuring: unknown = null;
    const report = await migrateGallery({
      store,
      gallery: G,
      model: { id: newModelId, dimension: 512 },
      photosDir: people,
      dropMissing: true,
      facesInPhoto: async (bytes) => {
        if (!migrating) {
          migrating = true;
          writeDuring = await store.addFaces(G, [{ identity: 'obama', face: { embedding: probes[0]!.old } }]).catch((e: unknown) => e);
        }
        // The new model's faces of this photo (run once per photo in beforeAll; the CLI test runs
        // the pipeline inside the migration), at about the pace of the pipeline on a fast machine.
        const hash = createHash('sha256').update(bytes).digest('hex');
        await new Promise((r) => setTimeout(r, 40));
        return photos.find((p) => p.hash === hash)!.neu;
      },
    }).finally(() => {
      if (!migrating) stop = true;
    });
    try {
      // Queries go on after the switch for a moment.
      const afterSwitch = stats.neu;
      const until = Date.now() + 20_000;
      while (stats.neu < afterSwitch + live.length && Date.now() < until && stats.failures.length === 0) await new Promise((r) => setTimeout(r, 5));
    } finally {
      stop = true;
      await loop;
    }

    expect(stats.failures).toEqual([]);
    expect(stats.duringMigration).toBeGreaterThanOrEqual(5);
    expect(stats.neu).toBeGreaterThanOrEqual(live.length);
    expect(stats.raced).toBeLessThanOrEqual(1);
    expect(isCosfaceError(writeDuring, 'MIGRATING')).toBe(true);

    expect(report.switched).toBe(true);
    expect(report.missing.map((m) => [m.faceId, m.reason]).sort()).toEqual(
      [
        [apiOnly!.id, 'no photo recorded'],
        [goneFace, 'photo not found'],
      ].sort(),
    );
    expect(report.dropped.sort()).toEqual([apiOnly!.id, goneFace].sort());
    expect(report.movedPhotos.map((m) => m.found)).toEqual([join(people, 'renamed-biden.jpg')]);
    expect(report.reembedded).toBe(layout.length - 1);
    expect(report.facesAfter).toBe(layout.length - 1);

    // The gallery kept its id and name, changed model and dimension, and every face holds the new
    // model's embedding of its own photo.
    const after = await store.getGallery(G);
    expect(after).toMatchObject({ id: before.id, name: G, modelId: newModelId, dimension: 512, faces: layout.length - 1 });
    expect((await store.migrationStatus(G)).claim).toBeNull();
    expect(await store.meta.keyByHash(keyHash)).toMatchObject({ galleryId: before.id, gallery: G, revokedAt: null });
    for (const p of live) {
      const stored = (await store.identityEmbeddings(G, p.identity)).find((f) => f.id === p.faceId);
      expect(stored, p.identity).toBeDefined();
      expect(stored!.embedding.length).toBe(512);
      expect(dot(stored!.embedding, p.neu)).toBeGreaterThan(0.99999);
    }
    const check = await store.checkConsistency(G);
    expect(check.missingFromIndex.length + check.extraInIndex.length + check.vectorMismatches.length).toBe(0);
    expect(check.dbLive).toBe(layout.length - 1);
    if (backend === 'pglite') {
      // The migrated gallery's HNSW search walks its new 512-d pgvector index.
      const { PgVectorIndex } = await import('../../src/store/pg/pgvector-index.js');
      const { rawRows, PgMeta } = await import('../../src/store/pg/pg-meta.js');
      const pg = (store.meta as InstanceType<typeof PgMeta>).db;
      const g = (await store.meta.galleryByName(G))!;
      const { sql } = await import('drizzle-orm');
      const [ix] = await rawRows<{ def: string }>(pg, sql.raw(`SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'faces_hnsw_g${g.id}'`));
      expect(ix!.def).toMatch(/vector\(512\).*vector_dims\(embedding\) = 512/);
      // (A table this small is scanned, not walked, unless told: the plan shows the index is usable.)
      await pg.execute(sql.raw('SET enable_seqscan = off'));
      try {
        expect(await (store.index as InstanceType<typeof PgVectorIndex>).explain(g, live[0]!.neu, 5, 64)).toContain(`faces_hnsw_g${g.id}`);
      } finally {
        await pg.execute(sql.raw('RESET enable_seqscan'));
      }
    }
    // Old probes are refused, and faces of the new model can be added again.
    await expect(store.identify(G, probes[0]!.old)).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
    await store.addFaces(G, [{ identity: 'obama', face: { embedding: live[0]!.neu } }]);
    // Thresholds: the random model has none stored, the gallery's pairs calibrate it where they can.
    expect(['recalibrated', 'uncalibrated']).toContain(report.calibration.status);
    expect((await store.thresholds(newModelId)).map((t) => t.far)).toEqual(report.calibration.fars.slice().sort((a, b) => b - a));
  }, 120_000);
});

// The command: bad input changes nothing; a SIGKILLed migration leaves the gallery answering on
// the old model, and a rerun takes over the dead run's claim and resumes; a missing photo stops
// the switch (MIGRATION_INCOMPLETE) until --drop-missing. On SQLite (a CLI child shares the file).
describe('cosface gallery migrate (CLI)', () => {
  it('refuses bad input unchanged, survives a SIGKILL on the old model, resumes, and switches', async () => {
    const { spawn } = await import('node:child_process');
    const Database = (await import('better-sqlite3')).default;
    const { openStore } = await import('../../src/store/index.js');
    const { storeCommands } = await import('../../src/commands/store-commands.js');
    const { sqliteFingerprint } = await import('../helpers/backends.js');
    const io = { stdout: '', stderr: '', errIsTTY: false, out: (s: string) => void (io.stdout += s), err: (s: string) => void (io.stderr += s) };
    // The file's two pipelines serve the commands (the vendored model, or --model's).
    const cmd = storeCommands({ io, openPipeline: async (o) => ({ ...(o.model?.path ? newSession : oldSession), close: async () => undefined }) });
    const run = async (args: string[]) => {
      io.stdout = '';
      io.stderr = '';
      await cmd.gallery(['migrate', ...args]);
    };
    const code = async (args: string[]) => run(args).then(() => 'ok', (e: unknown) => (isCosfaceError(e) ? e.code : String(e)));

    const people = join(dir, 'cli-people');
    const db = join(dir, 'cli.db');
    const chosen = photos.filter((p) => p.identity !== 'table').slice(0, 6);
    let store = await openStore(db);
    await store.createGallery(G, { modelId: CLI_MODEL_ID, dimension: 128 });
    for (const p of chosen) {
      mkdirSync(join(people, p.identity), { recursive: true });
      const at = join(people, p.identity, p.path.split('/').pop()!);
      copyFileSync(p.path, at);
      const f = largest(p.old);
      const [x, y, width, height] = f.box;
      await store.ensureIdentity(G, { externalId: p.identity });
      await store.addFace(G, p.identity, { embedding: f.embedding, box: { x, y, width, height }, photoHash: p.hash, photoPath: relative(process.cwd(), at) });
    }
    await store.close();
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'not a model at all');
    const untouched = sqliteFingerprint(db);
    expect(await code(['nope', '--model', modelPath, '--photos', people, '--db', db])).toBe('GALLERY_NOT_FOUND');
    expect(await code([G, '--model', junk, '--photos', people, '--db', db])).toBe('BAD_MODEL');
    expect(await code([G, '--model', modelPath, '--photos', junk, '--db', db])).toBe('BAD_INPUT');
    expect(await code([G, '--model', modelPath, '--db', db])).toBe('BAD_INPUT');
    expect(sqliteFingerprint(db)).toBe(untouched);

    // A real CLI child, killed once it has staged a face.
    const staged = () => {
      const c = new Database(db, { readonly: true });
      try {
        return (c.prepare('SELECT COUNT(*) AS n FROM staged_embeddings').get() as { n: number }).n;
      } finally {
        c.close();
      }
    };
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'gallery', 'migrate', G, '--model', modelPath, '--photos', people, '--db', db, '--backend', 'wasm', '--workers', '1', '--quiet'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let childErr = '';
    child.stderr.on('data', (d) => (childErr += String(d)));
    const exited = new Promise<string | null>((r) => child.on('exit', (_c, sig) => r(sig)));
    for (let i = 0; staged() === 0; i++) {
      if (child.exitCode !== null || i > 6000) throw new Error(`the child ended before staging anything: ${childErr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const stagedAtKill = staged();
    expect(stagedAtKill).toBeLessThan(chosen.length); // killed in the middle
    store = await openStore(db);
    try {
      const g = await store.getGallery(G);
      expect(g).toMatchObject({ modelId: CLI_MODEL_ID, dimension: 128, faces: chosen.length });
      for (const p of chosen) expect((await store.identify(G, largest(p.old).embedding, { k: 1 })).candidates[0]!.identity).toBe(p.identity);
      expect((await store.migrationStatus(G)).claim).not.toBeNull(); // the dead run's claim: a rerun takes it over
    } finally {
      await store.close();
    }
    io.stdout = '';
    await cmd.gallery(['stats', G, '--db', db, '--json']);
    expect(JSON.parse(io.stdout).migration).toMatchObject({ modelId: newModelId, dimension: 512, staged: stagedAtKill });

    // A photo goes missing: the rerun resumes, reports it, and switches nothing.
    const lost = chosen[chosen.length - 1]!;
    rmSync(join(people, lost.identity, lost.path.split('/').pop()!));
    expect(await code([G, '--model', modelPath, '--photos', people, '--db', db, '--json'])).toBe('MIGRATION_INCOMPLETE');
    const partial = JSON.parse(io.stdout) as { resumed: number; switched: boolean; missing: { identity: string; reason: string }[] };
    expect(partial.resumed).toBe(stagedAtKill);
    expect(partial.switched).toBe(false);
    expect(partial.missing).toEqual([expect.objectContaining({ identity: lost.identity, reason: 'photo not found' })]);
    store = await openStore(db);
    try {
      expect(await store.getGallery(G)).toMatchObject({ modelId: CLI_MODEL_ID, dimension: 128, faces: chosen.length });
      expect((await store.migrationStatus(G)).claim).toBeNull(); // writes are taken again
    } finally {
      await store.close();
    }

    // --drop-missing: switched, every other face holds the new model's embedding of its photo.
    await run([G, '--model', modelPath, '--photos', people, '--db', db, '--drop-missing', '--json']);
    const done = JSON.parse(io.stdout) as { switched: boolean; resumed: number; reembedded: number; dropped: number[]; facesAfter: number };
    expect(done).toMatchObject({ switched: true, resumed: chosen.length - 1, reembedded: 0, facesAfter: chosen.length - 1 });
    expect(done.dropped).toHaveLength(1);
    store = await openStore(db);
    try {
      expect(await store.getGallery(G)).toMatchObject({ modelId: newModelId, dimension: 512, faces: chosen.length - 1 });
      for (const p of chosen.slice(0, -1)) {
        const faces = await store.identityEmbeddings(G, p.identity);
        expect(faces.every((f) => f.embedding.length === 512)).toBe(true);
        expect(Math.max(...faces.map((f) => dot(f.embedding, largest(p.neu).embedding))), p.path).toBeGreaterThan(0.99999);
      }
    } finally {
      await store.close();
    }
  }, 120_000);
});

// The store primitives without photos, on the paths the photo test does not reach: HNSW search
// (exactBelow 0) in the migrating process and in a second one on the same SQLite file (a server
// beside the CLI: it learns of the switch from the commit and rebuilds its graph), and the edge
// store (synchronous drizzle SQLite + exact scan). Old model: 128-d vectors; new: 256-d.
describe('migration primitives: a second process, HNSW, the edge store', () => {
  const rnd = (seed: number, n: number) => {
    let s = seed >>> 0;
    return Float32Array.from({ length: n }, () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 2 ** 32 - 0.5;
    });
  };
  const N = 120;
  const oldV = (i: number) => rnd(1000 + i, 128);
  const newV = (i: number) => rnd(5000 + i, 256);

  async function fill(s: Store): Promise<number[]> {
    await s.createGallery('g', { modelId: 'old', dimension: 128 });
    for (let i = 0; i < N; i++) await s.addIdentity('g', { externalId: `p${i}` });
    return (await s.addFaces('g', Array.from({ length: N }, (_, i) => ({ identity: `p${i}`, face: { embedding: oldV(i) } })))).map((f) => f.id);
  }
  async function migrate(s: Store, ids: number[], owner: string): Promise<void> {
    await s.beginMigration('g', { modelId: 'new', dimension: 256 }, { owner });
    const todo = await s.facesToMigrate('g', 0, 1000);
    expect(todo.map((f) => f.id)).toEqual(ids);
    await s.stageMigratedFaces('g', owner, todo.map((f) => ({ faceId: f.id, embedding: newV(ids.indexOf(f.id)) })));
  }

  it('SQLite: the other process answers on the old graph until the switch and on a rebuilt one after', async () => {
    const { openStore } = await import('../../src/store/index.js');
    const path = join(dir, 'two.db');
    const a = await openStore(path, { exactBelow: 0 });
    const events: { kind: string; how?: string; reason?: string }[] = [];
    const b = await openStore(path, { exactBelow: 0, onIndexEvent: (e) => events.push(e) });
    try {
      const ids = await fill(a);
      for (const s of [a, b]) expect((await s.identify('g', oldV(7), { k: 1 })).candidates[0]).toMatchObject({ identity: 'p7', faceId: ids[7] });
      expect((await b.identify('g', oldV(7))).method).toBe('hnsw');
      await migrate(a, ids, 'a');
      // Staged, not switched: both still answer on the old vectors; b cannot claim or add.
      for (const s of [a, b]) expect((await s.identify('g', oldV(9), { k: 1 })).candidates[0]!.identity).toBe('p9');
      await expect(b.beginMigration('g', { modelId: 'new', dimension: 256 }, { owner: 'b' })).rejects.toMatchObject({ code: 'MIGRATING' });
      await expect(b.addFaces('g', [{ identity: 'p1', face: { embedding: oldV(1) } }])).rejects.toMatchObject({ code: 'MIGRATING' });
      events.length = 0;
      const sw = await a.switchMigration('g', 'a');
      expect(sw).toMatchObject({ faces: N, dropped: [], previous: { modelId: 'old', dimension: 128 }, gallery: { modelId: 'new', dimension: 256 } });
      for (const s of [a, b]) {
        const r = await s.identify('g', newV(11), { k: 1 });
        expect(r.method).toBe('hnsw');
        expect(r.candidates[0]).toMatchObject({ identity: 'p11', faceId: ids[11] });
        expect(r.candidates[0]!.score).toBeGreaterThan(0.9999);
        await expect(s.identify('g', oldV(11))).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
        const c = await s.checkConsistency('g');
        expect([c.dbLive, c.indexLive, c.missingFromIndex.length, c.vectorMismatches.length]).toEqual([N, N, 0, 0]);
      }
      // The other process loaded the graph the migration built and saved, instead of building one.
      expect(events.filter((e) => e.kind === 'opened')).toEqual([expect.objectContaining({ how: 'snapshot' })]);
      // Writes are taken again, in the new dimension.
      await b.addFaces('g', [{ identity: 'p1', face: { embedding: newV(1) } }]);
    } finally {
      await a.close();
      await b.close();
    }
    // A reopened store loads the new generation's snapshot (or rebuilds), never the old graph.
    const c = await openStore(path, { exactBelow: 0 });
    try {
      expect((await c.identify('g', newV(3), { k: 1 })).candidates[0]!.identity).toBe('p3');
    } finally {
      await c.close();
    }
  }, 60_000);

  it('edge store: the same claim, stage and switch; abort keeps or discards the staged vectors', async () => {
    const Database = (await import('better-sqlite3')).default;
    const { drizzle } = await import('drizzle-orm/better-sqlite3');
    const schema = await import('../../src/db/schema.js');
    const { loadWasmModule } = await import('../../src/backend/wasm/wasm-kernels.js');
    const { openEdgeStore } = await import('../../src/store/edge/open-edge-store.js');
    const path = join(dir, 'edge.db');
    const sqlite = new Database(path);
    const edge = openEdgeStore(drizzle(sqlite, { schema }) as never, { wasm: loadWasmModule('simd'), location: path, closeDb: () => sqlite.close() });
    try {
      const s = edge.store;
      const ids = await fill(s);
      expect((await s.identify('g', oldV(5), { k: 1 })).candidates[0]!.identity).toBe('p5');
      await migrate(s, ids, 'e');
      expect((await s.migrationStatus('g')).staged).toBe(N);
      // Abort keeps the staged vectors (a rerun resumes); a claim for another model drops them.
      expect(await s.abortMigration('g', 'e')).toBe(true);
      expect((await s.beginMigration('g', { modelId: 'new', dimension: 256 }, { owner: 'e2' })).staged).toBe(N);
      await s.abortMigration('g', null, { discard: true });
      expect((await s.beginMigration('g', { modelId: 'new', dimension: 256 }, { owner: 'e3' })).staged).toBe(0);
      await s.abortMigration('g', 'e3');
      await migrate(s, ids, 'e4');
      await expect(s.switchMigration('g', 'someone-else')).rejects.toMatchObject({ code: 'MIGRATING' });
      expect((await s.identify('g', oldV(5), { k: 1 })).candidates[0]!.identity).toBe('p5');
      await s.switchMigration('g', 'e4');
      expect((await s.identify('g', newV(5), { k: 1 })).candidates[0]).toMatchObject({ identity: 'p5', faceId: ids[5] });
      expect(await s.getGallery('g')).toMatchObject({ modelId: 'new', dimension: 256, faces: N });
    } finally {
      await edge.store.close();
    }
  }, 60_000);
});
