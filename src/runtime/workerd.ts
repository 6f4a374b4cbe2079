// workerd entry (Cloudflare Workers; locally `wrangler dev --local`, offline): one Durable Object
// holds the app, its SQLite database (drizzle's durable-sqlite driver) and the exact-scan index in
// memory, so every request sees the same index; the Worker forwards all requests to it. The WASM
// is imported as compiled modules (workerd does not compile WebAssembly from bytes at run time).
// The face pipeline is not deployed here (docs/edge.md says why): photos are
// decoded and checked (BAD_IMAGE, IMAGE_TOO_LARGE as on Node), then answered PHOTOS_UNAVAILABLE.
import { DurableObject, type DurableObjectState } from 'cloudflare:workers';
import { drizzle } from 'drizzle-orm/durable-sqlite';
import jpeg from '../../node_modules/@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm';
import png from '../../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm';
import kernels from '../../build/cosface.wasm';
import * as schema from '../db/schema.js';
import type { CosfaceApp } from '../server/app.js';
import { DEFAULT_LIMITS } from '../server/route-spec.js';
import { openEdgeStore } from '../store/edge/open-edge-store.js';
import type { SyncSqliteDb } from '../store/sqlite/sqlite-meta.js';
import type { VectorStorage } from '../store/exact-vector-index.js';
import { WasmImageDecoder } from '../pipeline/decode-wasm.js';
import { createEdgeServer } from './edge-server.js';

interface Env {
  COSFACE: { idFromName(name: string): unknown; get(id: unknown): { fetch(req: Request): Promise<Response> } };
  COSFACE_ADMIN_KEY?: string;
  /** f32 (default), f16 or int8: the exact-scan index's storage. */
  COSFACE_VECTOR_STORAGE?: string;
  /** Largest photo accepted, in pixels (default 12 MP: a decoded photo must fit the isolate). */
  COSFACE_MAX_PIXELS?: string;
}

export class CosfaceServer extends DurableObject<Env> {
  private readonly app: Promise<CosfaceApp>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.app = ctx.blockConcurrencyWhile(async () => {
      const modules = { kernels, jpeg, png };
      const db = drizzle(ctx.storage as never, { schema }) as unknown as SyncSqliteDb;
      const storage = (env.COSFACE_VECTOR_STORAGE || 'f32') as VectorStorage;
      const { store } = openEdgeStore(db, { wasm: modules.kernels, location: 'durable-object:cosface', storage, skipForeignKeyPragma: true });
      const { app } = await createEdgeServer({
        store,
        adminKey: env.COSFACE_ADMIN_KEY,
        pipeline: null,
        photos: {
          decoder: new WasmImageDecoder({ jpeg: modules.jpeg, png: modules.png }),
          maxPixels: Number(env.COSFACE_MAX_PIXELS || 12_000_000),
          unavailable: 'this workerd deployment serves embedding routes only (the face pipeline is not deployed to workerd; see docs/edge.md)',
        },
        engine: { backend: 'wasm', adapter: 'wasm (SIMD, in-process) on workerd, Durable Object' },
        notice: (line) => console.error(line),
      });
      return app;
    });
  }

  async fetch(req: Request): Promise<Response> {
    const res = await (await this.app).fetch(req);
    // A request refused before its body was read (415, 401, ...): cancel the body here, or the
    // Worker keeps streaming it into a finished request and fails the next one.
    if (req.body && !req.bodyUsed) await req.body.cancel().catch(() => undefined);
    return res;
  }
}

export default {
  async fetch(req: Request, env: Env): Promise<Response> {
    // The body is read here, whole, before the Durable Object sees the request: a stream handed
    // on to it fails the Worker ("Can't read from request stream after response has been sent")
    // whenever the app answers without reading the body (401, 403, 415). At most the largest body
    // limit plus one byte is kept, so an oversized upload still gets PAYLOAD_TOO_LARGE from the app.
    const body = req.body ? await readCapped(req.body, DEFAULT_LIMITS.imageBytes + 1) : null;
    const headers = new Headers(req.headers);
    headers.delete('content-length');
    return env.COSFACE.get(env.COSFACE.idFromName('cosface')).fetch(new Request(req.url, { method: req.method, headers, body: body as BodyInit | null }));
  },
};

async function readCapped(stream: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= max) {
      await reader.cancel().catch(() => undefined);
      break;
    }
  }
  const out = new Uint8Array(Math.min(size, max));
  let at = 0;
  for (const c of chunks) {
    const take = Math.min(c.byteLength, out.length - at);
    out.set(c.subarray(0, take), at);
    at += take;
    if (at === out.length) break;
  }
  return out;
}
