// Deno entry: Deno's built-in node:sqlite (no native addon) behind drizzle's durable-sqlite driver
// (deno-sqlite.ts), the exact-scan index and the face pipeline on the in-process WASM kernels,
// photos decoded by the WASM codecs, Deno.serve. `npm run serve:deno`; PORT, HOST, COSFACE_DB and
// COSFACE_ADMIN_KEY as for `cosface serve`.
import { DatabaseSync } from 'node:sqlite';
import { drizzle } from 'drizzle-orm/durable-sqlite';
import * as schema from '../db/schema.js';
import { openEdgeStore } from '../store/edge/open-edge-store.js';
import type { SyncSqliteDb } from '../store/sqlite/sqlite-meta.js';
import { durableStorageOver } from './deno-sqlite.js';
import { edgePhotoPipeline, readModelFiles, readWasmModules } from './edge-modules.js';
import { createEdgeServer, DEFAULT_HOST, parsePort } from './edge-server.js';

const env = (name: string) => Deno.env.get(name);
const notice = (line: string) => console.error(line);
const port = parsePort(env('PORT'));
const host = env('HOST') || DEFAULT_HOST;
const dbPath = env('COSFACE_DB') || 'cosface.db';

const sqlite = new DatabaseSync(dbPath);
sqlite.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
const db = drizzle(durableStorageOver(sqlite) as never, { schema }) as unknown as SyncSqliteDb;
const readFile = (rel: string) => Deno.readFile(new URL(rel, import.meta.url));
const modules = await readWasmModules(readFile);
const { store } = openEdgeStore(db, { wasm: modules.kernels, location: dbPath, closeDb: () => sqlite.close() });
const { app } = await createEdgeServer({
  store,
  adminKey: env('COSFACE_ADMIN_KEY'),
  pipeline: edgePhotoPipeline(modules, () => readModelFiles(readFile)),
  engine: { backend: 'wasm', adapter: `wasm (SIMD, in-process) on deno ${Deno.version.deno}` },
  notice,
});
const server = Deno.serve(
  {
    port,
    hostname: host,
    onListen: (addr) => {
      const url = `http://${host}:${addr.port}`;
      notice(`cosface ${app.deps.version} listening on ${url} (deno ${Deno.version.deno}; database ${dbPath}; docs ${url}/docs)`);
    },
  },
  (req) => app.fetch(req),
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  Deno.addSignalListener(signal, () => {
    notice(`${signal}: stopping`);
    void server
      .shutdown()
      .then(() => app.close())
      .then(() => store.close())
      .finally(() => Deno.exit(0));
  });
}
