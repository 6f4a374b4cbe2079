// The browser page at /app: the bundle `npm run build` wrote to dist/web/ (never built at request
// time), the vendored models and the WASM kernels it runs on the device, and a manifest of their
// hashes so the page caches each file once. Public: the page asks for the API key itself.
// Runtime-neutral: the bytes come from a WebAppFiles (web-app-files.ts reads them from disk in Node).
import { Hono, type Context } from 'hono';
import { CosfaceError } from '../../errors.js';
import type { AppEnv } from '../env.js';
import { route, type Limits } from '../route-spec.js';

/** Where the page's files come from. Each read returns null for a file that is not there. */
export interface WebAppFiles {
  /** A file of the bundle (dist/web/): index.html, app.js, cosface.js, wasm-worker.js, style.css. */
  bundle(name: string): Promise<Uint8Array | null>;
  /** An asset the page fetches, by its path under /app/: models/<file> or wasm/<file>. */
  asset(path: string): Promise<Uint8Array | null>;
  /** The asset paths there are (what manifest.json lists). */
  readonly assets: readonly string[];
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  map: 'application/json; charset=utf-8',
  json: 'application/json; charset=utf-8',
  wasm: 'application/wasm',
};

// The page runs only its own scripts; WebAssembly.compile needs 'wasm-unsafe-eval'.
const PAGE_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; img-src 'self' blob: data:; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'";

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as unknown as BufferSource));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The routes under /app (mounted at the root: /app and /app/ both serve the page). */
export function webAppRoutes(files: WebAppFiles, limits: Limits): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  let manifest: Promise<{ files: Record<string, { bytes: number; sha256: string }> }> | null = null;

  const send = (c: Context<AppEnv>, body: Uint8Array | null, ext: string, extra: Record<string, string> = {}) => {
    if (!body) throw new CosfaceError('NOT_FOUND', `${c.req.path} is missing on the server (the page is bundled by \`npm run build\`)`);
    return c.body(body as unknown as ArrayBuffer, 200, { 'Content-Type': TYPES[ext] ?? 'application/octet-stream', 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff', ...extra });
  };
  const page = async (c: Context<AppEnv>) => send(c, await files.bundle('index.html'), 'html', { 'Content-Security-Policy': PAGE_CSP });
  const asset = async (c: Context<AppEnv>, path: string) => {
    if (!files.assets.includes(path)) throw new CosfaceError('NOT_FOUND', `no file ${path} for the page`);
    return send(c, await files.asset(path), path.split('.').pop()!);
  };

  const spec = (summary: string) => route({ tag: 'app', summary, access: 'public', response: { status: 200, description: 'The file' }, errors: ['NOT_FOUND'] }, limits);
  const pageSpec = spec('The browser page: faces found and embedded on the device, searched on the server by embedding only');
  app.get('/app', pageSpec, page);
  app.get('/app/', pageSpec, page);
  app.get('/app/manifest.json', spec('Sizes and SHA-256 of the models and WASM kernels the page runs'), async (c) => {
    manifest ??= (async () => {
      const entries = await Promise.all(
        files.assets.map(async (path) => {
          const bytes = await files.asset(path);
          if (!bytes) throw new CosfaceError('NOT_FOUND', `${path} is missing on the server`);
          return [path, { bytes: bytes.byteLength, sha256: await sha256Hex(bytes) }] as const;
        }),
      );
      return { files: Object.fromEntries(entries) };
    })();
    manifest.catch(() => (manifest = null));
    return c.json(await manifest, 200, { 'Cache-Control': 'no-cache' });
  });
  app.get('/app/models/:file', spec('A model file the page runs (see manifest.json)'), (c) => asset(c, `models/${c.req.param('file')}`));
  app.get('/app/wasm/:file', spec('The WASM kernels (SIMD and relaxed-SIMD builds)'), (c) => asset(c, `wasm/${c.req.param('file')}`));
  app.get('/app/:file', spec('A file of the page bundle (dist/web/)'), async (c) => {
    const f = c.req.param('file');
    const m = /^[\w-]+\.(js|css|map|html)$/.exec(f);
    if (!m) throw new CosfaceError('NOT_FOUND', `no file ${f} in the page bundle`);
    if (f === 'index.html') return page(c);
    return send(c, await files.bundle(f), m[1]!);
  });
  return app;
}
