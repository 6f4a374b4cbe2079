// Exact scans of a SQLite store over the gallery's vectors kept resident in a shared WASM memory
// that the backend's workers scan in place (VectorMatrix over WasmPoolGallery): `identify --exact`
// gives the answer of an independent float64 loop over the live faces, after adds, deletes and a
// reopen; the TypeScript scorer's plain-array rows give the same; changes wait for scans in flight.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, scoreExactTs, wasmExactRows, type Store } from '../../src/store/index.js';
import { ReadWriteLock } from '../../src/store/vector-matrix.js';
import { randomTensor } from '../helpers/fixtures.js';
import { tempDir } from './helpers.js';

// Small enough to enroll quickly; the store's rows split every scan over the workers (splitFrom 1)
// as a large gallery's would be (the default splits from 4M multiply-adds, 31,250 faces at 128-d).
const DIM = 256;
const N = 2500;

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = 1 / Math.sqrt(s);
  return v.map((x) => x * inv);
}

/** The k best live faces for a probe: float64 dot products, ties to the lower face id. */
function reference(live: Map<string, Float32Array>, probe: Float32Array, k: number): { identity: string; score: number }[] {
  const all = [...live].map(([identity, v]) => {
    let s = 0;
    for (let d = 0; d < DIM; d++) s += probe[d]! * v[d]!;
    return { identity, score: s };
  });
  all.sort((a, b) => b.score - a.score);
  return all.slice(0, k);
}

describe('exact scans over resident vectors (SQLite store, WASM worker pool)', () => {
  const dir = tempDir('exact-resident');
  const path = `${dir}/db.sqlite`;
  let store: Store;
  // One face per identity, so identify's candidates are the best faces themselves.
  const live = new Map<string, Float32Array>();
  let next = 0;

  async function enroll(count: number, seed: number): Promise<void> {
    const vs = randomTensor(count * DIM, seed);
    const items = [];
    const newIdentities = [];
    for (let i = 0; i < count; i++) {
      const externalId = `p${next++}`;
      const v = unit(vs.subarray(i * DIM, (i + 1) * DIM));
      live.set(externalId, v);
      newIdentities.push({ externalId });
      items.push({ identity: externalId, face: { embedding: v } });
    }
    for (let i = 0; i < count; i += 2000) await store.addFaces('g', items.slice(i, i + 2000), { newIdentities: newIdentities.slice(i, i + 2000) });
  }

  async function expectReference(s: Store, seed: number): Promise<void> {
    for (let p = 0; p < 3; p++) {
      const probe = unit(randomTensor(DIM, seed + p));
      const got = await s.identify('g', probe, { k: 5, exact: true });
      expect(got.method).toBe('exact');
      const want = reference(live, probe, 5);
      expect(got.candidates.map((c) => c.identity)).toEqual(want.map((w) => w.identity));
      got.candidates.forEach((c, i) => expect(Math.abs(c.score - want[i]!.score)).toBeLessThanOrEqual(1e-5));
    }
  }

  beforeAll(async () => {
    store = await openStore(path, { exactRows: await wasmExactRows({ splitFrom: 1 }) });
    await store.createGallery('g', { modelId: 'synthetic-256', dimension: DIM, m: 8, efConstruction: 16 });
    await enroll(N, 1);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
  });

  it('scans the resident rows on the workers with the float64 reference\'s answer, after adds and deletes, and after a reopen (default rows)', async () => {
    await expectReference(store, 100);
    // A probe equal to an enrolled face finds that face first.
    const known = live.get('p1234')!;
    expect((await store.identify('g', known, { k: 1, exact: true })).candidates[0]).toMatchObject({ identity: 'p1234' });
    // Deletes (the last rows move into the holes) and adds after the rows are resident.
    for (const id of ['p1234', 'p0', `p${N - 1}`, 'p2000']) {
      await store.deleteIdentity('g', id);
      live.delete(id);
    }
    await enroll(300, 2);
    expect((await store.identify('g', known, { k: 1, exact: true })).candidates[0]!.identity).not.toBe('p1234');
    await expectReference(store, 200);
    await store.close();
    // Reopened with the default rows: resident in WASM memory, scanned on the calling thread at this size.
    store = await openStore(path);
    expect(store.scorerName).toContain('resident');
    await expectReference(store, 300);
  });

  it('the TypeScript scorer (rows in a plain array) answers the same', async () => {
    const ts = await openStore(path, { scorer: scoreExactTs });
    try {
      expect(ts.scorerName).toBe('custom');
      await expectReference(ts, 400);
    } finally {
      await ts.close();
    }
  });
});

describe('ReadWriteLock (the order of exact scans and changes to their rows)', () => {
  it('lets readers overlap, makes a writer wait for them, and queues later readers behind a waiting writer', async () => {
    const lock = new ReadWriteLock();
    const log: string[] = [];
    let release1!: () => void;
    const r1 = lock.read(async () => {
      log.push('r1 start');
      await new Promise<void>((r) => (release1 = r));
      log.push('r1 end');
    });
    const r2 = lock.read(() => log.push('r2'));
    const w = lock.write(() => log.push('w'));
    const r3 = lock.read(() => log.push('r3'));
    await r2;
    await new Promise((r) => setTimeout(r, 10));
    expect(log).toEqual(['r1 start', 'r2']);
    release1();
    await Promise.all([r1, w, r3]);
    expect(log).toEqual(['r1 start', 'r2', 'r1 end', 'w', 'r3']);
  });
});
