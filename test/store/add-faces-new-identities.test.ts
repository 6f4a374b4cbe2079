// addFaces with newIdentities (bulk enrollment): the identities and their faces are written in one
// transaction on every backend, so a duplicate or a bad face leaves nothing, and a success leaves
// all of it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import type { Store } from '../../src/store/index.js';
import { BACKENDS, testDb, type TestDb } from '../helpers/backends.js';

const v = (seed: number) => Array.from({ length: 8 }, (_, i) => Math.sin(seed * 13 + i * 7) + 0.01 * i);

describe.each(BACKENDS)('addFaces with new identities on %s', (backend) => {
  let db: TestDb;
  let store: Store;
  beforeAll(async () => {
    db = await testDb(backend, 'newids');
    store = await db.open();
    await store.createGallery('g', { modelId: 'synthetic-8', dimension: 8 });
    await store.addIdentity('g', { externalId: 'old' });
  });
  afterAll(async () => {
    await store.close();
    await db.dispose();
  });

  it('creates the identities and their faces together, next to faces of existing identities', async () => {
    const added = await store.addFaces(
      'g',
      [
        { identity: 'ann', face: { embedding: v(1) } },
        { identity: 'old', face: { embedding: v(2) } },
        { identity: 'ann', face: { embedding: v(3) } },
        { identity: 'bob', face: { embedding: v(4) } },
      ],
      { newIdentities: [{ externalId: 'ann', displayName: 'Ann' }, { externalId: 'bob' }] },
    );
    expect(added.map((f) => f.identity)).toEqual(['ann', 'old', 'ann', 'bob']);
    expect((await store.getIdentity('g', 'ann')).faces).toBe(2);
    expect((await store.getIdentity('g', 'ann')).displayName).toBe('Ann');
    expect(added[0]!.identityId).toBe((await store.getIdentity('g', 'ann')).id);
    expect(added[3]!.identityId).toBe((await store.getIdentity('g', 'bob')).id);
    const top = await store.identify('g', v(4), { k: 1 });
    expect(top.candidates[0]!.identity).toBe('bob');
  });

  it('a taken identity id or a bad face writes nothing', async () => {
    const before = await db.fingerprint(store);
    const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isCosfaceError(e) ? e.code : String(e)));
    expect(await code(store.addFaces('g', [{ identity: 'cat', face: { embedding: v(5) } }, { identity: 'old', face: { embedding: v(6) } }], { newIdentities: [{ externalId: 'cat' }, { externalId: 'old' }] }))).toBe('DUPLICATE_IDENTITY');
    expect(await code(store.addFaces('g', [{ identity: 'cat', face: { embedding: v(5) } }, { identity: 'cat', face: { embedding: [1, 2] } }], { newIdentities: [{ externalId: 'cat' }] }))).toBe('DIMENSION_MISMATCH');
    expect(await code(store.addFaces('g', [{ identity: 'cat', face: { embedding: v(5) } }], { newIdentities: [{ externalId: 'bad\u0000id' }] }))).toBe('BAD_INPUT');
    expect(await db.fingerprint(store)).toBe(before);
    await expect(store.getIdentity('g', 'cat')).rejects.toMatchObject({ code: 'IDENTITY_NOT_FOUND' });
  });
});
