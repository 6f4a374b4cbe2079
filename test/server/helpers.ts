// Shared setup for the server tests: an app on a fresh file database, an admin key, request helpers,
// and deterministic embeddings (one direction per person plus a little noise).
import { DedupeJobs } from '../../src/server/dedupe-jobs.js';
import { createApp, type CosfaceApp, type CreateAppOptions, type LogEntry } from '../../src/server/app.js';
import { createApiKey } from '../../src/server/server.js';
import type { PhotoPipeline } from '../../src/server/face-finder.js';
import { createBackend } from '../../src/engine.js';
import { createFacePipeline } from '../../src/pipeline/face-pipeline.js';
import { withReferenceFallback } from '../../src/pipeline/reference-backend.js';
import type { Store } from '../../src/store/index.js';
import { testDb, type BackendName, type TestDb } from '../helpers/backends.js';
import { randomTensor } from '../helpers/fixtures.js';

export interface TestServer {
  app: CosfaceApp;
  store: Store;
  dir: string;
  /** The database under the store (its location, raw rows). */
  db: TestDb;
  adminKey: string;
  logs: LogEntry[];
  /** app.request with JSON body and the admin key unless headers say otherwise. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

/** The real face pipeline on the default backend, made once per test file on first use. */
let sharedPipeline: Promise<PhotoPipeline> | null = null;
export function realPipeline(): Promise<PhotoPipeline> {
  sharedPipeline ??= (async () => {
    const p = await createFacePipeline({ backend: withReferenceFallback(await createBackend('auto')) });
    // Shared by every app of the file (one per backend): an app closing must not dispose it.
    return { ...p, dispose: () => undefined };
  })();
  return sharedPipeline;
}

/** An app on a fresh database of the backend (default SQLite). */
export async function makeServer(o: Partial<CreateAppOptions> & { backend?: BackendName } = {}): Promise<TestServer> {
  const { backend = 'sqlite', ...appOpts } = o;
  const db = await testDb(backend, 'server');
  const dir = db.dir;
  const store = await db.open({ synchronous: 'normal' });
  const logs: LogEntry[] = [];
  const app = createApp({ store, pipeline: realPipeline, log: (e) => logs.push(e), dedupe: (deps) => new DedupeJobs(deps), ...appOpts });
  const adminKey = (await createApiKey(store, { name: 'test admin' })).key;
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const h: Record<string, string> = { authorization: `Bearer ${adminKey}`, ...headers };
    let payload: BodyInit | undefined;
    if (body !== undefined) {
      if (typeof body === 'string' || body instanceof Uint8Array || body instanceof FormData) payload = body as BodyInit;
      else {
        payload = JSON.stringify(body);
        h['content-type'] ??= 'application/json';
      }
    }
    for (const k of Object.keys(h)) if (h[k] === '') delete h[k];
    return Promise.resolve(app.request(path, { method, headers: h, ...(payload !== undefined ? { body: payload } : {}) }));
  };
  return {
    app,
    store,
    dir,
    db,
    adminKey,
    logs,
    call,
    async close() {
      await app.close();
      await store.close();
      await db.dispose();
    },
  };
}

/** A unit-ish 128-d vector for person p, sample s: a fixed direction plus 10% noise. */
export function personVector(p: number, s = 0, dim = 128): number[] {
  const base = randomTensor(dim, 1000 + p);
  const noise = randomTensor(dim, 50_000 + p * 100 + s, 0.1);
  return Array.from(base, (x, i) => x + noise[i]!);
}

export async function json<T = Record<string, unknown>>(r: Response): Promise<T> {
  return (await r.json()) as T;
}

export interface ErrorJson {
  error: { code: string; message: string; requestId?: string };
}

/** Asserts the response is an error with this status and code, and returns its body. */
export async function expectError(r: Response, status: number, code: string): Promise<ErrorJson> {
  const body = (await r.json()) as ErrorJson;
  if (r.status !== status || body.error?.code !== code) {
    throw new Error(`expected ${status} ${code}, got ${r.status} ${JSON.stringify(body)}`);
  }
  if (body.error.requestId !== r.headers.get('x-request-id')) throw new Error('error body requestId differs from X-Request-Id');
  return body;
}
