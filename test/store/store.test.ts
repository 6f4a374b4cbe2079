// The store's library API: galleries, identities, faces, identify/verify, thresholds, and bad input
// that gets a stable error code and leaves the database unchanged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError, type ErrorCode } from '../../src/errors.js';
import type { Store } from '../../src/store/index.js';
import { makeClusteredGallery, seededRandom } from '../../src/bench/search-bench.js';
import { BACKENDS, testDb, type TestDb } from '../helpers/backends.js';

const DIM = 128;

async function expectCode(fn: () => unknown, code: ErrorCode): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(isCosfaceError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

async function expectCodeAsync(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(isCosfaceError(err, code), `expected ${code}, got ${String(err)}`).toBe(true);
}

describe.each(BACKENDS)('store on %s', (backend) => {
  let db: TestDb;
  let store: Store;
  // 40 identities x 3 faces; enrolled faces are rows 0-1 of each identity, row 2 is a probe.
  const data = makeClusteredGallery(120, { facesPerIdentity: 3, seed: 5 });
  const face = (row: number) => data.vectors.subarray(row * DIM, (row + 1) * DIM);

  beforeAll(async () => {
    db = await testDb(backend, 'store');
    store = await db.open();
    await store.createGallery('staff', { modelId: 'synthetic-128', dimension: DIM });
    for (let id = 0; id < 40; id++) {
      await store.addIdentity('staff', { externalId: `person-${id}`, displayName: `Person ${id}`, metadata: { team: id % 3 } });
      await store.addFaces('staff', [0, 1].map((j) => ({ identity: `person-${id}`, face: { embedding: face(id * 3 + j), quality: 0.9 } })));
    }
  });
  afterAll(async () => {
    await store.close();
    await db.dispose();
  });

  it('lists galleries and identities with counts', async () => {
    expect((await store.listGalleries()).map((g) => [g.name, g.identities, g.faces])).toEqual([['staff', 40, 80]]);
    const alice = await store.getIdentity('staff', 'person-7');
    expect(alice).toMatchObject({ externalId: 'person-7', displayName: 'Person 7', metadata: { team: 1 }, faces: 2 });
    expect((await store.listIdentities('staff', { limit: 5 })).map((i) => i.externalId)).toEqual(['person-0', 'person-1', 'person-2', 'person-3', 'person-4']);
  });

  it('identifies held-out faces of enrolled people (rank 1), best template per identity', async () => {
    let rank1 = 0;
    for (let id = 0; id < 40; id++) {
      const r = await store.identify('staff', face(id * 3 + 2), { k: 3 });
      expect(r.method).toBe('exact'); // small gallery
      expect(new Set(r.candidates.map((c) => c.identity)).size).toBe(r.candidates.length);
      if (r.candidates[0]!.identity === `person-${id}`) rank1++;
    }
    expect(rank1).toBeGreaterThanOrEqual(39);
    // The same answers from the HNSW path.
    const hnsw = await store.identify('staff', face(2), { k: 3, exact: false });
    const exact = await store.identify('staff', face(2), { k: 3, exact: true });
    expect(hnsw.candidates.map((c) => c.identity)).toEqual(exact.candidates.map((c) => c.identity));
  });

  it('normalises embeddings: a scaled copy scores the same', async () => {
    const scaled = Array.from(face(5), (x) => x * 17.5);
    const a = await store.identify('staff', face(5), { k: 1 });
    const b = await store.identify('staff', scaled, { k: 1 });
    expect(b.candidates[0]!.faceId).toBe(a.candidates[0]!.faceId);
    expect(b.candidates[0]!.score).toBeCloseTo(a.candidates[0]!.score, 5);
  });

  it('verifies embedding against embedding and against an identity', async () => {
    const same = await store.verify(face(0), face(1), { threshold: 0.3 });
    const diff = await store.verify(face(0), face(4), { threshold: 0.3 });
    expect(same.same).toBe(true);
    expect(diff.same).toBe(false);
    const vsIdentity = await store.verify(face(2), { gallery: 'staff', identity: 'person-0' }, { threshold: 0.3 });
    expect(vsIdentity.same).toBe(true);
    expect([1, 2]).toContain(vsIdentity.faceId); // one of person-0's two templates
    expect((await store.verify(face(2), face(1))).same).toBeNull(); // no threshold asked for
  });

  it('calibrates thresholds per model and applies a FAR in identify', async () => {
    // Genuine pairs: two faces of one identity; impostor pairs: faces of different identities.
    const rand = seededRandom(3);
    const g = makeClusteredGallery(4000, { facesPerIdentity: 2, seed: 9 });
    const dot = (a: number, b: number) => {
      let s = 0;
      for (let i = 0; i < DIM; i++) s += g.vectors[a * DIM + i]! * g.vectors[b * DIM + i]!;
      return s;
    };
    const pairs = [];
    for (let i = 0; i < 2000; i++) pairs.push({ score: dot(2 * i, 2 * i + 1), same: true });
    for (let i = 0; i < 20_000; i++) {
      const a = Math.floor(rand() * 4000);
      const b = (a + 2 + 2 * Math.floor(rand() * 1990)) % 4000;
      pairs.push({ score: dot(a, b), same: false });
    }
    const c = await store.calibrateModel('synthetic-128', pairs);
    expect(c.impostorPairs).toBe(20_000);
    expect(c.thresholds.map((t) => t.far)).toEqual([1e-2, 1e-3, 1e-4]);
    expect(c.unsupported.map((u) => [u.far, u.impostorPairsNeeded])).toEqual([[1e-5, 100_000], [1e-6, 1_000_000]]);
    for (const t of c.thresholds) expect(t.measuredFar).toBeLessThanOrEqual(t.far);
    // Stricter FAR, higher threshold, lower TAR.
    expect(c.thresholds[0]!.threshold).toBeLessThan(c.thresholds[2]!.threshold);
    expect(c.thresholds[0]!.tar!).toBeGreaterThan(c.thresholds[2]!.tar!);
    expect(await store.thresholds('synthetic-128')).toHaveLength(3);

    const enrolled = await store.identify('staff', face(3 * 11 + 2), { k: 1, far: 1e-3 });
    expect(enrolled.decision).toBe('match');
    expect(enrolled.match?.identity).toBe('person-11');
    expect(enrolled.threshold).toBe(c.thresholds[1]!.threshold);
    // A stranger (a new identity centre) is rejected.
    const stranger = makeClusteredGallery(1, { seed: 12345 }).vectors;
    const r = await store.identify('staff', stranger, { k: 1, far: 1e-3 });
    expect(r.decision).toBe('unknown');
    expect(r.match).toBeNull();
    await expectCodeAsync(store.identify('staff', stranger, { far: 1e-6 }), 'NOT_CALIBRATED');
  });

  it('rejects bad input with a stable code and leaves the database unchanged', async () => {
    await store.close();
    const before = await db.fingerprint();
    store = await db.open();
    const good = Array.from(face(0));
    const nan = [...good];
    nan[3] = NaN;
    await expectCode(() => store.addFace('staff', 'person-0', { embedding: good.slice(1) }), 'DIMENSION_MISMATCH');
    await expectCode(() => store.addFace('staff', 'person-0', { embedding: nan }), 'BAD_INPUT');
    await expectCode(() => store.addFace('staff', 'person-0', { embedding: new Array(DIM).fill(0) }), 'BAD_INPUT');
    await expectCode(() => store.addFace('nope', 'person-0', { embedding: good }), 'GALLERY_NOT_FOUND');
    await expectCode(() => store.addFace('staff', 'nobody', { embedding: good }), 'IDENTITY_NOT_FOUND');
    await expectCode(() => store.addFace('staff', 'person-0', { embedding: good, box: { x: 0, y: 0, width: -1, height: 3 } }), 'BAD_INPUT');
    await expectCode(() => store.addFace('staff', 'person-0', { embedding: good, photoHash: 'not-a-hash' }), 'BAD_INPUT');
    await expectCode(() => store.addFaces('staff', []), 'EMPTY_BATCH');
    // One bad face in a batch: none of the batch is written.
    await expectCode(
      () => store.addFaces('staff', [{ identity: 'person-0', face: { embedding: good } }, { identity: 'person-0', face: { embedding: nan } }]),
      'BAD_INPUT',
    );
    await expectCode(() => store.addIdentity('staff', { externalId: 'person-3' }), 'DUPLICATE_IDENTITY');
    await expectCode(() => store.addIdentity('staff', { externalId: '' }), 'BAD_INPUT');
    await expectCode(() => store.addIdentity('nope', { externalId: 'x' }), 'GALLERY_NOT_FOUND');
    await expectCode(() => store.createGallery('staff', { modelId: 'm', dimension: DIM }), 'GALLERY_EXISTS');
    await expectCode(() => store.createGallery('bad', { modelId: 'm', dimension: 0 }), 'BAD_INPUT');
    await expectCode(() => store.deleteIdentity('staff', 'nobody'), 'IDENTITY_NOT_FOUND');
    await expectCode(() => store.deleteFace('staff', 999_999), 'FACE_NOT_FOUND');
    await expectCode(() => store.calibrateModel('m', [{ score: NaN, same: false }]), 'BAD_INPUT');
    await expectCodeAsync(store.identify('staff', good.slice(2)), 'DIMENSION_MISMATCH');
    await expectCodeAsync(store.identify('staff', nan), 'BAD_INPUT');
    await expectCodeAsync(store.identify('nope', good), 'GALLERY_NOT_FOUND');
    await expectCodeAsync(store.identify('staff', good, { k: 0 }), 'BAD_INPUT');
    await expectCodeAsync(store.identify('staff', good, { far: 2 }), 'BAD_INPUT');
    await expectCodeAsync(store.verify(good, good.slice(1)), 'DIMENSION_MISMATCH');
    await expectCodeAsync(store.verify(good, { gallery: 'staff', identity: 'nobody' }), 'IDENTITY_NOT_FOUND');
    await expectCodeAsync(store.verify(good, good, { far: 1e-3 }), 'BAD_INPUT'); // FAR without a model
    expect(await store.getGallery('staff')).toMatchObject({ identities: 40, faces: 80 });
    await store.close();
    expect(await db.fingerprint()).toBe(before);
    store = await db.open();
  });

  it('skips photos already enrolled (by hash) and deletes a gallery with its index files', async () => {
    const hash = 'a'.repeat(64);
    await store.createGallery('tmp', { modelId: 'm', dimension: DIM });
    await store.ensureIdentity('tmp', { externalId: 'x' });
    expect(await store.hasPhoto('tmp', hash)).toBe(false);
    await store.addFace('tmp', 'x', { embedding: face(0), photoHash: hash, photoPath: '/photos/x/1.jpg' });
    expect(await store.hasPhoto('tmp', hash)).toBe(true);
    expect((await store.ensureIdentity('tmp', { externalId: 'x' })).faces).toBe(1);
    await store.checkpoint('tmp');
    await store.deleteGallery('tmp');
    await expectCode(() => store.getGallery('tmp'), 'GALLERY_NOT_FOUND');
    expect((await store.listGalleries()).map((g) => g.name)).toEqual(['staff']);
  });
});
