// Stand-alone entry for the server (`npx tsx src/server/main.ts --db x.db --port 8080`), the same
// as `cosface serve`.
import { parseArgs } from 'node:util';
import { CosfaceError } from '../errors.js';
import { parseChannels, parseTriple } from '../import/model-metadata.js';
import { serveCommand } from './server.js';

export const SERVE_USAGE = `cosface serve [--db <db>] [--port <n>] [--host <addr>] [--backend auto|webgpu|wasm] [--no-auth]
             [--model <tflite|onnx> [--input-mean M|R,G,B] [--input-std S|R,G,B] [--channels rgb|bgr]]

  --db DB       the store: a SQLite file, pglite:<dir> or postgres://user@host/db (default $COSFACE_DB,
                else cosface.db; created or migrated on open)
  --port N      TCP port (default 8080; 0 picks a free one)
  --host ADDR   address to listen on (default 127.0.0.1, this machine only)
  --backend B   face pipeline backend (default auto: WebGPU when an adapter exists, else WASM)
  --no-auth     no API keys at all (local use only). Without it every route but /health and the
                docs needs "Authorization: Bearer <key>"; the first start prints an admin key
                (or set COSFACE_ADMIN_KEY to choose it).
  --model FILE  embed images with this model (galleries from images get its id and dimension);
                its input normalisation from the flags or a sidecar FILE.json
`;

/** Parses `serve` arguments into startServer options. */
export function parseServeArgs(args: string[]): Parameters<typeof serveCommand>[0] {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({
      args,
      options: {
        db: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, backend: { type: 'string' }, 'no-auth': { type: 'boolean' },
        model: { type: 'string' }, 'input-mean': { type: 'string' }, 'input-std': { type: 'string' }, channels: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `${(e as Error).message}\n\n${SERVE_USAGE}`);
  }
  const port = v.port === undefined ? undefined : Number(v.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new CosfaceError('BAD_INPUT', `--port must be an integer in [0, 65535], got '${String(v.port)}'`);
  }
  return {
    ...(v.db !== undefined ? { db: String(v.db) } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(v.host !== undefined ? { host: String(v.host) } : {}),
    ...(v.backend !== undefined ? { backend: String(v.backend) } : {}),
    auth: v['no-auth'] ? 'disabled' : 'keys',
    ...(v.model !== undefined
      ? {
          model: {
            path: String(v.model),
            metadata: {
              ...(v['input-mean'] !== undefined ? { inputMean: parseTriple(String(v['input-mean']), '--input-mean') } : {}),
              ...(v['input-std'] !== undefined ? { inputStd: parseTriple(String(v['input-std']), '--input-std') } : {}),
              ...(v.channels !== undefined ? { channels: parseChannels(String(v.channels)) } : {}),
            },
          },
        }
      : {}),
  };
}

const invokedDirectly = process.argv[1]?.replace(/\.ts$/, '.js').endsWith('server/main.js');
if (invokedDirectly) {
  serveCommand(parseServeArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(e instanceof CosfaceError ? `error ${e.code}: ${e.message}\n` : `${(e as Error).stack}\n`);
      process.exit(e instanceof CosfaceError ? 2 : 1);
    },
  );
}
