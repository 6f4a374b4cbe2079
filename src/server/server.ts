// `cosface serve`: opens the store, makes sure an admin key exists, loads the face pipeline, and
// serves the app on a socket; on SIGINT/SIGTERM it stops taking requests and saves the indexes.
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Backend } from '../backend/backend.js';
import { createBackend, parseBackendChoice } from '../engine.js';
import { CosfaceError } from '../errors.js';
import { createFacePipeline } from '../pipeline/face-pipeline.js';
import { modelIdOf, type MetadataOverrides } from '../import/model-metadata.js';
import { withReferenceFallback } from '../pipeline/reference-backend.js';
import { openStore, storeLocation, type Store } from '../store/index.js';
import { ApiKeys, ensureAdminKey, type CreatedApiKey } from './api-keys.js';
import { DedupeJobs } from './dedupe-jobs.js';

export { ensureAdminKey } from './api-keys.js';
import { createApp, type CosfaceApp, type CreateAppOptions } from './app.js';
import { nodeWebAppFiles } from './web-app-files.js';

export const DEFAULT_DB = 'cosface.db';
export const DEFAULT_PORT = 8080;
export const DEFAULT_HOST = '127.0.0.1';

export interface StartServerOptions {
  /** SQLite database file (created if missing). Default cosface.db. */
  db?: string;
  /** 0 picks a free port. Default 8080. */
  port?: number;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** 'keys' (default) or 'disabled' (no authentication: local use only). */
  auth?: 'keys' | 'disabled';
  /** Compute backend for the face pipeline: auto (default), webgpu or wasm. */
  backend?: string;
  /** A face embedder of the user's (TFLite or ONNX) in place of the vendored one, with its metadata flags. */
  model?: { path: string; metadata?: MetadataOverrides };
  /** The admin key to install (default: process.env.COSFACE_ADMIN_KEY). */
  adminKey?: string;
  /** Where the one-time admin key and notices go (default: stderr). */
  notice?: (line: string) => void;
  /** Live faces from which a gallery's index is built as parallel shards (default: the store's, 200,000). */
  shardFrom?: number;
  log?: CreateAppOptions['log'];
  limits?: CreateAppOptions['limits'];
}

export interface RunningServer {
  url: string;
  port: number;
  app: CosfaceApp;
  store: Store;
  /** The admin key created on this start (null when one already existed or came from the environment). */
  createdAdminKey: string | null;
  /** Stops accepting connections, finishes open requests, saves indexes, closes everything. */
  close(): Promise<void>;
}

export async function startServer(o: StartServerOptions = {}): Promise<RunningServer> {
  const port = o.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CosfaceError('BAD_INPUT', `port must be an integer in [0, 65535], got ${String(port)}`);
  const host = o.host ?? DEFAULT_HOST;
  const auth = o.auth ?? 'keys';
  const notice = o.notice ?? ((l: string) => process.stderr.write(l + '\n'));
  const backendChoice = parseBackendChoice(o.backend ?? 'auto');

  const store = await openStore(storeLocation(o.db), {
    ...(o.shardFrom !== undefined ? { shardFrom: o.shardFrom } : {}),
    onIndexEvent: (e) => notice(`index ${e.kind} ${JSON.stringify(e)}`),
  });
  let backend: Backend | null = null;
  let app: CosfaceApp | null = null;
  try {
    let createdAdminKey: string | null = null;
    if (auth === 'keys') {
      createdAdminKey = await ensureAdminKey(ApiKeys.of(store), o.adminKey ?? process.env.COSFACE_ADMIN_KEY);
      if (createdAdminKey) {
        notice(`Admin API key (shown once, only its hash is stored; set COSFACE_ADMIN_KEY to choose your own):\n  ${createdAdminKey}`);
      }
    } else {
      notice(`WARNING: authentication is disabled: anyone who can reach this server (listening on ${host}) can read and change every gallery`);
    }

    backend = await createBackend(backendChoice);
    const pipeline = await createFacePipeline({
      backend: withReferenceFallback(backend, (g, reason) => notice(`note: ${g.source ?? 'a graph'} runs on the reference kernels (${reason})`)),
      ...(o.model ? { embedder: o.model } : {}),
    });
    const model = o.model ? { id: await modelIdOf(o.model.path), dimension: pipeline.embeddingDim } : undefined;
    if (model) notice(`embedding model: ${o.model!.path} as ${model.id} (${model.dimension}-d)`);
    app = createApp({
      dedupe: (deps) => new DedupeJobs(deps),
      ...(model ? { model } : {}),
      store,
      pipeline,
      auth,
      engine: { backend: backend.name, adapter: backend.describe() },
      webApp: nodeWebAppFiles(),
      ...(o.log !== undefined ? { log: o.log } : {}),
      ...(o.limits ? { limits: o.limits } : {}),
    });
    const server = await listen(app, port, host);
    const addr = server.address() as AddressInfo;
    const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const theApp = app;
    const theBackend = backend;
    let closing: Promise<void> | null = null;
    return {
      url: `http://${shownHost}:${addr.port}`,
      port: addr.port,
      app,
      store,
      createdAdminKey,
      close() {
        closing ??= (async () => {
          await new Promise<void>((resolve) => server.close(() => resolve()));
          pipeline.dispose();
          await theApp.close();
          await store.close(); // writes index snapshots
          await theBackend.dispose();
        })();
        return closing;
      },
    };
  } catch (e) {
    await app?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    await backend?.dispose().catch(() => undefined);
    throw e;
  }
}

function listen(app: CosfaceApp, port: number, host: string): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, hostname: host }, () => resolve(server));
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new CosfaceError('BAD_INPUT', `cannot listen on ${host}:${port}: ${e.code ?? e.message}`, { cause: e })),
    );
  });
}

/**
 * What `cosface serve` runs: starts the server, prints its URL, and shuts down cleanly (indexes
 * saved) on SIGINT or SIGTERM. Resolves once the server has stopped.
 */
export async function serveCommand(o: StartServerOptions = {}): Promise<void> {
  const notice = o.notice ?? ((l: string) => process.stderr.write(l + '\n'));
  const running = await startServer(o);
  notice(`cosface ${running.app.deps.version} listening on ${running.url} (database ${running.store.dbPath}; docs ${running.url}/docs)`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      notice(`${signal}: finishing open requests and saving indexes`);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      running.close().then(resolve, (e: unknown) => {
        notice(`error while shutting down: ${(e as Error).message}`);
        resolve();
      });
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}

/**
 * Creates an API key in a store's database and returns it with its value (shown once): for the CLI
 * (`cosface keys create`) and for scripts. `store` may be a location (it is opened and closed).
 * `gallery` omitted or null: an admin key.
 */
export async function createApiKey(store: Store | string, o: { name?: string; gallery?: string | null } = {}): Promise<CreatedApiKey> {
  const s = typeof store === 'string' ? await openStore(store) : store;
  try {
    return await ApiKeys.of(s).create({ name: o.name ?? (o.gallery ? `key for ${o.gallery}` : 'admin'), gallery: o.gallery ?? null });
  } finally {
    if (s !== store) await s.close();
  }
}
