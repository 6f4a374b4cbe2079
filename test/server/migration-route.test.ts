// GET /v1/galleries/:g/migration: an operator watches a model migration that runs outside the
// server (the CLI, or migrateGallery in another process) against the same database: its claim,
// how many faces are re-embedded, and the gallery's model once it switched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, json, makeServer, personVector, type TestServer } from './helpers.js';

interface MigrationJson {
  gallery: string;
  modelId: string;
  dimension: number;
  faces: number;
  migration: { modelId: string; dimension: number; owner: string; startedAt: string; heartbeatAt: string; active: boolean; staged: number } | null;
}

let t: TestServer;
beforeAll(async () => {
  t = await makeServer();
});
afterAll(async () => {
  await t?.close();
});

describe('GET /v1/galleries/:g/migration', () => {
  it('shows no migration, then the claim and re-embedded faces while one runs, then the new model after the switch', async () => {
    expect((await t.call('POST', '/v1/galleries', { name: 'g' })).status).toBe(201);
    const enroll = await t.call('POST', '/v1/galleries/g/enroll', { faces: [0, 1, 2].map((p) => ({ identity: `p${p}`, embedding: personVector(p) })) });
    expect(enroll.status).toBe(201);
    const status = async () => {
      const r = await t.call('GET', '/v1/galleries/g/migration');
      expect(r.status).toBe(200);
      return json<MigrationJson>(r);
    };
    const idle = await status();
    expect(idle).toMatchObject({ gallery: 'g', dimension: 128, faces: 3, migration: null });

    // Another process (here the library API in this one) claims the gallery and re-embeds one face.
    const owner = 'worker-host:4242:abc';
    await t.store.beginMigration('g', { modelId: 'next-model', dimension: 64 }, { owner });
    const faces = await t.store.facesToMigrate('g');
    const v64 = (i: number) => Array.from({ length: 64 }, (_, j) => (j === i ? 1 : 0.01));
    await t.store.stageMigratedFaces('g', owner, [{ faceId: faces[0]!.id, embedding: v64(0) }]);
    const running = await status();
    expect(running).toMatchObject({ modelId: idle.modelId, dimension: 128, faces: 3, migration: { modelId: 'next-model', dimension: 64, owner, active: true, staged: 1 } });
    expect(Date.parse(running.migration!.heartbeatAt)).toBeGreaterThanOrEqual(Date.parse(running.migration!.startedAt));
    // What "active" means to a client: adding faces is refused until the switch.
    await expectError(await t.call('POST', '/v1/galleries/g/enroll', { faces: [{ identity: 'p3', embedding: personVector(3) }] }), 409, 'MIGRATING');

    await t.store.stageMigratedFaces('g', owner, faces.slice(1).map((f, i) => ({ faceId: f.id, embedding: v64(i + 1) })));
    expect((await status()).migration).toMatchObject({ staged: 3, active: true });
    await t.store.switchMigration('g', owner);
    expect(await status()).toMatchObject({ modelId: 'next-model', dimension: 64, faces: 3, migration: null });
  });

  it('answers 404 GALLERY_NOT_FOUND for an unknown gallery', async () => {
    await expectError(await t.call('GET', '/v1/galleries/ghost/migration'), 404, 'GALLERY_NOT_FOUND');
  });
});
