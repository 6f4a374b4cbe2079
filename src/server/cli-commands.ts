// The server's CLI commands, in the shape of src/commands/index.ts's table: `cosface serve` and
// `cosface keys create|list|revoke`.
import { parseArgs } from 'node:util';
import { CosfaceError } from '../errors.js';
import { openStore, storeLocation } from '../store/index.js';
import { ApiKeys } from './api-keys.js';
import { parseServeArgs, SERVE_USAGE } from './main.js';
import { serveCommand } from './server.js';

export const KEYS_USAGE = `cosface keys create [--gallery <name>] [--name <label>] [--db <path|url>] [--json]   prints the key once; no --gallery: an admin key
cosface keys list [--db <path|url>] [--json]
cosface keys revoke <id> [--db <path|url>]`;

export const SERVER_USAGE = [
  '  cosface serve [--db <path|url>] [--port 8080] [--host 127.0.0.1] [--backend auto|webgpu|wasm] [--no-auth]   HTTP API; docs at /docs',
  '  cosface keys create [--gallery <name>] [--name <label>] | list | revoke <id>   [--db <path|url>] [--json]   API keys',
];

export async function serveCli(args: string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(SERVE_USAGE);
    return;
  }
  await serveCommand(parseServeArgs(args));
}

export async function keysCli(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: { db: { type: 'string' }, gallery: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `${(e as Error).message}\n\n${KEYS_USAGE}`);
  }
  const { values, positionals } = parsed;
  const store = await openStore(storeLocation(values.db === undefined ? undefined : String(values.db)));
  const keys = ApiKeys.of(store);
  const out = (human: string, data: unknown) => process.stdout.write(values.json ? `${JSON.stringify(data)}\n` : `${human}\n`);
  try {
    if (sub === 'create') {
      const gallery = values.gallery === undefined ? null : String(values.gallery);
      const k = await keys.create({ name: String(values.name ?? (gallery ? `key for ${gallery}` : 'admin')), gallery });
      out(`${k.key}\n(key ${k.id} "${k.name}" for ${gallery ? `gallery "${gallery}"` : 'every gallery (admin)'}; shown once, only its hash is stored)`, k);
    } else if (sub === 'list') {
      const list = await keys.list();
      out(list.map((k) => `${k.id}\t${k.name}\t${k.gallery ?? '(admin)'}\t${k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'live'}`).join('\n') || '(no keys)', list);
    } else if (sub === 'revoke') {
      const id = Number(positionals[0]);
      if (!Number.isSafeInteger(id) || id < 1) throw new CosfaceError('BAD_INPUT', `keys revoke: give the key id (see cosface keys list)\n\n${KEYS_USAGE}`);
      const k = await keys.revoke(id);
      out(`revoked key ${k.id} "${k.name}"`, k);
    } else {
      throw new CosfaceError('BAD_INPUT', `keys: unknown subcommand '${sub ?? ''}'\n\n${KEYS_USAGE}`);
    }
  } finally {
    await store.close();
  }
}
