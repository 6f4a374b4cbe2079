// Node entry: `cosface serve` unchanged (better-sqlite3, hnswlib-node, sharp, the WebGPU or WASM
// backend), configured from the environment like the edge entries: PORT, HOST, COSFACE_DB,
// COSFACE_ADMIN_KEY. `npm run serve:node`.
import { CosfaceError } from '../errors.js';
import { serveCommand } from '../server/server.js';
import { DEFAULT_HOST, parsePort } from './edge-server.js';

const env = process.env;
serveCommand({ port: parsePort(env.PORT), host: env.HOST || DEFAULT_HOST, ...(env.COSFACE_DB ? { db: env.COSFACE_DB } : {}), ...(env.COSFACE_BACKEND ? { backend: env.COSFACE_BACKEND } : {}) }).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(e instanceof CosfaceError ? `error ${e.code}: ${e.message}\n` : `${(e as Error).stack}\n`);
    process.exit(e instanceof CosfaceError ? 2 : 1);
  },
);
