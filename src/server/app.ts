// The HTTP API as a Hono app: request ids and logs, authentication, one error handler, and the
// resource sub-apps. Tests call it with app.request(); server.ts puts it on a socket.
import { busyError } from '../db/busy.js';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { routePath } from 'hono/route';
import { z } from 'zod';
import { DEFAULT_EMBEDDER_ID } from '../model-id.js';
import { CosfaceError, type ErrorCode } from '../errors.js';
import type { Store } from '../store/store.js';
import { ApiKeys } from './api-keys.js';
import { authenticate, visibleGalleries } from './auth.js';
import { galleryJson, type EngineInfo, type ModelInfo, type ServerDeps } from './deps.js';
import type { AppEnv } from './env.js';
import { FaceFinder, type PhotoPipeline } from './face-finder.js';
import { errorBody, httpStatus } from './http-errors.js';
import { Metrics } from './metrics.js';
import { docsPage, openApiDocument } from './openapi.js';
import { DEFAULT_LIMITS, route, type Limits } from './route-spec.js';
import { galleryRoutes } from './routes/galleries.js';
import { keyRoutes } from './routes/keys.js';
import { searchRoutes } from './routes/search.js';
import { webAppRoutes, type WebAppFiles } from './routes/web-app.js';
import { dedupeRoutes } from './routes/dedupe.js';
import type { DedupeJobs } from './dedupe-jobs.js';
import * as s from './schemas.js';
import { VERSION } from './version.js';

export interface LogEntry {
  time: string;
  level: 'info' | 'warn' | 'error';
  requestId: string;
  method: string;
  path: string;
  route: string;
  status: number;
  ms: number;
  code?: ErrorCode;
  message?: string;
}

export interface CreateAppOptions {
  /** Makes the de-duplication job queue (Node: `(deps) => new DedupeJobs(deps)`); omitted: no /v1/dedupe routes. */
  dedupe?: (deps: ServerDeps) => DedupeJobs;
  /** The store (galleries, faces, API keys). */
  store: Store;
  /** The face pipeline, or a function that makes it on first use (image routes only need it). */
  pipeline: PhotoPipeline | (() => Promise<PhotoPipeline>);
  /**
   * 'keys' (default): every route but /health and the docs needs `Authorization: Bearer <key>`.
   * 'disabled': no authentication at all, for local use only.
   */
  auth?: 'keys' | 'disabled';
  limits?: Partial<Limits>;
  /** The model images are embedded with (default: the vendored MobileFaceNet, 128-d). */
  model?: ModelInfo;
  /** Backend and adapter, for /v1/info. */
  engine?: EngineInfo | null;
  /** One entry per request; default: a JSON line on stdout; false: none. */
  log?: ((entry: LogEntry) => void) | false;
  /** The browser page at /app and the files it runs (nodeWebAppFiles() in Node); without it there is no /app. */
  webApp?: WebAppFiles;
  /** Cross-request batching of photos for the pipeline. */
  batch?: { windowMs?: number; maxBatch?: number; maxQueue?: number };
}

export type CosfaceApp = Hono<AppEnv> & {
  /** Closes the pipeline the app loaded. The store stays open. */
  close(): Promise<void>;
  readonly deps: ServerDeps;
  /** The de-duplication job queue (POST /v1/dedupe); null where the app was made without one (edge runtimes). */
  readonly dedupeJobs: DedupeJobs | null;
};

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export function packageVersion(): string {
  return VERSION;
}

