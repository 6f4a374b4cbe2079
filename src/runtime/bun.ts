// Bun entry: bun:sqlite through drizzle's bun-sqlite driver, the exact-scan index and the face
// pipeline on the in-process WASM kernels, photos decoded by the WASM codecs, Bun.serve.
// `npm run serve:bun`; PORT, HOST, COSFACE_DB and COSFACE_ADMIN_KEY as for `cosface serve`.
import { Database } from 'bun:sqlite';
import { drizzle } from 'drizzle-orm/bun-sqlite';
import * as schema from '../db/schema.js';
import { openEdgeStore } from '../store/edge/open-edge-store.js';
import type { SyncSqliteDb } from '../store/sqlite/sqlite-meta.js';
import { createEdgeServer, DEFAULT_HOST, parsePort } from './edge-server.js';
import { edgePhotoPipeline, readModelFiles, readWasmModules } from './edge-modules.js';

const env = process.env;
const notice = (line: string) => console.error(line);
const port = parsePort(env.PORT);
const host = env.HOST || DEFAULT_HOST;
const dbPath = env.COSFACE_DB || 'cosface.db';

const sqlite = new Database(dbPath, { create: true });
sqlite.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;');
const db = drizzle(sqlite, { schema }) as unknown as SyncSqliteDb;
const readFile = async (rel: string) => new Uint8Array(await Bun.file(new URL(rel, import.meta.url)).arrayBuffer());
const modules = await readWasmModules(readFile);
const { store } = openEdgeStore(db, { wasm: modules.kernels, location: dbPath, closeDb: () => sqlite.close() });
const { app } = await createEdgeServer({
  store,
  adminKey: env.COSFACE_ADMIN_KEY,
  pipeline: edgePhotoPipeline(modules, () => readModelFiles(readFile)),
  engine: { backend: 'wasm', adapter: `wasm (SIMD, in-process) on bun ${Bun.version}` },
  notice,
});
const server = Bun.serve({ port, hostname: host, fetch: (req) => app.fetch(req), maxRequestBodySize: 64 * 2 ** 20 });
const url = `http://${host}:${server.port}`;
notice(`cosface ${app.deps.version} listening on ${url} (bun ${Bun.version}; database ${dbPath}; docs ${url}/docs)`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    notice(`${signal}: stopping`);
    server.stop();
    void app.close().then(() => store.close()).finally(() => process.exit(0));
  });
}
