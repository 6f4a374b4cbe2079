// `cosface serve --model`: a server embedding images with a user's ONNX model (a small IResNet,
// 512-d) makes 512-d galleries by default, enrolls and identifies images with it, checks
// embeddings against the gallery's 512 dimensions, and reports the model on /v1/info.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelIdOf } from '../../src/import/model-metadata.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { parseServeArgs } from '../../src/server/main.js';
import { buildIResNet } from '../helpers/iresnet-onnx.js';
import { repoRoot } from '../helpers/fixtures.js';
import { tempDir } from '../store/helpers.js';

describe('serve --model <512-d onnx>', () => {
  let dir: string;
  let model: string;
  let server: RunningServer;

  beforeAll(async () => {
    dir = tempDir('serve-model');
    model = join(dir, 'iresnet-small.onnx');
    writeFileSync(model, buildIResNet({ layers: [1, 1, 1, 1], widths: [16, 16, 32, 32], features: 512, normalise: true, seed: 22 }).bytes);
    const args = parseServeArgs(['--db', join(dir, 's.db'), '--port', '0', '--no-auth', '--backend', 'wasm', '--model', model, '--input-std', '1']);
    server = await startServer({ ...args, notice: () => undefined, log: false });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const post = async (path: string, body: unknown) => {
    const r = await server.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };

  it('creates 512-d galleries of the model, enrolls and identifies images with it, and rejects 128-d embeddings', async () => {
    const id = await modelIdOf(model);
    const version = (await (await server.app.request('/v1/info')).json()) as { model: { id: string; dimension: number } };
    expect(version.model).toEqual({ id, dimension: 512 });
    const g = await post('/v1/galleries', { name: 'big' });
    expect(g.status).toBe(201);
    expect(g.json).toMatchObject({ modelId: id, dimension: 512 });
    const biden = readFileSync(join(repoRoot, 'test/fixtures/photos/biden-400.jpg')).toString('base64');
    const obama = readFileSync(join(repoRoot, 'test/fixtures/photos/obama_small.jpg')).toString('base64');
    const e = await post('/v1/galleries/big/enroll', { faces: [{ identity: 'biden', image: biden }, { identity: 'obama', image: obama }] });
    expect(e.status).toBe(201);
    const found = await post('/v1/galleries/big/identify', { image: biden, k: 2 });
    expect(found.status).toBe(200);
    const faces = found.json.faces as { result: { candidates: { identity: string; score: number }[] } }[];
    const best = faces[0]!.result.candidates[0]!;
    expect(best.identity).toBe('biden');
    expect(best.score).toBeGreaterThan(0.9999);
    const wrong = await post('/v1/galleries/big/identify', { embedding: new Array(128).fill(0.1) });
    expect(wrong.status).toBe(400);
    expect(wrong.json).toMatchObject({ error: { code: 'DIMENSION_MISMATCH', message: 'probe has 128 values, the gallery expects 512' } });
    const right = await post('/v1/galleries/big/identify', { embedding: new Array(512).fill(0.1) });
    expect(right.status).toBe(200);
  }, 300_000);
});
