// Image routes with the real face pipeline: embed, enroll and identify from photos (multipart and
// base64), and the bad images (no face, truncated JPEG, not an image) leave the data unchanged.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';
import { BACKENDS } from '../helpers/backends.js';
import { expectError, json, makeServer, type TestServer } from './helpers.js';

const aligned = (f: string) => readFileSync(join(repoRoot, 'test/fixtures/aligned', f));
const photo = (f: string) => readFileSync(join(repoRoot, 'test/fixtures/photos', f));
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

function form(fields: Record<string, string | Uint8Array>): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') f.set(k, v);
    else f.set(k, new Blob([v as BlobPart], { type: 'image/png' }), `${k}.png`);
  }
  return f;
}

describe.each(BACKENDS)('image routes on %s', (backend) => {
  let t: TestServer;
  let gray: Buffer;
  beforeAll(async () => {
    t = await makeServer({ backend });
    gray = await sharp({ create: { width: 96, height: 96, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toBuffer();
    await t.call('POST', '/v1/galleries', { name: 'photos' });
    for (const id of ['sorkin', 'gul', 'brody']) await t.call('POST', '/v1/galleries/photos/identities', { externalId: id });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
  });

  /** What a client can see of the gallery. */
  const state = async () => [
    await json(await t.call('GET', '/v1/galleries/photos')),
    await json(await t.call('GET', '/v1/galleries/photos/identities')),
    await json(await t.call('GET', '/v1/galleries/photos/identities/sorkin/faces')),
  ];

  describe('image routes', () => {
    it('embed: faces with box, landmarks, quality and a unit 128-d embedding; multipart and base64 agree', async () => {
      const r = await t.call('POST', '/v1/embed', form({ image: aligned('Adrien_Brody_0002.png') }));
      expect(r.status).toBe(200);
      const body = await json<{ model: string; faces: { box: number[]; landmarks: number[][]; quality: number; embedding: number[] }[] }>(r);
      expect(body.model).toBe('mobilefacenet-arcface');
      expect(body.faces).toHaveLength(1);
      const f = body.faces[0]!;
      expect(f.box).toHaveLength(4);
      expect(f.landmarks).toHaveLength(5);
      expect(f.quality).toBeGreaterThan(0);
      expect(Math.hypot(...f.embedding)).toBeCloseTo(1, 4);
      const viaJson = await json<typeof body>(await t.call('POST', '/v1/embed', { image: `data:image/png;base64,${b64(aligned('Adrien_Brody_0002.png'))}` }));
      expect(viaJson.faces[0]!.embedding).toEqual(f.embedding);
    }, 60_000);

    it('adds faces from images (multipart and base64) and identifies another photo of the same person', async () => {
      const r1 = await t.call('POST', '/v1/galleries/photos/identities/sorkin/faces', form({ image: aligned('Aaron_Sorkin_0001.png') }));
      expect(r1.status).toBe(201);
      const added = await json<{ face: { box: { width: number } | null; photoHash: string | null; keypoints: unknown[] }; facesInPhoto: number }>(r1);
      expect(added.facesInPhoto).toBe(1);
      expect(added.face.box!.width).toBeGreaterThan(40);
      expect(added.face.photoHash).toMatch(/^[0-9a-f]{64}$/);
      expect(added.face.keypoints).toHaveLength(5);
      expect((await t.call('POST', '/v1/galleries/photos/identities/gul/faces', { image: b64(aligned('Abdullah_Gul_0001.png')) })).status).toBe(201);
      expect((await t.call('POST', '/v1/galleries/photos/identities/brody/faces', form({ image: aligned('Adrien_Brody_0002.png') }))).status).toBe(201);

      const r = await t.call('POST', '/v1/galleries/photos/identify', form({ image: aligned('Aaron_Sorkin_0002.png'), k: '3' }));
      expect(r.status).toBe(200);
      const res = await json<{ faces: { face: { box: number[] }; result: { candidates: { identity: string; score: number }[] } }[]; facesInPhoto: number }>(r);
      expect(res.facesInPhoto).toBe(1);
      const c = res.faces[0]!.result.candidates;
      expect(c.map((x) => x.identity)).toEqual(expect.arrayContaining(['sorkin', 'gul', 'brody']));
      expect(c[0]!.identity).toBe('sorkin');
      expect(c[0]!.score).toBeGreaterThan(c[1]!.score + 0.1);
    }, 90_000);

    it('verifies two images, and an image against an enrolled identity', async () => {
      const two = await json<{ score: number; faces: { a: unknown; b: unknown } }>(
        await t.call('POST', '/v1/verify', form({ a: aligned('Adrien_Brody_0002.png'), b: aligned('Adrien_Brody_0003.png') })),
      );
      expect(two.faces.a).toBeDefined();
      const other = await json<{ score: number }>(await t.call('POST', '/v1/verify', { a: b64(aligned('Adrien_Brody_0003.png')), b: { gallery: 'photos', identity: 'gul' } }));
      const same = await json<{ score: number }>(await t.call('POST', '/v1/verify', { a: b64(aligned('Adrien_Brody_0003.png')), b: { gallery: 'photos', identity: 'brody' } }));
      expect(two.score).toBeGreaterThan(other.score + 0.1);
      expect(same.score).toBeGreaterThan(other.score + 0.1);
    }, 90_000);

    it('an image with no face: 422 NO_FACE for enroll, identify and verify; embed answers an empty list; nothing written', async () => {
      const before = await state();
      await expectError(await t.call('POST', '/v1/galleries/photos/identities/sorkin/faces', form({ image: gray })), 422, 'NO_FACE');
      await expectError(await t.call('POST', '/v1/galleries/photos/identify', { image: b64(gray) }), 422, 'NO_FACE');
      await expectError(await t.call('POST', '/v1/verify', { a: b64(gray), b: { gallery: 'photos', identity: 'sorkin' } }), 422, 'NO_FACE');
      await expectError(
        await t.call('POST', '/v1/galleries/photos/enroll', { faces: [{ identity: 'new-one', image: b64(aligned('Abel_Pacheco_0001.png')) }, { identity: 'sorkin', image: b64(gray) }] }),
        422,
        'NO_FACE',
      );
      expect(await json(await t.call('POST', '/v1/embed', { image: b64(gray) }))).toEqual({ model: 'mobilefacenet-arcface', faces: [] });
      expect(await state()).toEqual(before);
    }, 90_000);

    it('a truncated JPEG, bytes that are no image, and bad base64: BAD_IMAGE / BAD_INPUT; nothing written', async () => {
      const before = await state();
      const jpeg = photo('obama-240p.jpg');
      const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
      const e = await expectError(await t.call('POST', '/v1/galleries/photos/identities/sorkin/faces', form({ image: truncated })), 422, 'BAD_IMAGE');
      expect(e.error.message).toMatch(/truncated|corrupt/);
      await expectError(await t.call('POST', '/v1/galleries/photos/identify', { image: b64(truncated) }), 422, 'BAD_IMAGE');
      await expectError(await t.call('POST', '/v1/embed', { image: b64(new TextEncoder().encode('hello, not an image')) }), 422, 'BAD_IMAGE');
      await expectError(await t.call('POST', '/v1/embed', { image: 'not base64 at all!' }), 400, 'BAD_INPUT');
      await expectError(await t.call('POST', '/v1/embed', form({ picture: aligned('Aaron_Sorkin_0001.png') })), 400, 'BAD_INPUT');
      expect(await state()).toEqual(before);
    }, 60_000);

    it('bulk enrollment from images, and the pipeline metrics count the faces', async () => {
      const r = await t.call('POST', '/v1/galleries/photos/enroll', {
        faces: [
          { identity: 'pacheco', image: b64(aligned('Abel_Pacheco_0001.png')) },
          { identity: 'tamblyn', image: b64(aligned('Amber_Tamblyn_0001.png')) },
        ],
      });
      expect(r.status).toBe(201);
      expect((await json<{ identitiesCreated: string[] }>(r)).identitiesCreated).toEqual(['pacheco', 'tamblyn']);
      const res = await json<{ faces: { result: { candidates: { identity: string }[] } }[] }>(
        await t.call('POST', '/v1/galleries/photos/identify', { image: b64(aligned('Amber_Tamblyn_0002.png')) }),
      );
      expect(res.faces[0]!.result.candidates[0]!.identity).toBe('tamblyn');
      const metrics = await (await t.call('GET', '/metrics')).text();
      const embedded = Number(/cosface_faces_embedded_total (\d+)/.exec(metrics)![1]);
      expect(embedded).toBeGreaterThanOrEqual(10);
    }, 90_000);
  });
});
