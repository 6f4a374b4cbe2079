// The HTTP side of de-duplication: GET /v1/galleries/:g/duplicates (identities enrolled twice),
// POST /v1/dedupe as a job with GET /v1/jobs/:id (progress, then the result), admin-only, in the
// OpenAPI description; bad requests answered with their codes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/server/server.js';
import { repoRoot } from '../helpers/fixtures.js';
import { expectError, json, makeServer, personVector, type TestServer } from './helpers.js';

let t: TestServer;
beforeAll(async () => {
  t = await makeServer();
  await t.call('POST', '/v1/galleries', { name: 'staff', dimension: 128, modelId: 'test-model' });
  for (const id of ['ann', 'anne', 'bob']) await t.call('POST', '/v1/galleries/staff/identities', { externalId: id, displayName: id.toUpperCase() });
  // ann and anne are one person enrolled twice (person 1), bob is person 2.
  const add = (id: string, v: number[]) => t.call('POST', `/v1/galleries/staff/identities/${id}/faces`, { embedding: v });
  await add('ann', personVector(1, 1));
  await add('ann', personVector(1, 2));
  await add('anne', personVector(1, 3));
  await add('bob', personVector(2, 1));
}, 60_000);
afterAll(async () => {
  await t?.close();
});

interface Pair {
  a: { identity: string; displayName: string | null; faceId: number };
  b: { identity: string; displayName: string | null; faceId: number };
  score: number;
}

describe('GET /v1/galleries/:g/duplicates', () => {
  it('lists the identities whose templates match above the threshold, best first', async () => {
    const r = await json<{ pairs: Pair[]; threshold: number; far: number | null; facesSearched: number }>(await t.call('GET', '/v1/galleries/staff/duplicates?threshold=0.5'));
    expect(r.threshold).toBe(0.5);
    expect(r.facesSearched).toBe(4);
    expect(r.pairs.map((p) => [p.a.identity, p.b.identity])).toEqual([['ann', 'anne']]);
    expect(r.pairs[0]!.a.displayName).toBe('ANN');
    expect(r.pairs[0]!.score).toBeGreaterThan(0.5);
    // A low enough threshold pairs everyone, best first.
    const all = await json<{ pairs: Pair[] }>(await t.call('GET', '/v1/galleries/staff/duplicates?threshold=-1'));
    expect(all.pairs).toHaveLength(3);
    expect(all.pairs[0]!.score).toBeGreaterThanOrEqual(all.pairs[1]!.score);
    expect(all.pairs[1]!.score).toBeGreaterThanOrEqual(all.pairs[2]!.score);
  });

  it('needs a calibration for the default FAR, a known gallery, a key for that gallery, a numeric threshold', async () => {
    await expectError(await t.call('GET', '/v1/galleries/staff/duplicates'), 422, 'NOT_CALIBRATED');
    await expectError(await t.call('GET', '/v1/galleries/nope/duplicates?threshold=0.5'), 404, 'GALLERY_NOT_FOUND');
    await expectError(await t.call('GET', '/v1/galleries/staff/duplicates?threshold=high'), 400, 'BAD_INPUT');
    await expectError(await t.call('GET', '/v1/galleries/staff/duplicates?threshold=0.5&far=0.001'), 400, 'BAD_INPUT');
    await t.call('POST', '/v1/galleries', { name: 'other', dimension: 128, modelId: 'test-model' });
    const other = (await createApiKey(t.store, { gallery: 'other' })).key;
    await expectError(await t.call('GET', '/v1/galleries/staff/duplicates?threshold=0.5', undefined, { authorization: `Bearer ${other}` }), 403, 'FORBIDDEN');
  });
});

interface Job {
  id: number;
  status: string;
  done: number;
  total: number | null;
  result: { photos: number; faces: number; people: { id: string; faces: { photo: string; box: number[] }[] }[]; nearDuplicates: string[][]; library: { embedded: number } } | null;
  error: string | null;
}

