// HNSW recall against exact search at N = 10k through the store's identify (default parameters),
// and a saved-and-reloaded index that answers exactly as before.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_HNSW, effectiveEf, openStore, type IndexEvent } from '../../src/store/index.js';
import { makeClusteredGallery, makeProbes } from '../../src/bench/search-bench.js';
import { tempDir } from './helpers.js';

const N = 10_000;
const PER = 2;
const PROBES = 300;

describe('HNSW recall', () => {
  const dir = tempDir('recall');
  const dbPath = join(dir, 'g.db');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`recall@1 >= 0.99 against exact search at N = ${N}, and the reloaded index answers the same`, async () => {
    const g = makeClusteredGallery(N, { facesPerIdentity: PER, seed: 77 });
    const { probes } = makeProbes(g, PROBES);
    const dim = g.dim;
    const store = await openStore(dbPath, { exactBelow: 0, synchronous: 'normal' });
    await store.createGallery('g', { modelId: 'synthetic', dimension: dim });
    for (let id = 0; id < g.identities; id++) await store.addIdentity('g', { externalId: `p${id}` });
    // Bulk enrollment: 1000 faces per transaction.
    for (let r0 = 0; r0 < N; r0 += 1000) {
      const batch = [];
      for (let r = r0; r < Math.min(N, r0 + 1000); r++) {
        batch.push({ identity: `p${g.identityOf[r]}`, face: { embedding: g.vectors.subarray(r * dim, (r + 1) * dim) } });
      }
      await store.addFaces('g', batch);
    }
    const probe = (i: number) => probes.subarray(i * dim, (i + 1) * dim);

    let agree = 0;
    const before: { faceId: number; score: number }[] = [];
    for (let i = 0; i < PROBES; i++) {
      const hnsw = await store.identify('g', probe(i), { k: 1 });
      const exact = await store.identify('g', probe(i), { k: 1, exact: true });
      expect(hnsw.method).toBe('hnsw');
      expect(exact.method).toBe('exact');
      if (hnsw.candidates[0]!.faceId === exact.candidates[0]!.faceId) agree++;
      before.push({ faceId: hnsw.candidates[0]!.faceId, score: hnsw.candidates[0]!.score });
    }
    const recall1 = agree / PROBES;
    console.log(`recall@1 at N=${N} (defaults ${JSON.stringify(DEFAULT_HNSW)}): ${recall1.toFixed(4)}`);
    expect(recall1).toBeGreaterThanOrEqual(0.99);
    await store.close();

    const events: IndexEvent[] = [];
    const reopened = await openStore(dbPath, { exactBelow: 0, onIndexEvent: (e) => events.push(e) });
    for (let i = 0; i < PROBES; i++) {
      const r = await reopened.identify('g', probe(i), { k: 1 });
      expect(r.candidates[0]).toMatchObject(before[i]!);
    }
    expect(events[0]).toMatchObject({ kind: 'opened', how: 'snapshot', replayed: 0 });
    await reopened.close();
  });
});

describe('search beam for large galleries', () => {
  it('keeps the gallery ef up to 100k faces and raises it with size beyond (512 at 1M, where ef 128 gave recall@1 0.87)', async () => {
    expect(effectiveEf(DEFAULT_HNSW.ef, 10_000)).toBe(128);
    expect(effectiveEf(DEFAULT_HNSW.ef, 100_000)).toBe(128);
    expect(effectiveEf(DEFAULT_HNSW.ef, 1_000_000)).toBe(512);
    expect(effectiveEf(DEFAULT_HNSW.ef, 100_000_000)).toBe(4096);
    expect(effectiveEf(800, 1_000_000)).toBe(800); // a larger gallery setting wins
  });
});
