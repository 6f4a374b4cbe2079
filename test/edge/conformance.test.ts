// One HTTP conformance suite, four runtimes: the same requests against a real process of each
// (`npm run serve:node | serve:bun | serve:deno | serve:workerd`, on loopback, started here with
// PORT=0, COSFACE_ADMIN_KEY and a fresh database), the same assertions, and at the end the same
// status and error code for every request on every runtime. Photos: Node (sharp + WASM workers),
// Bun and Deno (WASM codecs + in-process WASM kernels) run the face pipeline and must find the same
// face with the same embedding; workerd decodes and checks the photo (same BAD_IMAGE /
// IMAGE_TOO_LARGE), then answers PHOTOS_UNAVAILABLE.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTensor, repoRoot } from '../helpers/fixtures.js';
import { RUNTIMES, startRuntime, type RunningRuntime, type RuntimeName } from '../helpers/runtimes.js';

const ADMIN = 'conformance-admin-key-0123456789';
/** Whether the runtime's deployment runs the face pipeline (the others answer PHOTOS_UNAVAILABLE). */
const PHOTOS: Record<RuntimeName, boolean> = { node: true, bun: true, deno: true, workerd: false };
/** Per runtime with photos: the face /v1/embed found in obama-240p.jpg. */
const embedded = new Map<RuntimeName, { box: number[]; embedding: number[] }>();

const servers = new Map<RuntimeName, RunningRuntime>();
/** Per runtime, one line per request: "step: status code". Compared across runtimes at the end. */
const transcripts = new Map<RuntimeName, string[]>();

beforeAll(async () => {
  // All four start at once: startup (workerd's bundling, Node's model compilation) overlaps.
  const started = await Promise.allSettled(RUNTIMES.map((name) => startRuntime(name, { adminKey: ADMIN, timeoutMs: 120_000 })));
  started.forEach((r, i) => {
    if (r.status === 'fulfilled') servers.set(RUNTIMES[i]!, r.value);
  });
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}, 150_000);

afterAll(async () => {
  await Promise.all([...servers.values()].map((s) => s.stop()));
});

const vec = (p: number, s = 0): number[] => {
  const base = randomTensor(128, 1000 + p);
  const noise = randomTensor(128, 50_000 + p * 100 + s, 0.1);
  return Array.from(base, (x, i) => x + noise[i]!);
};

/** A PNG header claiming 60000 x 60000 RGB pixels over a few compressed rows: a decompression bomb. */
function bombPng(): Uint8Array {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Uint8Array) => {
    let c = 0xffffffff;
    for (const x of b) c = table[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Uint8Array) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    Buffer.from(data).copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(60_000, 0);
  ihdr.writeUInt32BE(60_000, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(4 * 180_001))), chunk('IEND', new Uint8Array(0))]);
}

const photo = (f: string) => new Uint8Array(readFileSync(join(repoRoot, 'test/fixtures/photos', f)));

