// The files behind /app through app.request(): the page (with its content security policy), the
// bundle from dist/web, and the models and kernels with a manifest whose hashes are the files'.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';
import { nodeWebAppFiles } from '../../src/server/web-app-files.js';
import { makeServer, type TestServer } from './helpers.js';

// In CI (where `npm ci` builds dist/web) a missing bundle fails; elsewhere the page tests skip.
const built = existsSync(join(repoRoot, 'dist/web/index.html')) || process.env.COSFACE_REQUIRE_WEBGPU === '1';

describe('/app', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await makeServer({ webApp: nodeWebAppFiles() });
  });
  afterAll(async () => t.close());

  it.skipIf(!built)('serves the page at /app and /app/ without a key, scripts only from itself', async () => {
    for (const path of ['/app', '/app/']) {
      const r = await t.app.request(path);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
      expect(r.headers.get('content-security-policy')).toContain("script-src 'self' 'wasm-unsafe-eval'");
      const html = await r.text();
      expect(html).toContain('<script type="module" src="/app/app.js">');
    }
    for (const f of ['app.js', 'cosface.js', 'wasm-worker.js', 'style.css']) {
      const r = await t.app.request(`/app/${f}`);
      expect(r.status, f).toBe(200);
      expect(new Uint8Array(await r.arrayBuffer())).toEqual(new Uint8Array(readFileSync(join(repoRoot, 'dist/web', f))));
    }
  });

  it('lists the models and kernels with their SHA-256, and serves exactly those bytes', async () => {
    const r = await t.app.request('/app/manifest.json');
    expect(r.status).toBe(200);
    const { files } = (await r.json()) as { files: Record<string, { bytes: number; sha256: string }> };
    expect(Object.keys(files).sort()).toEqual(
      ['models/blazeface-back.bin', 'models/blazeface-back.json', 'models/facemesh.bin', 'models/facemesh.json', 'models/mobilefacenet-arcface.tflite', 'wasm/cosface-relaxed.wasm', 'wasm/cosface.wasm'].sort(),
    );
    for (const [path, entry] of Object.entries(files)) {
      const got = await t.app.request(`/app/${path}`);
      expect(got.status, path).toBe(200);
      const bytes = new Uint8Array(await got.arrayBuffer());
      expect(bytes.byteLength).toBe(entry.bytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(entry.sha256);
    }
    expect((await t.app.request('/app/wasm/cosface.wasm')).headers.get('content-type')).toBe('application/wasm');
    expect(files['models/mobilefacenet-arcface.tflite']!.sha256).toBe(createHash('sha256').update(readFileSync(join(repoRoot, 'models/mobilefacenet-arcface.tflite'))).digest('hex'));
  });

  it('is not there unless the app is given its files', async () => {
    const bare = await makeServer();
    try {
      expect((await bare.app.request('/app')).status).toBe(404);
    } finally {
      await bare.close();
    }
  });

  it('answers NOT_FOUND for anything else under /app, never a file outside the bundle', async () => {
    for (const path of ['/app/models/LICENSE.human-models', '/app/models/..%2Fpackage.json', '/app/..%2Fpackage.json', '/app/package.json', '/app/wasm/cosface.js', '/app/nope.js']) {
      const r = await t.app.request(path);
      expect(r.status, path).toBe(404);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    }
  });
});
