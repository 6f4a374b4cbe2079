// Deleting an identity: it is never returned again, by HNSW or exact search, after a restart,
// after a rebuild, and (SQLite) when the delete happened after the last index snapshot. On both
// backends; the automatic background rebuild is hnswlib's own.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type IndexEvent, type Store } from '../../src/store/index.js';
import { makeClusteredGallery } from '../../src/bench/search-bench.js';
import { tempDir } from './helpers.js';
import { BACKENDS, testDb, type TestDb } from '../helpers/backends.js';

const DIM = 128;
const PEOPLE = 400;
const data = makeClusteredGallery((PEOPLE + 10) * 3, { facesPerIdentity: 3, seed: 21 });
const face = (row: number) => data.vectors.subarray(row * DIM, (row + 1) * DIM);
const person = (i: number) => `p${i}`;

/** Asserts no deleted identity shows up among the top 10 for probes of those very people. */
async function expectNeverReturned(store: Store, deleted: number[], how: string[] = ['hnsw', 'exact']): Promise<void> {
  const names = new Set(deleted.map(person));
  for (const i of deleted) {
    for (const exact of how.map((h) => h === 'exact')) {
      const r = await store.identify('g', face(i * 3 + 2), { k: 10, exact });
      expect(r.method).toBe(exact ? 'exact' : 'hnsw');
      for (const c of r.candidates) expect(names.has(c.identity), `${c.identity} returned (${exact ? 'exact' : 'hnsw'})`).toBe(false);
    }
  }
}

async function enroll(store: Store, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    await store.addIdentity('g', { externalId: person(i) });
    await store.addFaces('g', [0, 1].map((j) => ({ identity: person(i), face: { embedding: face(i * 3 + j) } })));
  }
}

describe.each(BACKENDS)('deleting identities on %s', (backend) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await testDb(backend, 'delete');
  });
  afterAll(() => db.dispose());
  const opts = { exactBelow: 0, synchronous: 'normal' as const, rebuildMinDeleted: 1_000_000 };
  const sqlite = backend === 'sqlite';
  // Fewer people on PGlite (single-threaded WASM inserts into the graph); the victims are among them.
  const people = sqlite ? PEOPLE : 120;

  it('is never returned again: at once, after restart, after a delete newer than the snapshot, after a rebuild', async () => {
    const store = await db.open(opts);
    await store.createGallery('g', { modelId: 'synthetic', dimension: DIM });
    await enroll(store, 0, people);
    // Before deleting: each of these people is found at rank 1.
    const victims = sqlite ? [3, 50, 51, 199, 398] : [3, 50, 51, 99, people - 2];
    for (const i of victims) expect((await store.identify('g', face(i * 3 + 2), { k: 1 })).candidates[0]!.identity).toBe(person(i));
    for (const i of victims.slice(0, 3)) expect(await store.deleteIdentity('g', person(i))).toEqual({ faces: 2 });
    await expectNeverReturned(store, victims.slice(0, 3));
    await store.close();

    // Restart: loaded from the snapshot written at close.
    const events: IndexEvent[] = [];
    const s2 = await db.open({ ...opts, onIndexEvent: (e) => events.push(e) });
    await expectNeverReturned(s2, victims.slice(0, 3));
    if (sqlite) expect(events[0]).toMatchObject({ kind: 'opened', how: 'snapshot' });
    // A delete after the snapshot, then a second process-like opener that never saw it in memory.
    await s2.deleteIdentity('g', person(victims[3]!));
    const events3: IndexEvent[] = [];
    const s3 = await db.open({ ...opts, onIndexEvent: (e) => events3.push(e) });
    await expectNeverReturned(s3, victims.slice(0, 4));
    if (sqlite) expect(events3[0]).toMatchObject({ kind: 'opened', how: 'snapshot', deletesApplied: 2 });
    await s3.close();

    // Rebuild (SQLite: in a worker thread; Postgres: REINDEX), with a delete and new faces landing meanwhile.
    const rebuilt = s2.rebuildIndex('g');
    await s2.deleteIdentity('g', person(victims[4]!));
    await enroll(s2, people, people + 5);
    await rebuilt;
    const stats = await s2.galleryStats('g');
    expect(stats.index.deleted).toBe(0); // the rebuilt graph holds live faces only...
    expect(stats.index.live).toBe(stats.faces); // ...all of them, the ones added during the rebuild too
    expect(stats.faces).toBe((people + 5 - victims.length) * 2);
    expect(await s2.checkConsistency('g')).toMatchObject({ missingFromIndex: [], extraInIndex: [], vectorMismatches: [] });
    await expectNeverReturned(s2, victims);
    expect((await s2.identify('g', face((people + 2) * 3 + 2), { k: 1 })).candidates[0]!.identity).toBe(person(people + 2));
    await s2.close();

    // And after restarting on the rebuilt snapshot.
    const s4 = await db.open(opts);
    await expectNeverReturned(s4, victims);
    // The external id is free again: re-enrolled, only the new faces answer to it.
    await s4.addIdentity('g', { externalId: person(3) });
    await s4.addFace('g', person(3), { embedding: face(7 * 3) });
    const r = await s4.identify('g', face(3 * 3 + 2), { k: 10 });
    for (const c of r.candidates) if (c.identity === person(3)) expect(c.faceId).toBeGreaterThan(people * 2);
    await s4.close();
  });
});

describe('hnswlib index upkeep', () => {
  const dir = tempDir('delete');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('rebuilds by itself once the deleted fraction passes the limit, and swaps the new index in', async () => {
    const events: IndexEvent[] = [];
    const store = await openStore(join(dir, 'auto.db'), {
      exactBelow: 0,
      synchronous: 'normal',
      rebuildDeletedFraction: 0.2,
      rebuildMinDeleted: 10,
      onIndexEvent: (e) => events.push(e),
    });
    await store.createGallery('g', { modelId: 'synthetic', dimension: DIM });
    await enroll(store, 0, 100);
    const deleted: number[] = [];
    for (let i = 0; i < 100 && !events.some((e) => e.kind === 'rebuild-started'); i += 4) {
      await store.deleteIdentity('g', person(i));
      deleted.push(i);
    }
    // 200 faces: the rebuild starts once more than 40 are deleted (21 identities).
    expect(deleted.length).toBe(21);
    await store.rebuildIndex('g'); // joins the running rebuild
    expect(events.map((e) => e.kind)).toContain('rebuild-swapped');
    expect((await store.galleryStats('g')).index).toMatchObject({ deleted: 0, live: 200 - 42, rebuilding: false });
    await expectNeverReturned(store, deleted, ['hnsw']);
    await store.close();
  });
});