function client(rt: RuntimeName) {
  const log = (step: string, status: number, code?: string) => {
    if (!transcripts.has(rt)) transcripts.set(rt, []);
    transcripts.get(rt)!.push(`${step}: ${status}${code ? ' ' + code : ''}`);
  };
  /** A request; JSON bodies unless a FormData or raw string; the admin key unless headers say otherwise. */
  async function call(step: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, record = true) {
    const h: Record<string, string> = { authorization: `Bearer ${ADMIN}`, ...headers };
    for (const k of Object.keys(h)) if (h[k] === '') delete h[k];
    let payload: BodyInit | undefined;
    if (body instanceof FormData || typeof body === 'string') payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const res = await fetch(servers.get(rt)!.url + path, { method, headers: h, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* not JSON */
    }
    const code = (json.error as { code?: string } | undefined)?.code;
    if (record) log(step, res.status, code);
    return { status: res.status, json, code, headers: res.headers };
  }
  /** Asserts an error status and code (and that the body names the request id), recording it. */
  async function fails(step: string, status: number, code: string, method: string, path: string, body?: unknown, headers?: Record<string, string>) {
    const r = await call(step, method, path, body, headers);
    expect(`${r.status} ${r.code}`, `${rt} ${step}: ${JSON.stringify(r.json)}`).toBe(`${status} ${code}`);
    expect((r.json.error as { requestId?: string }).requestId).toBe(r.headers.get('x-request-id'));
    return r;
  }
  const form = (fields: Record<string, Uint8Array | string>) => {
    const f = new FormData();
    for (const [k, v] of Object.entries(fields)) {
      if (typeof v === 'string') f.set(k, v);
      else f.set(k, new Blob([v as BlobPart], { type: 'application/octet-stream' }), `${k}.bin`);
    }
    return f;
  };
  return { call, fails, form };
}

for (const rt of RUNTIMES) {
  describe(`${rt}`, () => {
    const { call, fails, form } = client(rt);

    it('health answers without a key; everything else needs a valid Bearer key (UNAUTHORIZED)', async () => {
      const h = await call('health', 'GET', '/health', undefined, { authorization: '' });
      expect([h.status, h.json]).toEqual([200, { status: 'ok' }]);
      await fails('no key', 401, 'UNAUTHORIZED', 'GET', '/v1/galleries', undefined, { authorization: '' });
      await fails('unknown key', 401, 'UNAUTHORIZED', 'GET', '/v1/galleries', undefined, { authorization: `Bearer ${'x'.repeat(40)}` });
      await fails('malformed header', 401, 'UNAUTHORIZED', 'GET', '/v1/galleries', undefined, { authorization: 'Basic abc' });
      const info = await call('info', 'GET', '/v1/info');
      expect(info.status).toBe(200);
      expect(info.json).toMatchObject({ version: expect.any(String), model: { id: 'mobilefacenet-arcface', dimension: 128 }, auth: 'keys' });
    });

    it('galleries: create, read, list, refuse duplicates and bad bodies, 404 for unknown ones', async () => {
      const c = await call('create gallery', 'POST', '/v1/galleries', { name: 'people' });
      expect(c.status).toBe(201);
      expect(c.json).toMatchObject({ name: 'people', modelId: 'mobilefacenet-arcface', dimension: 128, identities: 0, faces: 0 });
      expect((await call('create gallery 2', 'POST', '/v1/galleries', { name: 'others' })).status).toBe(201);
      await fails('duplicate gallery', 409, 'GALLERY_EXISTS', 'POST', '/v1/galleries', { name: 'people' });
      await fails('empty name', 400, 'BAD_INPUT', 'POST', '/v1/galleries', { name: '' });
      await fails('unknown field', 400, 'BAD_INPUT', 'POST', '/v1/galleries', { name: 'x', colour: 'red' });
      await fails('bad json', 400, 'BAD_JSON', 'POST', '/v1/galleries', '{"name": ', { 'content-type': 'application/json' });
      await fails('wrong media type', 415, 'UNSUPPORTED_MEDIA_TYPE', 'POST', '/v1/galleries', 'name=x', { 'content-type': 'text/plain' });
      const list = await call('list galleries', 'GET', '/v1/galleries');
      expect((list.json.galleries as { name: string }[]).map((g) => g.name)).toEqual(['others', 'people']);
      expect((await call('get gallery', 'GET', '/v1/galleries/people')).json).toMatchObject({ name: 'people' });
      await fails('unknown gallery', 404, 'GALLERY_NOT_FOUND', 'GET', '/v1/galleries/nope');
      await fails('unknown route', 404, 'NOT_FOUND', 'GET', '/v1/nothing-here');
    });

    it('identities: create, read, update, page, delete; duplicates and unknown ones refused', async () => {
      for (let p = 0; p < 6; p++) expect((await call(`create p${p}`, 'POST', '/v1/galleries/people/identities', { externalId: `p${p}`, displayName: `Person ${p}` })).status).toBe(201);
      await fails('duplicate identity', 409, 'DUPLICATE_IDENTITY', 'POST', '/v1/galleries/people/identities', { externalId: 'p1' });
      const up = await call('patch identity', 'PATCH', '/v1/galleries/people/identities/p1', { displayName: 'One', metadata: { team: 'a' } });
      expect(up.json).toMatchObject({ externalId: 'p1', displayName: 'One', metadata: { team: 'a' } });
      const page = await call('page', 'GET', '/v1/galleries/people/identities?limit=2&offset=1');
      expect((page.json.identities as { externalId: string }[]).map((i) => i.externalId)).toEqual(['p1', 'p2']);
      await fails('bad limit', 400, 'BAD_INPUT', 'GET', '/v1/galleries/people/identities?limit=abc');
      expect((await call('delete p5', 'DELETE', '/v1/galleries/people/identities/p5')).status).toBe(200);
      await fails('deleted identity', 404, 'IDENTITY_NOT_FOUND', 'GET', '/v1/galleries/people/identities/p5');
      await fails('identity in unknown gallery', 404, 'GALLERY_NOT_FOUND', 'POST', '/v1/galleries/nope/identities', { externalId: 'a' });
    });

    it('faces by embedding: added, listed, deleted; wrong length, zero and NaN-like vectors refused with their codes', async () => {
      for (let p = 0; p < 5; p++) {
        for (let s = 0; s < 2; s++) {
          const r = await call(`face p${p}.${s}`, 'POST', `/v1/galleries/people/identities/p${p}/faces`, { embedding: vec(p, s) });
          expect(r.status).toBe(201);
          expect(r.json.face).toMatchObject({ identity: `p${p}` });
        }
      }
      const extra = await call('extra face', 'POST', '/v1/galleries/people/identities/p4/faces', { embedding: vec(4, 9), quality: 0.5 });
      const faceId = (extra.json.face as { id: number }).id;
      const listed = await call('list faces', 'GET', '/v1/galleries/people/identities/p4/faces');
      expect((listed.json.faces as { id: number }[]).map((f) => f.id)).toContain(faceId);
      expect((await call('delete face', 'DELETE', `/v1/galleries/people/faces/${faceId}`)).status).toBe(200);
      await fails('deleted face', 404, 'FACE_NOT_FOUND', 'DELETE', `/v1/galleries/people/faces/${faceId}`);
      await fails('wrong length', 400, 'DIMENSION_MISMATCH', 'POST', '/v1/galleries/people/identities/p0/faces', { embedding: [1, 2, 3] });
      await fails('zero vector', 400, 'BAD_INPUT', 'POST', '/v1/galleries/people/identities/p0/faces', { embedding: new Array(128).fill(0) });
      await fails('strings', 400, 'BAD_INPUT', 'POST', '/v1/galleries/people/identities/p0/faces', { embedding: ['a'] });
      await fails('face for unknown identity', 404, 'IDENTITY_NOT_FOUND', 'POST', '/v1/galleries/people/identities/nobody/faces', { embedding: vec(0) });
      const bulk = await call('enroll', 'POST', '/v1/galleries/others/enroll', { faces: [0, 1, 2].map((p) => ({ identity: `o${p}`, embedding: vec(100 + p) })) });
      expect(bulk.status).toBe(201);
      expect((await call('gallery counts', 'GET', '/v1/galleries/people')).json).toMatchObject({ identities: 5, faces: 10 });
    });

    it('identify: the right person first, open-set decisions, batches; bad probes refused', async () => {
      for (let p = 0; p < 5; p++) {
        const r = await call(`identify p${p}`, 'POST', '/v1/galleries/people/identify', { embedding: vec(p, 7), k: 3 });
        expect(r.status).toBe(200);
        const c = r.json.candidates as { identity: string; score: number }[];
        expect(c).toHaveLength(3);
        expect(c[0]!.identity).toBe(`p${p}`);
        expect(c[0]!.score).toBeGreaterThan(0.9);
      }
      const yes = await call('identify threshold', 'POST', '/v1/galleries/people/identify', { embedding: vec(2, 8), threshold: 0.5 });
      expect(yes.json).toMatchObject({ decision: 'match', match: { identity: 'p2' } });
      const no = await call('identify stranger', 'POST', '/v1/galleries/people/identify', { embedding: vec(77), threshold: 0.5 });
      expect(no.json).toMatchObject({ decision: 'unknown', match: null });
      const batch = await call('identify batch', 'POST', '/v1/galleries/people/identify/batch', { probes: [vec(0, 5), vec(3, 5)], k: 1 });
      expect((batch.json.results as { candidates: { identity: string }[] }[]).map((r) => r.candidates[0]!.identity)).toEqual(['p0', 'p3']);
      await fails('identify wrong length', 400, 'DIMENSION_MISMATCH', 'POST', '/v1/galleries/people/identify', { embedding: [0.5, 0.5] });
      await fails('identify not calibrated', 422, 'NOT_CALIBRATED', 'POST', '/v1/galleries/people/identify', { embedding: vec(0), far: 0.001 });
      await fails('identify unknown gallery', 404, 'GALLERY_NOT_FOUND', 'POST', '/v1/galleries/nope/identify', { embedding: vec(0) });
      await fails('batch with one bad probe', 400, 'DIMENSION_MISMATCH', 'POST', '/v1/galleries/people/identify/batch', { probes: [vec(0), [1, 2]] });
    });

    it('verify: two embeddings, or one against an enrolled identity', async () => {
      const same = await call('verify same', 'POST', '/v1/verify', { a: vec(1, 3), b: vec(1, 4), threshold: 0.5 });
      expect(same.json).toMatchObject({ same: true });
      const diff = await call('verify different', 'POST', '/v1/verify', { a: vec(1, 3), b: vec(2, 3), threshold: 0.5 });
      expect(diff.json).toMatchObject({ same: false });
      const ref = await call('verify identity', 'POST', '/v1/verify', { a: vec(3, 6), b: { gallery: 'people', identity: 'p3' }, threshold: 0.5 });
      expect(ref.json).toMatchObject({ same: true, faceId: expect.any(Number) });
      await fails('verify unknown identity', 404, 'IDENTITY_NOT_FOUND', 'POST', '/v1/verify', { a: vec(3), b: { gallery: 'people', identity: 'nobody' } });
      await fails('verify lengths differ', 400, 'DIMENSION_MISMATCH', 'POST', '/v1/verify', { a: vec(3), b: [1, 2, 3] });
    });

    it('faces by photo: a bad photo is BAD_IMAGE and a PNG bomb IMAGE_TOO_LARGE everywhere; a real photo is embedded where the pipeline runs', async () => {
      await fails('bad photo', 422, 'BAD_IMAGE', 'POST', '/v1/galleries/people/identities/p0/faces', form({ image: new TextEncoder().encode('not a photo at all') }));
      await fails('truncated photo', 422, 'BAD_IMAGE', 'POST', '/v1/embed', form({ image: photo('obama-240p.jpg').subarray(0, 3000) }));
      await fails('bomb png', 413, 'IMAGE_TOO_LARGE', 'POST', '/v1/galleries/people/identify', form({ image: bombPng() }));
      const r = await call('real photo', 'POST', '/v1/galleries/people/identities/p0/faces', form({ image: photo('obama-240p.jpg') }), {}, false);
      const e = await call('embed photo', 'POST', '/v1/embed', form({ image: photo('obama-240p.jpg') }), {}, false);
      if (PHOTOS[rt]) {
        expect(r.status, JSON.stringify(r.json)).toBe(201);
        expect(r.json.facesInPhoto).toBe(1);
        expect(e.status).toBe(200);
        const faces = e.json.faces as { box: number[]; embedding: number[] }[];
        expect(faces).toHaveLength(1);
        embedded.set(rt, faces[0]!);
      } else {
        expect(`${r.status} ${r.code}`).toBe('501 PHOTOS_UNAVAILABLE');
        expect(`${e.status} ${e.code}`).toBe('501 PHOTOS_UNAVAILABLE');
      }
    }, 90_000);

    it('API keys: a gallery key works on its gallery only (FORBIDDEN elsewhere) and goes with its gallery', async () => {
      const k = await call('create key', 'POST', '/v1/keys', { name: 'others only', gallery: 'others' });
      expect(k.status).toBe(201);
      const key = k.json.key as string;
      const scoped = { authorization: `Bearer ${key}` };
      expect((await call('scoped read', 'GET', '/v1/galleries/others', undefined, scoped)).status).toBe(200);
      await fails('scoped elsewhere', 403, 'FORBIDDEN', 'GET', '/v1/galleries/people', undefined, scoped);
      await fails('scoped admin route', 403, 'FORBIDDEN', 'POST', '/v1/galleries', { name: 'x' }, scoped);
      expect((await call('delete gallery', 'DELETE', '/v1/galleries/others')).status).toBe(200);
      await fails('key of deleted gallery', 401, 'UNAUTHORIZED', 'GET', '/v1/galleries', undefined, scoped);
      await fails('deleted gallery', 404, 'GALLERY_NOT_FOUND', 'GET', '/v1/galleries/others');
    });
  });
}

describe('all four runtimes', () => {
  it('answered every request with the same status and error code as Node', () => {
    const node = transcripts.get('node');
    expect(node?.length).toBeGreaterThan(60);
    for (const rt of RUNTIMES) expect(transcripts.get(rt), rt).toEqual(node);
  });

  it('found the same face in a photo with the same embedding where photos run (box within 2 px, cosine >= 0.99 to Node)', () => {
    const ref = embedded.get('node')!;
    expect(ref).toBeDefined();
    for (const rt of RUNTIMES.filter((r) => PHOTOS[r] && r !== 'node')) {
      const f = embedded.get(rt)!;
      f.box.forEach((v, i) => expect(Math.abs(v - ref.box[i]!), `${rt} box[${i}]`).toBeLessThanOrEqual(2));
      const cos = f.embedding.reduce((sum, v, i) => sum + v * ref.embedding[i]!, 0);
      expect(cos, rt).toBeGreaterThanOrEqual(0.99);
    }
  });
});
