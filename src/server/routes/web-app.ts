// The browser page at /app: the bundle `npm run build` wrote to dist/web/ (never built at request
// time), the vendored models and the WASM kernels it runs on the device, and a manifest of their
// hashes so the page caches each file once. Public: the page asks for the API key itself.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Hono, type Context } from 'hono';
import { wasmPath } from '../../backend/wasm/wasm-kernels.js';
import { packageRoot } from '../../embedder.js';
import { CosfaceError } from '../../errors.js';
import { defaultModelDir } from '../../pipeline/face-pipeline.js';
import type { AppEnv } from '../env.js';
import { route, type Limits } from '../route-spec.js';

export const WEB_DIST = join(packageRoot, 'dist/web');

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json; charset=utf-8',
  json: 'application/json; charset=utf-8',
  bin: 'application/octet-stream',
  tflite: 'application/octet-stream',
  wasm: 'application/wasm',
};

// The page runs only its own scripts; WebAssembly.compile needs 'wasm-unsafe-eval'.
const PAGE_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; img-src 'self' blob: data:; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'";

const MODEL_FILES = ['blazeface-back.json', 'blazeface-back.bin', 'facemesh.json', 'facemesh.bin', 'mobilefacenet-arcface.tflite'];
const WASM_FILES: Record<string, 'simd' | 'relaxed'> = { 'cosface.wasm': 'simd', 'cosface-relaxed.wasm': 'relaxed' };

/** Where each asset the page fetches lives on disk, by its path under /app/. */
function assetFiles(): Record<string, string> {
  const modelDir = defaultModelDir();
  const out: Record<string, string> = {};
  for (const f of MODEL_FILES) out[`models/${f}`] = join(modelDir, f);
  for (const [f, simd] of Object.entries(WASM_FILES)) out[`wasm/${f}`] = wasmPath(simd);
  return out;
}

/** The routes under /app (mounted at the root: /app and /app/ both serve the page). */
export function webAppRoutes(limits: Limits): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  let manifest: { files: Record<string, { bytes: number; sha256: string }> } | null = null;
  const files = (() => {
    let cached: Record<string, string> | null = null;
    return () => (cached ??= assetFiles());
  })();

  const send = async (c: Context<AppEnv>, file: string, ext: string, extra: Record<string, string> = {}) => {
    let body: Uint8Array;
    try {
      body = await readFile(file);
    } catch {
      throw new CosfaceError('NOT_FOUND', `${c.req.path} is missing on the server: run \`npm run build\``);
    }
    return c.body(body as unknown as ArrayBuffer, 200, { 'Content-Type': TYPES[ext] ?? 'application/octet-stream', 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff', ...extra });
  };
  const page = (c: Context<AppEnv>) => send(c, join(WEB_DIST, 'index.html'), 'html', { 'Content-Security-Policy': PAGE_CSP });

  const spec = (summary: string) => route({ tag: 'app', summary, access: 'public', response: { status: 200, description: 'The file' }, errors: ['NOT_FOUND'] }, limits);
  const pageSpec = spec('The browser page: faces found and embedded on the device, searched on the server by embedding only');
  app.get('/app', pageSpec, page);
  app.get('/app/', pageSpec, page);
  app.get('/app/manifest.json', spec('Sizes and SHA-256 of the models and WASM kernels the page runs'), (c) => {
    manifest ??= {
      files: Object.fromEntries(
        Object.entries(files()).map(([name, path]) => {
          const bytes = readFileSync(path);
          return [name, { bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') }];
        }),
      ),
    };
    return c.json(manifest, 200, { 'Cache-Control': 'no-cache' });
  });
  app.get('/app/models/:file', spec('A model file the page runs (see manifest.json)'), (c) => {
    const name = `models/${c.req.param('file')}`;
    const path = files()[name];
    if (!path) throw new CosfaceError('NOT_FOUND', `no model ${c.req.param('file')}`);
    return send(c, path, name.split('.').pop()!);
  });
  app.get('/app/wasm/:file', spec('The WASM kernels (SIMD and relaxed-SIMD builds)'), (c) => {
    const path = files()[`wasm/${c.req.param('file')}`];
    if (!path) throw new CosfaceError('NOT_FOUND', `no kernel build ${c.req.param('file')}`);
    return send(c, path, 'wasm');
  });
  app.get('/app/:file', spec('A file of the page bundle (dist/web/)'), (c) => {
    const f = c.req.param('file');
    const m = /^[\w-]+\.(js|css|map|html)$/.exec(f);
    if (!m || !existsSync(join(WEB_DIST, f))) throw new CosfaceError('NOT_FOUND', `no file ${f} in the page bundle`);
    if (f === 'index.html') return page(c);
    return send(c, join(WEB_DIST, f), m[1]!);
  });
  return app;
}
