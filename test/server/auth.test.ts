// API keys: without a key, or with a key for another gallery, nothing can be read or written; only
// hashes are stored; admin keys from the environment or created once on first start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeys, hashKey } from '../../src/server/api-keys.js';
import { createApiKey } from '../../src/server/server.js';
import { describedRoutes } from '../../src/server/openapi.js';
import { ensureAdminKey } from '../../src/server/server.js';
import { BACKENDS } from '../helpers/backends.js';
import { expectError, json, makeServer, personVector, type TestServer } from './helpers.js';

describe.each(BACKENDS)('API keys on %s', (backend) => {
  let t: TestServer;
  let mineKey: string;
  let otherKey: string;

  /** Everything a client could observe about the data, for "nothing changed" checks. */
  async function snapshot(): Promise<unknown> {
    const out: Record<string, unknown> = {};
    for (const g of ['mine', 'other']) {
      out[g] = await json(await t.call('GET', `/v1/galleries/${g}`));
      const ids = await json<{ identities: { externalId: string }[] }>(await t.call('GET', `/v1/galleries/${g}/identities`));
      out[`${g}/ids`] = ids;
      for (const i of ids.identities) out[`${g}/${i.externalId}`] = await json(await t.call('GET', `/v1/galleries/${g}/identities/${i.externalId}/faces`));
    }
    out.keys = await json(await t.call('GET', '/v1/keys'));
    out.galleries = await json(await t.call('GET', '/v1/galleries'));
    return out;
  }

  beforeAll(async () => {
    t = await makeServer({ backend });
    for (const g of ['mine', 'other']) {
      await t.call('POST', '/v1/galleries', { name: g });
      await t.call('POST', `/v1/galleries/${g}/enroll`, { faces: [{ identity: 'p0', embedding: personVector(0) }, { identity: 'p1', embedding: personVector(1) }] });
    }
    const r = await t.call('POST', '/v1/keys', { name: 'mine only', gallery: 'mine' });
    expect(r.status).toBe(201);
    mineKey = (await json<{ key: string }>(r)).key;
    otherKey = (await createApiKey(t.store, { gallery: 'other' })).key;
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Fills a route's path parameters with names from the 'mine' gallery. */
  const concrete = (path: string) => path.replace(':g', 'mine').replace(':id', 'p0').replace(':faceId', '1');

  describe('every protected route', () => {
    it('answers 401 UNAUTHORIZED without a key, with a malformed header, or with an unknown key; nothing changes', async () => {
      const before = await snapshot();
      const routes = describedRoutes(t.app).filter((r) => r.spec.access !== 'public');
      expect(routes.length).toBeGreaterThan(15);
      for (const r of routes) {
        const path = concrete(r.path);
        const body = r.method === 'get' || r.method === 'delete' ? undefined : { embedding: personVector(0), externalId: 'intruder', name: 'intruder' };
        for (const authorization of ['', 'Basic abc', `Bearer ${'x'.repeat(40)}`, `Bearer ${t.adminKey}extra`]) {
          const res = await t.call(r.method.toUpperCase(), path, body, { authorization });
          await expectError(res, 401, 'UNAUTHORIZED');
        }
      }
      expect(await snapshot()).toEqual(before);
    });

    it("answers 403 FORBIDDEN to a key for another gallery on 'gallery' and 'admin' routes; nothing changes", async () => {
      const before = await snapshot();
      const routes = describedRoutes(t.app).filter((r) => r.spec.access === 'gallery' || r.spec.access === 'admin');
      for (const r of routes) {
        const body = r.method === 'get' || r.method === 'delete' ? undefined : { embedding: personVector(0), externalId: 'intruder', name: 'intruder' };
        const res = await t.call(r.method.toUpperCase(), concrete(r.path), body, { authorization: `Bearer ${otherKey}` });
        await expectError(res, 403, 'FORBIDDEN');
      }
      // The same for a gallery that does not exist: a scoped key learns nothing about other galleries.
      await expectError(await t.call('GET', '/v1/galleries/ghost', undefined, { authorization: `Bearer ${otherKey}` }), 403, 'FORBIDDEN');
      // Verify against an identity of another gallery.
      await expectError(
        await t.call('POST', '/v1/verify', { a: personVector(0), b: { gallery: 'mine', identity: 'p0' } }, { authorization: `Bearer ${otherKey}` }),
        403,
        'FORBIDDEN',
      );
      expect(await snapshot()).toEqual(before);
    });
  });

  describe('a gallery key', () => {
    const as = (key: string) => ({ authorization: `Bearer ${key}` });

    it('reads and writes its own gallery and sees only it', async () => {
      const list = await json<{ galleries: { name: string }[] }>(await t.call('GET', '/v1/galleries', undefined, as(mineKey)));
      expect(list.galleries.map((g) => g.name)).toEqual(['mine']);
      const info = await json<{ galleries: { name: string }[] }>(await t.call('GET', '/v1/info', undefined, as(mineKey)));
      expect(info.galleries.map((g) => g.name)).toEqual(['mine']);
      expect((await t.call('POST', '/v1/galleries/mine/identities', { externalId: 'p9' }, as(mineKey))).status).toBe(201);
      expect((await t.call('POST', '/v1/galleries/mine/identities/p9/faces', { embedding: personVector(9) }, as(mineKey))).status).toBe(201);
      const res = await json<{ candidates: { identity: string }[] }>(await t.call('POST', '/v1/galleries/mine/identify', { embedding: personVector(9, 1) }, as(mineKey)));
      expect(res.candidates[0]!.identity).toBe('p9');
      const v = await t.call('POST', '/v1/verify', { a: personVector(9, 2), b: { gallery: 'mine', identity: 'p9' } }, as(mineKey));
      expect(v.status).toBe(200);
      expect((await t.call('DELETE', '/v1/galleries/mine/identities/p9', undefined, as(mineKey))).status).toBe(200);
    });

    it('cannot create or delete galleries, manage keys or read metrics', async () => {
      await expectError(await t.call('POST', '/v1/galleries', { name: 'new' }, as(mineKey)), 403, 'FORBIDDEN');
      await expectError(await t.call('DELETE', '/v1/galleries/mine', undefined, as(mineKey)), 403, 'FORBIDDEN');
      await expectError(await t.call('GET', '/v1/keys', undefined, as(mineKey)), 403, 'FORBIDDEN');
      await expectError(await t.call('POST', '/v1/keys', { name: 'escalate' }, as(mineKey)), 403, 'FORBIDDEN');
      await expectError(await t.call('GET', '/metrics', undefined, as(mineKey)), 403, 'FORBIDDEN');
    });

    it('stops working when revoked, and when its gallery is deleted', async () => {
      const k = await json<{ id: number; key: string }>(await t.call('POST', '/v1/keys', { name: 'temp', gallery: 'mine' }));
      expect((await t.call('GET', '/v1/galleries/mine', undefined, as(k.key))).status).toBe(200);
      const revoked = await json<{ revokedAt: string | null }>(await t.call('DELETE', `/v1/keys/${k.id}`));
      expect(revoked.revokedAt).not.toBeNull();
      await expectError(await t.call('GET', '/v1/galleries/mine', undefined, as(k.key)), 401, 'UNAUTHORIZED');
      await expectError(await t.call('DELETE', `/v1/keys/${k.id}`), 404, 'NOT_FOUND');

      await t.call('POST', '/v1/galleries', { name: 'doomed' });
      const d = await json<{ key: string }>(await t.call('POST', '/v1/keys', { name: 'doomed', gallery: 'doomed' }));
      expect((await t.call('GET', '/v1/galleries/doomed', undefined, as(d.key))).status).toBe(200);
      await t.call('DELETE', '/v1/galleries/doomed');
      await expectError(await t.call('GET', '/v1/galleries/doomed', undefined, as(d.key)), 401, 'UNAUTHORIZED');
    });

    it('key creation checks its gallery', async () => {
      await expectError(await t.call('POST', '/v1/keys', { name: 'x', gallery: 'ghost' }), 404, 'GALLERY_NOT_FOUND');
      await expectError(await t.call('POST', '/v1/keys', {}), 400, 'BAD_INPUT');
    });
  });

  describe('key storage and bootstrap', () => {
    it('stores only sha256 hashes, never the key', async () => {
      const rows = await t.db.rows('api_keys');
      const dump = JSON.stringify(rows);
      for (const k of [t.adminKey, mineKey, otherKey]) {
        expect(dump).not.toContain(k);
        expect(rows.some((r) => r.key_hash === hashKey(k))).toBe(true);
      }
    });

    it('lists keys with names and scopes but no values', async () => {
      const { keys } = await json<{ keys: Record<string, unknown>[] }>(await t.call('GET', '/v1/keys'));
      expect(keys.find((k) => k.gallery === 'mine')).toMatchObject({ name: 'mine only', revokedAt: null });
      expect(JSON.stringify(keys)).not.toContain(mineKey);
      expect(keys.every((k) => !('key' in k) && !('keyHash' in k))).toBe(true);
    });

    it('ensureAdminKey: adopts COSFACE_ADMIN_KEY, else creates one only when there is none', async () => {
      const fresh = await makeServer({ backend });
      const keys = ApiKeys.of(fresh.store);
      try {
        // makeServer made an admin key already: nothing new.
        expect(await ensureAdminKey(keys, undefined)).toBeNull();
        const chosen = 'my-own-admin-key-0123456789';
        expect(await ensureAdminKey(keys, chosen)).toBeNull();
        expect(await ensureAdminKey(keys, chosen)).toBeNull(); // idempotent
        expect((await keys.list()).filter((k) => k.name.includes('COSFACE_ADMIN_KEY'))).toHaveLength(1);
        expect((await fresh.call('GET', '/v1/keys', undefined, { authorization: `Bearer ${chosen}` })).status).toBe(200);
        await expect(ensureAdminKey(keys, 'short')).rejects.toThrow(/at least 16/);
        for (const k of await keys.list()) await keys.revoke(k.id);
        const created = await ensureAdminKey(keys, undefined);
        expect(created).toMatch(/^cfk_/);
        expect(await ensureAdminKey(keys, undefined)).toBeNull();
        expect((await fresh.call('GET', '/v1/keys', undefined, { authorization: `Bearer ${created}` })).status).toBe(200);
      } finally {
        await fresh.close();
      }
    });

    it("auth 'disabled' serves without keys, and key routes say keys are off", async () => {
      const open = await makeServer({ backend, auth: 'disabled' });
      try {
        expect((await open.call('POST', '/v1/galleries', { name: 'g' }, { authorization: '' })).status).toBe(201);
        expect((await open.call('GET', '/v1/galleries/g', undefined, { authorization: '' })).status).toBe(200);
        await expectError(await open.call('GET', '/v1/keys', undefined, { authorization: '' }), 404, 'NOT_FOUND');
        const info = await json<{ auth: string }>(await open.call('GET', '/v1/info', undefined, { authorization: '' }));
        expect(info.auth).toBe('disabled');
      } finally {
        await open.close();
      }
    });
  });
});