export function createApp(opts: CreateAppOptions): CosfaceApp {
  if (!opts || !opts.store) throw new CosfaceError('BAD_INPUT', 'createApp: store is required');
  const auth = opts.auth ?? 'keys';
  if (auth !== 'keys' && auth !== 'disabled') throw new CosfaceError('BAD_INPUT', `createApp: auth must be 'keys' or 'disabled', got '${String(auth)}'`);
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isInteger(v) || v < 1) throw new CosfaceError('BAD_INPUT', `createApp: limits.${k} must be a positive integer`);
  }
  const log = opts.log === false ? () => undefined : (opts.log ?? ((e: LogEntry) => console.log(JSON.stringify(e))));
  const metrics = new Metrics();
  const p = opts.pipeline;
  const finder = new FaceFinder(typeof p === 'function' ? p : async () => p, { ...opts.batch, metrics });
  const deps: ServerDeps = {
    store: opts.store,
    keys: auth === 'keys' ? ApiKeys.of(opts.store) : null,
    finder,
    metrics,
    limits,
    model: opts.model ?? { id: DEFAULT_EMBEDDER_ID, dimension: 128 },
    engine: opts.engine ?? null,
    version: packageVersion(),
  };
  const { store } = deps;

  const app = new Hono<AppEnv>();

  // Request id and one log line per request (with the error code when there is one).
  app.use('*', async function requestLog(c, next) {
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.set('requestId', requestId);
    c.header('X-Request-Id', requestId);
    const t0 = performance.now();
    await next();
    const ms = performance.now() - t0;
    const status = c.res.status;
    if (!c.res.headers.has('x-request-id')) c.res.headers.set('X-Request-Id', requestId);
    let routeName = routePath(c, -1);
    if (status === 404 && (routeName === '*' || routeName === '/*')) routeName = 'unmatched';
    metrics.observeRequest(c.req.method, routeName, status, ms / 1000);
    const err = c.get('error' as never) as { code: ErrorCode; message: string } | undefined;
    log({
      time: new Date().toISOString(),
      level: status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info',
      requestId,
      method: c.req.method,
      path: c.req.path,
      route: routeName,
      status,
      ms: Math.round(ms * 100) / 100,
      ...(err ? { code: err.code, message: err.message } : {}),
    });
  });
  app.use('*', authenticate(deps.keys));

  app.onError((e, c) => {
    let err: CosfaceError;
    const busy = busyError(e);
    if (e instanceof CosfaceError) err = e;
    else if (busy) err = busy;
    else if (e instanceof HTTPException && e.status === 413) err = new CosfaceError('PAYLOAD_TOO_LARGE', e.message || 'request body too large');
    else if (e instanceof HTTPException && e.status < 500) err = new CosfaceError('BAD_INPUT', e.message || `HTTP ${e.status}`);
    else {
      // A bug or an unforeseen failure: log the stack under the request id, tell the client only the id.
      console.error(`[${c.get('requestId')}] ${(e as Error).stack ?? String(e)}`);
      err = new CosfaceError('INTERNAL', `internal error (request ${c.get('requestId')})`);
    }
    c.set('error' as never, { code: err.code, message: err.message } as never);
    if (err.code === 'OVERLOADED' || err.code === 'BUSY' || err.code === 'INDEX_UNAVAILABLE') c.header('Retry-After', '1');
    return c.json(errorBody(err, c.get('requestId')), httpStatus(err.code) as 400);
  });
  app.notFound((c) => {
    const err = new CosfaceError('NOT_FOUND', `no route ${c.req.method} ${c.req.path}`);
    c.set('error' as never, { code: err.code, message: err.message } as never);
    return c.json(errorBody(err, c.get('requestId')), 404);
  });

  // ---- meta ----

  const health = route(
    { tag: 'meta', summary: 'Liveness: the process answers (no key needed)', access: 'public', response: { status: 200, description: 'ok', schema: z.object({ status: z.literal('ok') }) }, errors: [] },
    limits,
  );
  app.get('/health', health, (c) => c.json({ status: 'ok' as const }));

  app.get(
    '/v1/info',
    route(
      {
        tag: 'meta',
        summary: 'Version, model, backend and adapter, and the galleries this key may use',
        access: 'key',
        response: {
          status: 200,
          description: 'Server information',
          schema: z.object({
            version: z.string(),
            model: z.object({ id: z.string(), dimension: z.number().int() }),
            backend: z.string().nullable(),
            adapter: z.string().nullable(),
            scorer: z.string(),
            auth: z.enum(['keys', 'disabled']),
            pipelineLoaded: z.boolean(),
            galleries: z.array(s.galleryResponse),
          }),
        },
        errors: [],
      },
      limits,
    ),
    async (c) => {
      const visible = visibleGalleries(c.get('principal'));
      return c.json({
        version: deps.version,
        model: deps.model,
        backend: deps.engine?.backend ?? null,
        adapter: deps.engine?.adapter ?? null,
        scorer: store.scorerName,
        auth,
        pipelineLoaded: finder.loaded,
        galleries: (await store.listGalleries()).filter((g) => visible === null || visible.includes(g.name)).map(galleryJson),
      });
    },
  );

  app.get(
    '/metrics',
    route(
      { tag: 'meta', summary: 'Prometheus metrics: requests, latencies, faces embedded, batch sizes, gallery sizes', access: 'admin', response: { status: 200, description: 'text/plain; version=0.0.4' }, errors: [] },
      limits,
    ),
    async (c) => {
      c.header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
      return c.body(metrics.render(await store.listGalleries()));
    },
  );

  let doc: Record<string, unknown> | null = null;
  const openapi = () => (doc ??= openApiDocument(app, { version: deps.version, auth: auth === 'keys' }));
  const specRoute = route(
    { tag: 'meta', summary: 'This API as OpenAPI 3.1 (no key needed)', access: 'public', response: { status: 200, description: 'The OpenAPI document' }, errors: [] },
    limits,
  );
  app.get('/openapi.json', specRoute, (c) => c.json(openapi()));
  app.get('/v1/openapi.json', specRoute, (c) => c.json(openapi()));
  app.get(
    '/docs',
    route({ tag: 'meta', summary: 'A readable page of the routes (no key needed)', access: 'public', response: { status: 200, description: 'HTML' }, errors: [] }, limits),
    (c) => c.html(docsPage(openapi())),
  );

  app.route('/v1/galleries', galleryRoutes(deps));
  app.route('/v1', searchRoutes(deps));
  app.route('/v1/keys', keyRoutes(deps));
  if (opts.webApp) app.route('/', webAppRoutes(opts.webApp, limits));
  // Injected (Node: `(deps) => new DedupeJobs(deps)`): the job queue uses hnswlib and worker
  // threads, which the edge runtimes do not have; without it the /v1/dedupe routes are absent.
  const dedupeJobs = opts.dedupe ? opts.dedupe(deps) : null;
  if (dedupeJobs) app.route('/v1', dedupeRoutes(deps, dedupeJobs));

  return Object.assign(app, {
    deps,
    dedupeJobs,
    async close() {
      await dedupeJobs?.close();
      await finder.dispose();
    },
  });
}
