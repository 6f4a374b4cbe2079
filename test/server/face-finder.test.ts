// The pipeline queue: photos from concurrent requests are handed over together when the pipeline
// takes batches, one failing photo fails only its own request, and metrics count the batches.
import sharp from 'sharp';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FaceFinder, type PhotoPipeline } from '../../src/server/face-finder.js';
import { Metrics } from '../../src/server/metrics.js';
import { repoRoot } from '../helpers/fixtures.js';
import { realPipeline } from './helpers.js';

let pipeline: PhotoPipeline;
let gray: Buffer;
const face = readFileSync(join(repoRoot, 'test/fixtures/aligned/Abdullah_0001.png'));
beforeAll(async () => {
  pipeline = await realPipeline();
  gray = await sharp({ create: { width: 48, height: 48, channels: 3, background: { r: 90, g: 90, b: 90 } } }).png().toBuffer();
}, 60_000);

describe('FaceFinder', () => {
  it('hands photos that arrive together to a batching pipeline in one call, answers each in order', async () => {
    const calls: number[] = [];
    // The real pipeline behind a batch entry point, as a pipeline with facesInPhotos offers it.
    const batching: PhotoPipeline = {
      facesInPhoto: (p) => pipeline.facesInPhoto(p),
      async facesInPhotos(photos) {
        calls.push(photos.length);
        const out = [];
        for (const p of photos) out.push(await pipeline.facesInPhoto(p).catch((e: Error) => e));
        return out;
      },
    };
    const metrics = new Metrics();
    const finder = new FaceFinder(async () => batching, { windowMs: 20, maxBatch: 3, metrics });
    const truncated = face.subarray(0, 200);
    const results = await Promise.allSettled([face, gray, truncated, face].map((p) => finder.find(p)));
    expect(calls).toEqual([3]); // the fourth came alone and went through facesInPhoto
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[0] as PromiseFulfilledResult<unknown[]>).value).toHaveLength(1);
    expect((results[1] as PromiseFulfilledResult<unknown[]>).value).toHaveLength(0);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'BAD_IMAGE' });
    const text = metrics.render([]);
    expect(text).toContain('cosface_embed_batch_size_count 2');
    expect(text).toContain('cosface_embed_batch_size_sum 4');
    expect(text).toContain('cosface_faces_embedded_total 2');
  }, 60_000);

  it('runs photos one at a time through a pipeline without batches, never two at once', async () => {
    let running = 0;
    let most = 0;
    const single: PhotoPipeline = {
      async facesInPhoto(p) {
        most = Math.max(most, ++running);
        try {
          return await pipeline.facesInPhoto(p);
        } finally {
          running--;
        }
      },
    };
    const metrics = new Metrics();
    const finder = new FaceFinder(async () => single, { metrics });
    const found = await Promise.all([gray, face, gray].map((p) => finder.find(p)));
    expect(found.map((f) => f.length)).toEqual([0, 1, 0]);
    expect(most).toBe(1);
    expect(metrics.render([])).toContain('cosface_embed_batch_size_count 3');
  }, 60_000);

  it('a pipeline that fails to load fails the waiting requests, and the next request tries again', async () => {
    let attempts = 0;
    const finder = new FaceFinder(async () => {
      attempts++;
      if (attempts === 1) throw new Error('no backend');
      return pipeline;
    });
    await expect(finder.find(gray)).rejects.toThrow('no backend');
    await expect(finder.find(gray)).resolves.toEqual([]);
    expect(attempts).toBe(2);
  }, 60_000);
});

describe('FaceFinder under overload', () => {
  it('refuses photos past maxQueue with OVERLOADED at once, and serves the rest', async () => {
    const finder = new FaceFinder(async () => pipeline, { maxQueue: 2 });
    const results = await Promise.allSettled([gray, gray, gray].map((p) => finder.find(p)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'OVERLOADED' });
  }, 60_000);

  it('the API answers 503 OVERLOADED with Retry-After', async () => {
    const { makeServer, expectError } = await import('./helpers.js');
    const t = await makeServer({ batch: { maxQueue: 1 } });
    try {
      await t.call('POST', '/v1/galleries', { name: 'g' });
      const body = { image: gray.toString('base64') };
      const [a, b] = await Promise.all([t.call('POST', '/v1/embed', body), t.call('POST', '/v1/embed', body)]);
      const statuses = [a.status, b.status].sort();
      expect(statuses).toEqual([200, 503]);
      const refused = a.status === 503 ? a : b;
      expect(refused.headers.get('retry-after')).toBe('1');
      await expectError(refused, 503, 'OVERLOADED');
    } finally {
      await t.close();
    }
  }, 60_000);
});
