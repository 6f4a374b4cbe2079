// A large gallery's index as 2 HNSW shards built in parallel on real worker threads: the merged
// search agrees with an exact scan, every face is in exactly one shard, and the store builds,
// snapshots, reopens and rebuilds sharded indexes (threshold lowered from 200k to a few thousand).
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeClusteredGallery, makeProbes } from '../../src/bench/search-bench.js';
import { CosfaceError } from '../../src/errors.js';
import { buildShards, GalleryIndex, SHARDED_MIN_M, shardCount, SHARD_FROM, type SnapshotMeta } from '../../src/store/gallery-index.js';
import { openStore, type IndexEvent } from '../../src/store/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir('sharded');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Exact top-1 row of each probe (an independent loop over the vectors). */
function exactTop1(vectors: Float32Array, n: number, probes: Float32Array, dim: number): number[] {
  const out: number[] = [];
  for (let q = 0; q < probes.length / dim; q++) {
    let best = -Infinity;
    let arg = -1;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = 0; i < dim; i++) s += probes[q * dim + i]! * vectors[r * dim + i]!;
      if (s > best) {
        best = s;
        arg = r;
      }
    }
    out.push(arg);
  }
  return out;
}

describe('sharded HNSW index', () => {
  it('uses 2 shards from SHARD_FROM faces, by size only', () => {
    expect(shardCount(SHARD_FROM - 1)).toBe(1);
    expect(shardCount(SHARD_FROM)).toBe(2);
    expect(shardCount(5_000_000)).toBe(2);
    expect(shardCount(3000, 2000)).toBe(2);
  });

  it('builds 2 shards on worker threads; the merged search matches the exact top-1 and holds every face once', async () => {
    const n = 6000;
    const g = makeClusteredGallery(n, { seed: 5 });
    const { probes } = makeProbes(g, 200);
    const ids = new Float64Array(new SharedArrayBuffer(n * 8));
    for (let r = 0; r < n; r++) ids[r] = 1000 + r; // face ids need not start at 1
    const vectors = new Float32Array(new SharedArrayBuffer(n * g.dim * 4));
    vectors.set(g.vectors);
    const out = join(dir, 'shards');
    const params = { id: 7, dimension: g.dim, m: 32, efConstruction: 200, ef: 64 };
    const index = await buildShards(params, { ids, vectors }, { lastFaceId: 1000 + n - 1, deleteSeq: 0 }, 2, out).promise;
    expect(index.shardCount).toBe(2);
    expect(index.size).toBe(n);
    const entries = index.entries().map((e) => e.faceId);
    expect(new Set(entries).size).toBe(n);
    expect(Math.min(...entries)).toBe(1000);
    expect(Math.max(...entries)).toBe(1000 + n - 1);
    // The workers' files are the snapshot: two shard files, no temp files left.
    const parts = index.snapshot!.parts!;
    expect(parts.length).toBe(2);
    expect(readdirSync(out).sort()).toEqual(parts.map((p) => p.file).sort());
    expect(parts[0]!.count + parts[1]!.count).toBe(n);

    const truth = exactTop1(g.vectors, n, probes, g.dim);
    let agree = 0;
    for (let q = 0; q < 200; q++) {
      const probe = probes.subarray(q * g.dim, (q + 1) * g.dim);
      const r = index.search(probe, 10, 64);
      expect(r.faceIds.length).toBe(10);
      expect(new Set(r.faceIds).size).toBe(10); // merged without duplicates
      for (let i = 1; i < 10; i++) expect(r.scores[i]!).toBeLessThanOrEqual(r.scores[i - 1]!);
      const row = r.faceIds[0]! - 1000;
      let dot = 0;
      for (let i = 0; i < g.dim; i++) dot += probe[i]! * g.vectors[row * g.dim + i]!;
      expect(r.scores[0]).toBeCloseTo(dot, 5);
      if (row === truth[q]) agree++;
    }
    expect(agree / 200).toBeGreaterThanOrEqual(0.99);
  });

  it('each shard lives in a worker thread: adds go to both at once, deletes, vectors and a snapshot answer as one graph, and a closed index refuses calls', async () => {
    const n = 2000;
    const g = makeClusteredGallery(n + 200, { seed: 11 });
    const ids = new Float64Array(new SharedArrayBuffer(n * 8));
    for (let r = 0; r < n; r++) ids[r] = r + 1;
    const vectors = new Float32Array(new SharedArrayBuffer(n * g.dim * 4));
    vectors.set(g.vectors.subarray(0, n * g.dim));
    const params = { id: 8, dimension: g.dim, m: 16, efConstruction: 100, ef: 64 };
    const out = join(dir, 'workers');
    const index = await buildShards(params, { ids, vectors }, { lastFaceId: n, deleteSeq: 0 }, 2, out).promise;
    const row = (r: number) => g.vectors.subarray(r * g.dim, (r + 1) * g.dim);
    // 200 more faces in one batch, split over the two shards (past their initial capacity of 1024 each).
    index.addMany(Array.from({ length: 200 }, (_, i) => ({ id: n + 1 + i, v: row(n + i) })));
    expect(index.size).toBe(n + 200);
    expect(index.lastFaceId).toBe(n + 200);
    expect(index.capacity).toBeGreaterThanOrEqual(n + 200);
    for (const r of [n, n + 1, n + 199]) {
      expect(index.search(row(r), 1, 64).faceIds[0]).toBe(r + 1); // a face is its own nearest
      expect(Array.from(index.vector(r + 1)!)).toEqual(Array.from(row(r)));
    }
    expect(index.markDeleted(n + 1)).toBe(true);
    expect(index.markDeleted(n + 1)).toBe(false);
    expect(index.markDeleted(999_999)).toBe(false);
    expect(index.vector(n + 1)).toBeNull();
    expect(index.search(row(n), 5, 64).faceIds).not.toContain(n + 1);
    expect(index.liveCount).toBe(n + 199);
    // A snapshot written by both workers at once reloads (into two new workers) with the same answers.
    const meta = index.save(out, 8);
    expect(meta.parts!.map((p) => p.count)).toEqual([n / 2 + 100, n / 2 + 100]);
    const reloaded = await GalleryIndex.fromFile(params, out, meta);
    for (const r of [0, 7, n + 150]) expect(reloaded.search(row(r), 10, 64)).toEqual(index.search(row(r), 10, 64));
    expect(reloaded.liveCount).toBe(n + 199);
    reloaded.close();
    index.close();
    expect(() => index.search(row(0), 1, 64)).toThrow(CosfaceError);
  });

  it('the store shards a gallery that grows past the threshold, reopens it from its shard files, and rebuilds it in parallel', async () => {
    const n = 3000;
    const g = makeClusteredGallery(n, { seed: 9 });
    const { probes } = makeProbes(g, 150);
    const dbPath = join(dir, 'g.db');
    const indexDir = dbPath + '.index';
    const events: IndexEvent[] = [];
    const opts = { exactBelow: 0, shardFrom: 2000, synchronous: 'normal' as const, onIndexEvent: (e: IndexEvent) => events.push(e) };
    const store = await openStore(dbPath, opts);
    await store.createGallery('g', { modelId: 'synthetic', dimension: g.dim });
    for (let id = 0; id < g.identities; id++) await store.addIdentity('g', { externalId: `p${id}` });
    const batch = (r0: number) => {
      const b = [];
      for (let r = r0; r < r0 + 500; r++) b.push({ identity: `p${g.identityOf[r]}`, face: { embedding: g.vectors.subarray(r * g.dim, (r + 1) * g.dim) } });
      return b;
    };
    await store.addFaces('g', batch(0));
    await store.galleryStats('g'); // opens the index: from here on every add goes into the graph
    for (let r0 = 500; r0 < n; r0 += 500) await store.addFaces('g', batch(r0));
    await store.close(); // waits for the background rebuild that crossing 2000 faces started
    expect(events.some((e) => e.kind === 'rebuild-swapped')).toBe(true);
    const sidecar = () => JSON.parse(readFileSync(join(indexDir, 'g1.json'), 'utf8')) as SnapshotMeta;
    expect(sidecar().parts?.length).toBe(2);
    // The gallery's M is the default 32; its sharded graphs are built with at least SHARDED_MIN_M.
    expect(sidecar().m).toBe(SHARDED_MIN_M);

    const probe = (i: number) => probes.subarray(i * g.dim, (i + 1) * g.dim);
    const answers = async (s: Awaited<ReturnType<typeof openStore>>) => {
      let agree = 0;
      const top: number[] = [];
      for (let i = 0; i < 150; i++) {
        const h = await s.identify('g', probe(i), { k: 1 });
        const e = await s.identify('g', probe(i), { k: 1, exact: true });
        expect(h.method).toBe('hnsw');
        if (h.candidates[0]!.faceId === e.candidates[0]!.faceId) agree++;
        top.push(h.candidates[0]!.faceId);
      }
      return { recall1: agree / 150, top };
    };

    events.length = 0;
    const reopened = await openStore(dbPath, opts);
    const first = await answers(reopened);
    expect(events[0]).toMatchObject({ kind: 'opened', how: 'snapshot' });
    expect(first.recall1).toBeGreaterThanOrEqual(0.99);
    // A deleted face is never returned; the index agrees with the database.
    const gone = first.top[0]!;
    await reopened.deleteFace('g', gone);
    expect((await reopened.identify('g', probe(0), { k: 5 })).candidates.map((c) => c.faceId)).not.toContain(gone);
    const check = await reopened.checkConsistency('g');
    expect(check).toMatchObject({ dbLive: n - 1, indexLive: n - 1, missingFromIndex: [], extraInIndex: [], vectorMismatches: [] });
    await reopened.close();

    // Without its index files the gallery is rebuilt from the database as 2 shards in parallel.
    rmSync(indexDir, { recursive: true, force: true });
    events.length = 0;
    const rebuilt = await openStore(dbPath, opts);
    const again = await answers(rebuilt);
    expect(events[0]).toMatchObject({ kind: 'opened', how: 'rebuilt' });
    expect(sidecar().parts?.length).toBe(2);
    expect(sidecar().m).toBe(SHARDED_MIN_M);
    for (const p of sidecar().parts!) expect(existsSync(join(indexDir, p.file))).toBe(true);
    expect(again.top).not.toContain(gone);
    expect(again.recall1).toBeGreaterThanOrEqual(0.99);
    expect((await rebuilt.checkConsistency('g')).missingFromIndex).toEqual([]);
    await rebuilt.close();

    // Faces written while this index folder was not kept up to date: a second gallery gets 500 faces
    // and a snapshot, then 2500 more from a process whose indexes live in memory only; the next open
    // finds the snapshot far behind and builds 2 shards in parallel instead of replaying 2500 faces
    // one at a time.
    const bulk = await openStore(dbPath, opts);
    await bulk.createGallery('h', { modelId: 'synthetic', dimension: g.dim });
    for (let id = 0; id < g.identities; id++) await bulk.addIdentity('h', { externalId: `p${id}` });
    await bulk.addFaces('h', batch(0));
    await bulk.galleryStats('h');
    await bulk.close(); // snapshot of 500 faces
    const writer = await openStore(dbPath, { ...opts, indexDir: null });
    for (let r0 = 500; r0 < n; r0 += 500) await writer.addFaces('h', batch(r0));
    await writer.close();
    events.length = 0;
    const reader = await openStore(dbPath, opts);
    const r = await reader.identify('h', probe(0), { k: 1 });
    expect(r.method).toBe('hnsw');
    expect(events[0]).toMatchObject({ kind: 'opened', how: 'rebuilt', reason: expect.stringMatching(/far behind/) });
    expect((await reader.checkConsistency('h')).indexLive).toBe(n);
    const side = JSON.parse(readFileSync(join(indexDir, 'g2.json'), 'utf8')) as SnapshotMeta;
    expect(side.parts?.length).toBe(2);
    await reader.close();
  });
});