describe('POST /v1/dedupe and GET /v1/jobs/:id', () => {
  it('runs a de-duplication of server folders as a job and reports its result; a second job embeds nothing', async () => {
    const paths = ['biden', 'obama'].map((p) => join(repoRoot, 'examples/gallery', p));
    const r = await t.call('POST', '/v1/dedupe', { paths });
    expect(r.status).toBe(202);
    const job = await json<Job>(r);
    expect(r.headers.get('location')).toBe(`/v1/jobs/${job.id}`);
    expect(['queued', 'running']).toContain(job.status);
    await t.app.dedupeJobs!.idle();
    const done = await json<Job>(await t.call('GET', `/v1/jobs/${job.id}`));
    expect(done.error).toBeNull();
    expect(done.status).toBe('done');
    expect(done).toMatchObject({ done: 4, total: 4 });
    expect(done.result!.photos).toBe(4);
    expect(done.result!.people.map((p) => p.faces.map((f) => f.photo.split('/').slice(-2).join('/')).sort())).toEqual(
      expect.arrayContaining([
        ['biden/biden.jpg', 'biden/biden2.jpg'],
        ['obama/obama.jpg', 'obama/obama2.jpg'],
      ]),
    );
    expect(done.result!.library.embedded).toBe(4);
    const again = await json<Job>(await t.call('POST', '/v1/dedupe', { paths, threshold: 0.4 }));
    await t.app.dedupeJobs!.idle();
    const second = await json<Job>(await t.call('GET', `/v1/jobs/${again.id}`));
    expect(second.status).toBe('done');
    expect(second.result!.library.embedded).toBe(0);
  }, 120_000);

  it('clusters uploaded embeddings (computed by the client): people, the cannot-link rule, nothing stored', async () => {
    const faces = [
      { photo: 'a.jpg', box: [1, 2, 3, 4], embedding: personVector(1, 1) },
      { photo: 'b.jpg', embedding: personVector(1, 2) },
      { photo: 'c.jpg', embedding: personVector(1, 3) },
      { photo: 'c.jpg', embedding: personVector(1, 4) }, // the same person twice in one photo: one of them stays out
      { photo: 'b.jpg', embedding: personVector(2, 1) },
      { photo: 'd.jpg', embedding: personVector(2, 2) },
      { photo: 'e.jpg', embedding: personVector(3, 1) },
    ];
    const job = await json<Job>(await t.call('POST', '/v1/dedupe', { faces, threshold: 0.5 }));
    await t.app.dedupeJobs!.idle();
    const r = await json<Job & { result: { unclustered: { photo: string }[] } }>(await t.call('GET', `/v1/jobs/${job.id}`));
    expect(r.status).toBe('done');
    expect(r).toMatchObject({ done: 7, total: 7 });
    expect(r.result).toMatchObject({ photos: 5, faces: 7, nearDuplicates: [] });
    const people = r.result!.people.map((p) => p.faces.map((f) => f.photo));
    expect(people[0]).toHaveLength(3);
    expect(new Set(people[0]).size).toBe(3); // a, b and one face of c
    expect(people[1]).toEqual(['b.jpg', 'd.jpg']);
    expect(r.result!.people[0]!.faces.find((f) => f.photo === 'a.jpg')!.box).toEqual([1, 2, 3, 4]);
    expect(r.result!.unclustered.map((f) => f.photo).sort()).toEqual(['c.jpg', 'e.jpg']);
    await expectError(await t.call('POST', '/v1/dedupe', { faces: [{ photo: 'x', embedding: [1, 2, 3] }] }), 400, 'DIMENSION_MISMATCH');
    await expectError(await t.call('POST', '/v1/dedupe', { faces: [{ photo: 'x', embedding: new Array(128).fill(0) }] }), 400, 'BAD_INPUT');
    await expectError(await t.call('POST', '/v1/dedupe', { faces, paths: [repoRoot] }), 400, 'BAD_INPUT');
    await expectError(await t.call('POST', '/v1/dedupe', {}), 400, 'BAD_INPUT');
  });

  it('refuses missing folders, bad bodies, unknown jobs and keys that are not admin keys', async () => {
    await expectError(await t.call('POST', '/v1/dedupe', { paths: [join(repoRoot, 'no-such-folder')] }), 400, 'BAD_INPUT');
    await expectError(await t.call('POST', '/v1/dedupe', { paths: [] }), 400, 'BAD_INPUT');
    await expectError(await t.call('POST', '/v1/dedupe', { paths: ['x'], threshold: 3 }), 400, 'BAD_INPUT');
    await expectError(await t.call('POST', '/v1/dedupe', { paths: [repoRoot], far: 1e-4 }), 422, 'NOT_CALIBRATED');
    await expectError(await t.call('GET', '/v1/jobs/999999'), 404, 'NOT_FOUND');
    await expectError(await t.call('GET', '/v1/jobs/abc'), 400, 'BAD_INPUT');
    const scoped = (await createApiKey(t.store, { gallery: 'staff' })).key;
    await expectError(await t.call('POST', '/v1/dedupe', { paths: [repoRoot] }, { authorization: `Bearer ${scoped}` }), 403, 'FORBIDDEN');
    await expectError(await t.call('GET', '/v1/jobs/1', undefined, { authorization: `Bearer ${scoped}` }), 403, 'FORBIDDEN');
  });

  it('a folder without photos makes a failed job that says why', async () => {
    const empty = join(t.dir, 'empty');
    mkdirSync(empty);
    writeFileSync(join(empty, 'readme.txt'), 'nothing to see');
    const job = await json<Job>(await t.call('POST', '/v1/dedupe', { paths: [empty] }));
    await t.app.dedupeJobs!.idle();
    const r = await json<Job>(await t.call('GET', `/v1/jobs/${job.id}`));
    expect(r.status).toBe('failed');
    expect(r.error).toMatch(/^BAD_INPUT: no photos .*readme.txt: not an image/);
  });

  it('is in the OpenAPI description', async () => {
    const doc = await json<{ paths: Record<string, Record<string, unknown>> }>(await t.call('GET', '/v1/openapi.json'));
    expect(Object.keys(doc.paths['/v1/dedupe']!)).toContain('post');
    expect(Object.keys(doc.paths['/v1/jobs/{id}']!)).toContain('get');
    expect(Object.keys(doc.paths['/v1/galleries/{g}/duplicates']!)).toContain('get');
  });
});
