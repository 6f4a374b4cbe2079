// Index snapshots: replay of faces newer than the snapshot, rebuild from the database when the
// index file is missing, truncated, corrupt or its sidecar is garbage, and automatic growth.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { openStore, type IndexEvent } from '../../src/store/index.js';
import { buildFromDatabase, catchUp, catchUpAddsYielding } from '../../src/store/gallery-index.js';
import { makeClusteredGallery } from '../../src/bench/search-bench.js';
import { tempDir } from './helpers.js';

const DIM = 64;
const data = makeClusteredGallery(1500, { facesPerIdentity: 1, seed: 4, model: { dim: DIM, qualityMean: 0.8, qualitySd: 0.05 } });
const face = (row: number) => data.vectors.subarray(row * DIM, (row + 1) * DIM);

describe('gallery index snapshots', () => {
  const dir = tempDir('index');
  const dbPath = join(dir, 'g.db');
  const indexDir = dbPath + '.index';
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const opts = { exactBelow: 0, synchronous: 'normal' as const };

  /** Opens the store, checks every enrolled face is found at rank 1 by HNSW, returns how the index opened. */
  async function reopenAndCheck(expectedFaces: number): Promise<IndexEvent> {
    const events: IndexEvent[] = [];
    const store = await openStore(dbPath, { ...opts, onIndexEvent: (e) => events.push(e) });
    const stats = await store.galleryStats('g');
    expect(stats.index.live).toBe(expectedFaces);
    expect(await store.checkConsistency('g')).toMatchObject({ missingFromIndex: [], extraInIndex: [], vectorMismatches: [] });
    for (let r = 0; r < expectedFaces; r += 97) {
      const res = await store.identify('g', face(r), { k: 1 });
      expect(res.candidates[0]!.identity).toBe(`id${r}`);
    }
    await store.close();
    return events.find((e) => e.kind === 'opened')!;
  }

  it('grows past its initial capacity and replays faces added after the last snapshot', async () => {
    const store = await openStore(dbPath, { ...opts, checkpointEvery: 600 });
    await store.createGallery('g', { modelId: 'm', dimension: DIM, m: 12, efConstruction: 100, ef: 48 });
    for (let r = 0; r < 1500; r++) {
      await store.addIdentity('g', { externalId: `id${r}` });
      await store.addFace('g', `id${r}`, { embedding: face(r) });
    }
    const stats = await store.galleryStats('g');
    expect(stats.index.capacity).toBeGreaterThanOrEqual(1500); // started at 1024, doubled
    expect(stats.index.snapshotLastFaceId).toBe(1200); // auto checkpoints at 600 and 1200 changes
    // Not closed: the 300 faces after the snapshot exist only in the database, as after a crash.
    const opened = await reopenAndCheck(1500);
    expect(opened).toMatchObject({ how: 'snapshot', replayed: 300 });
    await store.close();
  });

  const corruptions: [string, () => void, RegExp][] = [
    ['the index file is missing', () => rmSync(join(indexDir, sidecar().file)), /missing/],
    ['the index file is truncated', () => writeFileSync(join(indexDir, sidecar().file), readFileSync(join(indexDir, sidecar().file)).subarray(0, 1000)), /size/],
    [
      'a byte of the index file is flipped',
      () => {
        const p = join(indexDir, sidecar().file);
        const b = readFileSync(p);
        b[b.length >> 1] ^= 0xff;
        writeFileSync(p, b);
      },
      /checksum/,
    ],
    ['the sidecar is garbage', () => writeFileSync(join(indexDir, 'g1.json'), '{"format": 1, "gall'), /sidecar/],
    ['the sidecar is gone', () => rmSync(join(indexDir, 'g1.json')), /no index snapshot/],
  ];
  function sidecar(): { file: string } {
    return JSON.parse(readFileSync(join(indexDir, 'g1.json'), 'utf8')) as { file: string };
  }

  for (const [what, corrupt, reason] of corruptions) {
    it(`rebuilds from the database when ${what}`, async () => {
      corrupt();
      const opened = await reopenAndCheck(1500);
      expect(opened).toMatchObject({ how: 'rebuilt' });
      expect((opened as { reason: string }).reason).toMatch(reason);
      // The rebuild was saved: the next open uses it.
      expect(existsSync(join(indexDir, sidecar().file))).toBe(true);
      expect(await reopenAndCheck(1500)).toMatchObject({ how: 'snapshot', replayed: 0 });
    });
  }

  it('leaves no stray index files behind', async () => {
    expect(readdirSync(indexDir).sort()).toEqual(['g1.json', sidecar().file].sort());
  });
});

describe('catching up a rebuilt index', () => {
  it('replays the faces added meanwhile a batch at a time (yielding between batches), then the rest in one transaction', async () => {
    const dir = tempDir('catchup');
    const dbPath = join(dir, 'c.db');
    try {
      const store = await openStore(dbPath, { exactBelow: 0 });
      await store.createGallery('c', { modelId: 'm', dimension: DIM, m: 12, efConstruction: 60, ef: 48 });
      const enroll = async (from: number, to: number) => {
        for (let r = from; r < to; r++) {
          await store.addIdentity('c', { externalId: `id${r}` });
          await store.addFace('c', `id${r}`, { embedding: face(r % 1500) });
        }
      };
      await enroll(0, 300);
      const sqlite = new Database(dbPath, { readonly: true });
      const row = sqlite.prepare('SELECT id, dimension, hnsw_m AS m, hnsw_ef_construction AS efc, hnsw_ef AS ef, generation FROM galleries WHERE name = ?').get('c') as { id: number; dimension: number; m: number; efc: number; ef: number; generation: number };
      const g = { id: row.id, dimension: row.dimension, m: row.m, efConstruction: row.efc, ef: row.ef, generation: row.generation };
      const index = await buildFromDatabase(sqlite, g, dbPath, null);
      expect(index.liveCount).toBe(300);
      await enroll(300, 2800); // 2,500 faces land after the build, as during a background rebuild
      let turns = 0;
      const ticker = setInterval(() => turns++, 0);
      const yielded = await catchUpAddsYielding(sqlite, g, index);
      clearInterval(ticker);
      expect(yielded).toBe(2000); // two whole batches...
      expect(turns).toBeGreaterThan(0); // ...between which other work (this timer) ran
      expect(catchUp(sqlite, g, index).replayed).toBe(500);
      expect(index.liveCount).toBe(2800);
      expect(index.lastFaceId).toBe(2800);
      index.close();
      sqlite.close();
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
