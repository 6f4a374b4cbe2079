// `npm run serve:workerd`: cosface on workerd through `wrangler dev --local` (miniflare, offline),
// configured from the environment as `cosface serve` is: PORT (default 8080; 0 picks a free one),
// HOST (default 127.0.0.1), COSFACE_ADMIN_KEY (handed to the Worker in a private env file, not on
// the command line), COSFACE_VECTOR_STORAGE (f32, f16, int8), COSFACE_MAX_PIXELS, and
// COSFACE_WORKERD_STATE (where the Durable Object's SQLite lives; default .wrangler/state).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;

function freePort(host) {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const host = env.HOST || '127.0.0.1';
let port = env.PORT === undefined || env.PORT === '' ? 8080 : Number(env.PORT);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`error BAD_INPUT: PORT must be an integer in [0, 65535], got '${env.PORT}'`);
  process.exit(2);
}
if (port === 0) port = await freePort(host);

const secrets = mkdtempSync(path.join(tmpdir(), 'cosface-workerd-'));
const envFile = path.join(secrets, 'worker.env');
const vars = ['COSFACE_ADMIN_KEY', 'COSFACE_VECTOR_STORAGE', 'COSFACE_MAX_PIXELS'].filter((k) => env[k]).map((k) => `${k}=${JSON.stringify(env[k])}`);
writeFileSync(envFile, vars.join('\n') + '\n', { mode: 0o600 });

const wrangler = path.join(root, 'node_modules/wrangler/bin/wrangler.js');
const args = ['dev', '--local', '--port', String(port), '--ip', host, '--persist-to', env.COSFACE_WORKERD_STATE || path.join(root, '.wrangler/state'),
  '--env-file', envFile, '--show-interactive-dev-session=false', '--inspector-port', env.COSFACE_INSPECTOR_PORT || '0'];
const child = spawn(process.execPath, [wrangler, ...args], { cwd: root, env: { ...env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] });
let announced = false;
const watch = (stream, out) =>
  stream.on('data', (d) => {
    out.write(d);
    if (!announced && /Ready on http/.test(d.toString())) {
      announced = true;
      const url = `http://${host}:${port}`;
      console.error(`cosface listening on ${url} (workerd via wrangler dev --local; docs ${url}/docs)`);
    }
  });
watch(child.stdout, process.stdout);
watch(child.stderr, process.stderr);
const cleanup = () => rmSync(secrets, { recursive: true, force: true });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  cleanup();
  process.exit(code ?? (signal ? 0 : 1));
});
