// The HTTP API through app.request(), with embeddings (no pipeline): every route's success path
// and each error code, responses checked against the schemas the OpenAPI description publishes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../src/server/app.js';
import { describedRoutes } from '../../src/server/openapi.js';
import { openStore } from '../../src/store/index.js';
import * as s from '../../src/server/schemas.js';
import { BACKENDS } from '../helpers/backends.js';
import { expectError, json, makeServer, personVector, type TestServer } from './helpers.js';

describe.each(BACKENDS)('HTTP API on %s', (backend) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await makeServer({ backend });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Parses a body with its documented response schema; a field the docs do not promise fails too. */
  function documented<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
    const parsed = schema.parse(body) as z.output<S>;
    expect(parsed).toEqual(body); // zod drops undocumented keys, so any extra key shows up here
    return parsed;
  }

  async function setupGallery(name: string, people = 3): Promise<void> {
    expect((await t.call('POST', '/v1/galleries', { name })).status).toBe(201);
    for (let p = 0; p < people; p++) {
      expect((await t.call('POST', `/v1/galleries/${name}/identities`, { externalId: `p${p}`, displayName: `Person ${p}` })).status).toBe(201);
      const r = await t.call('POST', `/v1/galleries/${name}/identities/p${p}/faces`, { embedding: personVector(p, 0) });
      expect(r.status).toBe(201);
    }
  }

  describe('galleries', () => {
    it('creates, lists, gets and deletes a gallery', async () => {
      const r = await t.call('POST', '/v1/galleries', { name: 'g1', ef: 50 });
      expect(r.status).toBe(201);
      const g = documented(s.galleryResponse, await r.json());
      expect(g).toMatchObject({ name: 'g1', modelId: 'mobilefacenet-arcface', dimension: 128, ef: 50, identities: 0, faces: 0 });
      const list = await json<{ galleries: { name: string }[] }>(await t.call('GET', '/v1/galleries'));
      expect(list.galleries.map((x) => x.name)).toContain('g1');
      expect(documented(s.galleryResponse, await json(await t.call('GET', '/v1/galleries/g1'))).name).toBe('g1');
      const del = await t.call('DELETE', '/v1/galleries/g1');
      expect(del.status).toBe(200);
      await expectError(await t.call('GET', '/v1/galleries/g1'), 404, 'GALLERY_NOT_FOUND');
    });

    it('GALLERY_EXISTS on a second create; BAD_INPUT on bad fields and unknown fields', async () => {
      expect((await t.call('POST', '/v1/galleries', { name: 'dup' })).status).toBe(201);
      await expectError(await t.call('POST', '/v1/galleries', { name: 'dup' }), 409, 'GALLERY_EXISTS');
      await expectError(await t.call('POST', '/v1/galleries', { name: '' }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries', { name: 'x', m: 1 }), 400, 'BAD_INPUT');
      const e = await expectError(await t.call('POST', '/v1/galleries', { name: 'x', colour: 'red' }), 400, 'BAD_INPUT');
      expect(e.error.message).toMatch(/colour/);
      await expectError(await t.call('DELETE', '/v1/galleries/nope'), 404, 'GALLERY_NOT_FOUND');
    });
  });

  describe('identities', () => {
    beforeAll(async () => {
      await t.call('POST', '/v1/galleries', { name: 'ids' });
      for (let i = 0; i < 7; i++) await t.call('POST', '/v1/galleries/ids/identities', { externalId: `id${i}`, metadata: { n: i } });
    });

    it('pages through identities with limit/offset and next', async () => {
      const seen: string[] = [];
      let offset: number | null = 0;
      while (offset !== null) {
        const r = await t.call('GET', `/v1/galleries/ids/identities?limit=3&offset=${offset}`);
        const page = await json<{ identities: { externalId: string }[]; total: number; next: number | null }>(r);
        expect(page.total).toBe(7);
        seen.push(...page.identities.map((i) => i.externalId));
        offset = page.next;
      }
      expect(seen).toEqual(['id0', 'id1', 'id2', 'id3', 'id4', 'id5', 'id6']);
      await expectError(await t.call('GET', '/v1/galleries/ids/identities?limit=0'), 400, 'BAD_INPUT');
      await expectError(await t.call('GET', '/v1/galleries/ids/identities?limit=abc'), 400, 'BAD_INPUT');
      await expectError(await t.call('GET', '/v1/galleries/ids/identities?colour=1'), 400, 'BAD_INPUT');
    });

    it('gets, updates and deletes an identity; DUPLICATE_IDENTITY and IDENTITY_NOT_FOUND', async () => {
      const got = documented(s.identityResponse, await json(await t.call('GET', '/v1/galleries/ids/identities/id1')));
      expect(got).toMatchObject({ externalId: 'id1', displayName: null, metadata: { n: 1 }, faces: 0 });
      const up = await t.call('PATCH', '/v1/galleries/ids/identities/id1', { displayName: 'One', metadata: null });
      expect(up.status).toBe(200);
      expect(await up.json()).toMatchObject({ externalId: 'id1', displayName: 'One', metadata: null });
      expect(await json(await t.call('GET', '/v1/galleries/ids/identities/id1'))).toMatchObject({ displayName: 'One', metadata: null });
      await expectError(await t.call('PATCH', '/v1/galleries/ids/identities/id1', {}), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/ids/identities', { externalId: 'id1' }), 409, 'DUPLICATE_IDENTITY');
      expect((await t.call('DELETE', '/v1/galleries/ids/identities/id1')).status).toBe(200);
      await expectError(await t.call('GET', '/v1/galleries/ids/identities/id1'), 404, 'IDENTITY_NOT_FOUND');
      await expectError(await t.call('PATCH', '/v1/galleries/ids/identities/id1', { displayName: 'x' }), 404, 'IDENTITY_NOT_FOUND');
      await expectError(await t.call('DELETE', '/v1/galleries/ids/identities/id1'), 404, 'IDENTITY_NOT_FOUND');
      await expectError(await t.call('POST', '/v1/galleries/nope/identities', { externalId: 'a' }), 404, 'GALLERY_NOT_FOUND');
    });
  });

  describe('faces', () => {
    beforeAll(() => setupGallery('f', 2));

    it('adds from an embedding, lists, deletes; FACE_NOT_FOUND, DIMENSION_MISMATCH, BAD_INPUT', async () => {
      const r = await t.call('POST', '/v1/galleries/f/identities/p0/faces', { embedding: personVector(0, 1), quality: 0.8 });
      expect(r.status).toBe(201);
      const added = (await r.json()) as { face: z.output<typeof s.faceResponse> };
      expect(documented(s.faceResponse, added.face)).toMatchObject({ identity: 'p0', quality: 0.8, box: null });
      const list = await json<{ faces: { id: number }[] }>(await t.call('GET', '/v1/galleries/f/identities/p0/faces'));
      expect(list.faces.map((f) => f.id)).toContain(added.face.id);
      expect(list.faces).toHaveLength(2);
      expect((await t.call('DELETE', `/v1/galleries/f/faces/${added.face.id}`)).status).toBe(200);
      await expectError(await t.call('DELETE', `/v1/galleries/f/faces/${added.face.id}`), 404, 'FACE_NOT_FOUND');
      await expectError(await t.call('DELETE', '/v1/galleries/f/faces/abc'), 400, 'BAD_INPUT');
      expect((await json<{ faces: unknown[] }>(await t.call('GET', '/v1/galleries/f/identities/p0/faces'))).faces).toHaveLength(1);

      await expectError(await t.call('POST', '/v1/galleries/f/identities/p0/faces', { embedding: [1, 2, 3] }), 400, 'DIMENSION_MISMATCH');
      await expectError(await t.call('POST', '/v1/galleries/f/identities/p0/faces', { embedding: new Array(128).fill(0) }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/f/identities/p0/faces', { embedding: ['a'] }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/f/identities/p0/faces', {}), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/f/identities/nobody/faces', { embedding: personVector(0) }), 404, 'IDENTITY_NOT_FOUND');
      await expectError(await t.call('GET', '/v1/galleries/f/identities/nobody/faces'), 404, 'IDENTITY_NOT_FOUND');
      expect((await json<{ faces: number }>(await t.call('GET', '/v1/galleries/f'))).faces).toBe(2);
    });

    it('MODEL_MISMATCH: an image for a gallery of another model (before the pipeline runs)', async () => {
      await t.call('POST', '/v1/galleries', { name: 'other-model', modelId: 'someone-elses', dimension: 4 });
      await t.call('POST', '/v1/galleries/other-model/identities', { externalId: 'a' });
      await expectError(await t.call('POST', '/v1/galleries/other-model/identities/a/faces', { image: 'AAAA' }), 409, 'MODEL_MISMATCH');
      expect((await t.call('POST', '/v1/galleries/other-model/identities/a/faces', { embedding: [1, 0, 0, 0] })).status).toBe(201);
    });
  });

  describe('bulk enrollment', () => {
    it('enrolls many faces in one request, creating identities', async () => {
      await t.call('POST', '/v1/galleries', { name: 'bulk' });
      const faces = [];
      for (let p = 0; p < 20; p++) for (let k = 0; k < 2; k++) faces.push({ identity: `b${p}`, embedding: personVector(p, k) });
      const r = await t.call('POST', '/v1/galleries/bulk/enroll', { faces });
      expect(r.status).toBe(201);
      const body = await json<{ faces: { id: number; identity: string }[]; identitiesCreated: string[] }>(r);
      expect(body.faces).toHaveLength(40);
      expect(body.identitiesCreated).toHaveLength(20);
      expect(await json(await t.call('GET', '/v1/galleries/bulk'))).toMatchObject({ identities: 20, faces: 40 });
    });

    it('all or nothing: one bad embedding or a missing identity writes nothing', async () => {
      await t.call('POST', '/v1/galleries', { name: 'bulk2' });
      const before = await json(await t.call('GET', '/v1/galleries/bulk2'));
      const faces = [{ identity: 'x', embedding: personVector(1) }, { identity: 'y', embedding: [1, 2] }];
      await expectError(await t.call('POST', '/v1/galleries/bulk2/enroll', { faces }), 400, 'DIMENSION_MISMATCH');
      await expectError(
        await t.call('POST', '/v1/galleries/bulk2/enroll', { faces: [{ identity: 'x', embedding: personVector(1) }], createIdentities: false }),
        404,
        'IDENTITY_NOT_FOUND',
      );
      await expectError(await t.call('POST', '/v1/galleries/bulk2/enroll', { faces: [] }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/bulk2/enroll', { faces: [{ identity: 'x' }] }), 400, 'BAD_INPUT');
      expect(await json(await t.call('GET', '/v1/galleries/bulk2'))).toEqual(before);
      expect((await json<{ identities: unknown[] }>(await t.call('GET', '/v1/galleries/bulk2/identities'))).identities).toHaveLength(0);
    });
  });

  describe('identify and verify', () => {
    beforeAll(() => setupGallery('search', 5));

    it('identifies an embedding: the right person first; threshold decides open-set', async () => {
      const r = await t.call('POST', '/v1/galleries/search/identify', { embedding: personVector(3, 7), k: 3, threshold: 0.5 });
      expect(r.status).toBe(200);
      const res = documented(s.identifyResult, await r.json());
      expect(res.candidates).toHaveLength(3);
      expect(res.candidates[0]!.identity).toBe('p3');
      expect(res.decision).toBe('match');
      expect(res.match?.identity).toBe('p3');
      const stranger = documented(s.identifyResult, await json(await t.call('POST', '/v1/galleries/search/identify', { embedding: personVector(99), threshold: 0.5 })));
      expect(stranger.decision).toBe('unknown');
      expect(stranger.match).toBeNull();
    });

    it('identify errors: GALLERY_NOT_FOUND, DIMENSION_MISMATCH, NOT_CALIBRATED, BAD_INPUT', async () => {
      await expectError(await t.call('POST', '/v1/galleries/nope/identify', { embedding: personVector(1) }), 404, 'GALLERY_NOT_FOUND');
      await expectError(await t.call('POST', '/v1/galleries/search/identify', { embedding: [1, 2, 3] }), 400, 'DIMENSION_MISMATCH');
      await expectError(await t.call('POST', '/v1/galleries/search/identify', { embedding: personVector(1), far: 0.001 }), 422, 'NOT_CALIBRATED');
      await expectError(await t.call('POST', '/v1/galleries/search/identify', { embedding: personVector(1), k: 0 }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/search/identify', { embedding: personVector(1), far: 2 }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/search/identify', { embedding: personVector(1), image: 'AAAA' }), 400, 'BAD_INPUT');
    });

    it('identifies by calibrated FAR once the model has thresholds', async () => {
      const pairs = [];
      for (let i = 0; i < 1000; i++) pairs.push({ score: -0.2 + (0.5 * i) / 1000, same: false });
      for (let i = 0; i < 100; i++) pairs.push({ score: 0.6 + (0.3 * i) / 100, same: true });
      await t.store.calibrateModel('mobilefacenet-arcface', pairs, [1e-2, 1e-3]);
      const res = documented(s.identifyResult, await json(await t.call('POST', '/v1/galleries/search/identify', { embedding: personVector(2, 3), far: 0.001 })));
      expect(res.far).toBe(0.001);
      expect(res.threshold).toBeGreaterThan(0.29);
      expect(res.decision).toBe('match');
    });

    it('identifies a batch of embeddings in one request, the same as one by one', async () => {
      const probes = [0, 1, 2, 3, 4].map((p) => personVector(p, 5));
      const r = await t.call('POST', '/v1/galleries/search/identify/batch', { probes, k: 2 });
      expect(r.status).toBe(200);
      const { results } = await json<{ results: z.output<typeof s.identifyResult>[] }>(r);
      expect(results.map((x) => x.candidates[0]!.identity)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
      const single = documented(s.identifyResult, await json(await t.call('POST', '/v1/galleries/search/identify', { embedding: probes[2], k: 2 })));
      expect(results[2]).toEqual(single);
      await expectError(await t.call('POST', '/v1/galleries/search/identify/batch', { probes: [personVector(1), [1, 2]] }), 400, 'DIMENSION_MISMATCH');
    });

    it('verifies two embeddings and an embedding against an identity', async () => {
      const same = documented(s.verifyResult, await json(await t.call('POST', '/v1/verify', { a: personVector(1, 1), b: personVector(1, 2), threshold: 0.5 })));
      expect(same.same).toBe(true);
      expect(same.score).toBeGreaterThan(0.9);
      const diff = documented(s.verifyResult, await json(await t.call('POST', '/v1/verify', { a: personVector(1, 1), b: personVector(2, 1), threshold: 0.5 })));
      expect(diff.same).toBe(false);
      const ref = documented(s.verifyResult, await json(await t.call('POST', '/v1/verify', { a: personVector(4, 3), b: { gallery: 'search', identity: 'p4' } })));
      expect(ref.same).toBeNull();
      expect(ref.score).toBeGreaterThan(0.9);
      expect(ref.faceId).toBeTypeOf('number');
      await expectError(await t.call('POST', '/v1/verify', { a: personVector(1), b: [1, 2] }), 400, 'DIMENSION_MISMATCH');
      await expectError(await t.call('POST', '/v1/verify', { a: personVector(1), b: { gallery: 'search', identity: 'zz' } }), 404, 'IDENTITY_NOT_FOUND');
      await expectError(await t.call('POST', '/v1/verify', { a: personVector(1), b: { gallery: 'zz', identity: 'zz' } }), 404, 'GALLERY_NOT_FOUND');
      await expectError(await t.call('POST', '/v1/verify', { a: personVector(1) }), 400, 'BAD_INPUT');
    });

    it('accepts multipart forms with embeddings as JSON text fields', async () => {
      const form = new FormData();
      form.set('embedding', JSON.stringify(personVector(0, 9)));
      form.set('k', '2');
      const r = await t.call('POST', '/v1/galleries/search/identify', form);
      expect(r.status).toBe(200);
      expect(documented(s.identifyResult, await r.json()).candidates[0]!.identity).toBe('p0');
    });
  });

  describe('bodies, limits and errors', () => {
    beforeAll(() => setupGallery('body', 1));

    const galleryState = async () => [await json(await t.call('GET', '/v1/galleries/body')), await json(await t.call('GET', '/v1/galleries/body/identities'))];

    it('malformed JSON: 400 BAD_JSON, nothing written', async () => {
      const before = await galleryState();
      await expectError(await t.call('POST', '/v1/galleries/body/identities', '{"externalId": "x",', { 'content-type': 'application/json' }), 400, 'BAD_JSON');
      await expectError(await t.call('POST', '/v1/galleries/body/identities', '{"a": NaN}', { 'content-type': 'application/json' }), 400, 'BAD_JSON');
      await expectError(await t.call('POST', '/v1/galleries/body/identities', new Uint8Array([0x7b, 0xff, 0x7d]), { 'content-type': 'application/json' }), 400, 'BAD_JSON');
      await expectError(await t.call('POST', '/v1/galleries/body/identities', '[1,2]', { 'content-type': 'application/json' }), 400, 'BAD_INPUT');
      expect(await galleryState()).toEqual(before);
    });

    it('wrong content type: 415 UNSUPPORTED_MEDIA_TYPE, nothing written', async () => {
      const before = await galleryState();
      await expectError(await t.call('POST', '/v1/galleries/body/identities', 'externalId=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      await expectError(await t.call('POST', '/v1/galleries/body/identities', '{"externalId":"x"}', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      await expectError(await t.call('POST', '/v1/galleries/body/identities', '{"externalId":"x"}', { 'content-type': '' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      const form = new FormData();
      form.set('externalId', 'x');
      await expectError(await t.call('POST', '/v1/galleries/body/identities', form), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect(await galleryState()).toEqual(before);
    });

    it('a 50 MB upload: 413 PAYLOAD_TOO_LARGE, refused from Content-Length before reading, nothing written', async () => {
      const before = await galleryState();
      const big = new Uint8Array(50 * 1024 * 1024);
      const form = new FormData();
      form.set('image', new Blob([big], { type: 'image/jpeg' }), 'big.jpg');
      const t0 = performance.now();
      await expectError(await t.call('POST', '/v1/galleries/body/identities/p0/faces', form), 413, 'PAYLOAD_TOO_LARGE');
      await expectError(await t.call('POST', '/v1/galleries/body/identify', big, { 'content-type': 'application/json', 'content-length': String(big.length) }), 413, 'PAYLOAD_TOO_LARGE');
      // A JSON body over the 1 MiB limit of routes without images.
      await expectError(await t.call('POST', '/v1/galleries/body/identities', { externalId: 'x', metadata: { pad: 'x'.repeat(2 << 20) } }), 413, 'PAYLOAD_TOO_LARGE');
      expect(performance.now() - t0).toBeLessThan(10_000);
      expect(await galleryState()).toEqual(before);
    });

    it('a body without Content-Length over the limit is cut off while streaming', async () => {
      const small = await makeServer({ backend, limits: { jsonBytes: 1000 } });
      try {
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull(ctl) {
            if (sent >= 10) return ctl.close();
            sent++;
            ctl.enqueue(new TextEncoder().encode(' '.repeat(500)));
          },
        });
        const r = await small.app.request('/v1/galleries', {
          method: 'POST',
          headers: { authorization: `Bearer ${small.adminKey}`, 'content-type': 'application/json' },
          body: stream,
          duplex: 'half',
        } as RequestInit);
        await expectError(r, 413, 'PAYLOAD_TOO_LARGE');
        expect(sent).toBeLessThan(10);
      } finally {
        await small.close();
      }
    });

    it('a malformed multipart body: 400 BAD_INPUT', async () => {
      await expectError(await t.call('POST', '/v1/galleries/body/identify', 'garbage', { 'content-type': 'multipart/form-data; boundary=xyz' }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/galleries/body/identify', 'garbage', { 'content-type': 'multipart/form-data' }), 400, 'BAD_INPUT');
    });

    it('identity ids with slashes and spaces work percent-encoded in paths (gallery names are identifiers: src/store/names.ts)', async () => {
      await expectError(await t.call('POST', '/v1/galleries', { name: 'team a/b' }), 400, 'BAD_INPUT');
      const g = 'team-a.b_2';
      expect((await t.call('POST', '/v1/galleries', { name: g })).status).toBe(201);
      expect((await t.call('POST', `/v1/galleries/${g}/identities`, { externalId: 'x/y z' })).status).toBe(201);
      expect(await json(await t.call('GET', `/v1/galleries/${g}/identities/${encodeURIComponent('x/y z')}`))).toMatchObject({ externalId: 'x/y z' });
      expect((await t.call('DELETE', `/v1/galleries/${g}`)).status).toBe(200);
    });

    it('unknown route: 404 NOT_FOUND as JSON', async () => {
      await expectError(await t.call('GET', '/v1/nothing-here'), 404, 'NOT_FOUND');
      await expectError(await t.call('PUT', '/v1/galleries/body'), 404, 'NOT_FOUND');
    });

    it('every response and every log line carries the request id; a valid incoming id is kept', async () => {
      const n0 = t.logs.length;
      const ok = await t.call('GET', '/health', undefined, { 'x-request-id': 'trace-abc.123' });
      expect(ok.headers.get('x-request-id')).toBe('trace-abc.123');
      const bad = await t.call('GET', '/v1/galleries/none', undefined, { 'x-request-id': 'not ok!' });
      const id = bad.headers.get('x-request-id')!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect((await json<{ error: { requestId: string } }>(bad)).error.requestId).toBe(id);
      const lines = t.logs.slice(n0);
      expect(lines.map((l) => l.requestId)).toEqual(['trace-abc.123', id]);
      expect(lines[1]).toMatchObject({ status: 404, code: 'GALLERY_NOT_FOUND', route: '/v1/galleries/:g', level: 'warn' });
      expect(t.logs.every((l) => typeof l.requestId === 'string' && l.requestId.length > 0)).toBe(true);
    });
  });

  describe('createApp options', () => {
    it('serves an in-memory store (keys share the store); refuses an unknown auth mode and bad limits with BAD_INPUT', async () => {
      const mem = await openStore(':memory:');
      try {
        const app = createApp({ store: mem, pipeline: async () => { throw new Error('unused'); }, auth: 'disabled', log: false });
        expect((await app.request('/v1/galleries', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"m"}' })).status).toBe(201);
        expect((await mem.listGalleries()).map((g) => g.name)).toEqual(['m']);
        await app.close();
      } finally {
        await mem.close();
      }
      expect(() => createApp({ store: t.store, pipeline: async () => { throw new Error('unused'); }, auth: 'none' as never })).toThrow(/auth must be/);
      expect(() => createApp({ store: t.store, pipeline: async () => { throw new Error('unused'); }, limits: { jsonBytes: 0 } })).toThrow(/limits.jsonBytes/);
    });
  });

  describe('meta: health, info, metrics, OpenAPI', () => {
    it('health needs no key; info tells version, model and galleries', async () => {
      const h = await t.app.request('/health');
      expect(h.status).toBe(200);
      expect(await h.json()).toEqual({ status: 'ok' });
      const info = await json<{ version: string; model: { id: string; dimension: number }; auth: string; galleries: { name: string }[] }>(await t.call('GET', '/v1/info'));
      expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(info.model).toEqual({ id: 'mobilefacenet-arcface', dimension: 128 });
      expect(info.auth).toBe('keys');
      expect(info.galleries.length).toBeGreaterThan(0);
    });

    it('metrics in Prometheus text format count requests and gallery sizes', async () => {
      await t.call('POST', '/v1/galleries', { name: 'metered' });
      const r = await t.call('GET', '/metrics');
      expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await r.text();
      expect(text).toMatch(/cosface_http_requests_total\{method="POST",route="\/v1\/galleries",status="201"\} \d+/);
      expect(text).toMatch(/cosface_http_request_duration_seconds_bucket\{method="GET",route="\/v1\/galleries\/:g",le="\+Inf"\} \d+/);
      expect(text).toContain('cosface_gallery_faces{gallery="metered"} 0');
      expect(text).toContain('cosface_embed_batch_size_count');
    });

    it('the OpenAPI description lists exactly the app\'s routes, with their error codes', async () => {
      const r = await t.app.request('/openapi.json');
      expect(r.status).toBe(200);
      const doc = (await r.json()) as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, { description: string }>; requestBody?: { content: Record<string, unknown> } }>> };
      expect(doc.openapi).toBe('3.1.0');
      const described = describedRoutes(t.app).map((x) => `${x.method} ${x.path.replace(/:(\w+)/g, '{$1}')}`).sort();
      const inDoc = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)).sort();
      expect(inDoc).toEqual(described);
      // Every route the app answers (besides the catch-all middleware) is described.
      const registered = new Set(t.app.routes.filter((x) => x.path !== '/*' && x.method !== 'ALL').map((x) => `${x.method.toLowerCase()} ${x.path.replace(/:(\w+)/g, '{$1}')}`));
      expect([...registered].sort()).toEqual(described);
      for (const needed of ['post /v1/galleries/{g}/identify', 'post /v1/verify', 'post /v1/embed', 'post /v1/galleries/{g}/enroll', 'get /v1/galleries/{g}/identities']) {
        expect(inDoc).toContain(needed);
      }
      const identify = doc.paths['/v1/galleries/{g}/identify']!.post!;
      expect(Object.keys(identify.requestBody!.content).sort()).toEqual(['application/json', 'multipart/form-data']);
      expect(identify.responses['422']!.description).toContain('NO_FACE');
      expect(identify.responses['413']!.description).toContain('PAYLOAD_TOO_LARGE');
      expect(identify.responses['401']!.description).toContain('UNAUTHORIZED');
      expect(identify.responses['403']!.description).toContain('FORBIDDEN');
      const docs = await t.app.request('/docs');
      expect(docs.headers.get('content-type')).toMatch(/text\/html/);
      expect(await docs.text()).toContain('/v1/galleries/{g}/identify');
    });
  });
});
