// HTTP load test (`npm run loadtest`): starts `cosface serve` in a child process on a fresh database,
// enrolls a synthetic gallery, and drives it with autocannon: identify by embedding (one probe per
// request, and batches of probes per request), and identify by image. Prints throughput and
// latency percentiles as markdown (and JSON with --json).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../embedder.js';
import { centredRandom } from '../random.js';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  '2xx': number;
}
interface AutocannonRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  setupRequest?: (req: AutocannonRequest) => AutocannonRequest;
}
type Autocannon = (
  o: { url: string; connections: number; duration: number; timeout: number; headers?: Record<string, string>; requests: AutocannonRequest[] },
  cb: (err: Error | null, r: AutocannonResult) => void,
) => unknown;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadTestOptions {
  /** Seconds per scenario (default 30). */
  duration: number;
  connections: number;
  /** Faces enrolled (two per identity; default 10000). */
  faces: number;
  /** Probes per request in the batched scenario (default 16). */
  batch: number;
  backend: string;
  /** Skip the image scenario (it is bound by the face pipeline, seconds per photo on a CPU). */
  images: boolean;
}

export interface ScenarioResult {
  scenario: string;
  connections: number;
  seconds: number;
  requests: number;
  requestsPerSec: number;
  /** Probes (faces or embeddings) identified per second. */
  probesPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  non2xx: number;
  timeouts: number;
}

const KEY = 'loadtest-admin-key-0123456789abcdef';

// Uniform in [-0.5, 0.5): the operation mix below and the random directions depend on it.
const rng = centredRandom;
const vector = (r: () => number) => Array.from({ length: 128 }, r);
/** A probe near identity i's first template. */
function probeFor(base: number[][], i: number, r: () => number): number[] {
  return base[i % base.length]!.map((x) => x + 0.1 * r());
}

function startServer(db: string, backend: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [join(packageRoot, 'node_modules/tsx/dist/cli.mjs'), join(packageRoot, 'src/server/main.ts'), '--db', db, '--port', '0', '--backend', backend], {
    cwd: packageRoot,
    env: { ...process.env, COSFACE_ADMIN_KEY: KEY },
    stdio: ['ignore', 'ignore', 'pipe'], // request log lines (stdout) are dropped: they would cost the client time
  });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ child, url: m[1]! });
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}):\n${err}`)));
  });
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

function run(url: string, o: LoadTestOptions, bodies: string[], path: string): Promise<AutocannonResult> {
  let i = 0;
  return new Promise((resolve, reject) =>
    autocannon(
      {
        url,
        connections: o.connections,
        duration: o.duration,
        // Image requests queue behind the pipeline: allow for the whole queue ahead of one.
        timeout: 600,
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        requests: [{ method: 'POST', path, setupRequest: (req) => ({ ...req, body: bodies[i++ % bodies.length]! }) }],
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    ),
  );
}

function summarise(scenario: string, o: LoadTestOptions, r: AutocannonResult, probesPerRequest: number): ScenarioResult {
  const ok = r['2xx'];
  return {
    scenario,
    connections: o.connections,
    seconds: r.duration,
    requests: r.requests.total,
    requestsPerSec: round(ok / r.duration),
    probesPerSec: round((ok * probesPerRequest) / r.duration),
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
    timeouts: r.timeouts,
  };
}
const round = (x: number) => Math.round(x * 10) / 10;

export async function runLoadTest(o: LoadTestOptions, say: (l: string) => void = (l) => process.stderr.write(l + '\n')): Promise<ScenarioResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cosface-load-'));
  const { child, url } = await startServer(join(dir, 'load.db'), o.backend);
  try {
    const info = (await api(url, 'GET', '/v1/info')) as { backend: string; adapter: string; scorer: string };
    say(`server ${url}: ${info.backend} (${info.adapter}), scorer ${info.scorer}`);
    await api(url, 'POST', '/v1/galleries', { name: 'load' });
    const r = rng(1);
    const identities = Math.max(1, Math.floor(o.faces / 2));
    const base = Array.from({ length: identities }, () => vector(r));
    const t0 = performance.now();
    for (let start = 0; start < identities; start += 500) {
      const faces = [];
      for (let i = start; i < Math.min(identities, start + 500); i++) {
        faces.push({ identity: `id${i}`, embedding: base[i] }, { identity: `id${i}`, embedding: probeFor(base, i, r) });
      }
      await api(url, 'POST', '/v1/galleries/load/enroll', { faces });
    }
    say(`enrolled ${identities * 2} faces (${identities} identities) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const results: ScenarioResult[] = [];
    const probes = Array.from({ length: 512 }, (_, i) => probeFor(base, i * 7, r));
    const single = probes.map((p) => JSON.stringify({ embedding: p, k: 5 }));
    say(`identify by embedding, ${o.connections} connections, ${o.duration} s ...`);
    results.push(summarise('identify by embedding (1 probe/request)', o, await run(url, o, single, '/v1/galleries/load/identify'), 1));
    const batches = Array.from({ length: 64 }, (_, b) => JSON.stringify({ probes: Array.from({ length: o.batch }, (_, j) => probes[(b * o.batch + j) % probes.length]), k: 5 }));
    say(`identify batch of ${o.batch}, ${o.connections} connections, ${o.duration} s ...`);
    results.push(summarise(`identify by embedding (${o.batch} probes/request)`, o, await run(url, o, batches, '/v1/galleries/load/identify/batch'), o.batch));

    if (o.images) {
      // A real face enrolled from its photo, probed with the same person's other photo.
      const aligned = (f: string) => readFileSync(join(packageRoot, 'test/fixtures/aligned', f)).toString('base64');
      await api(url, 'POST', '/v1/galleries/load/enroll', { faces: [{ identity: 'sorkin', image: aligned('Aaron_Sorkin_0001.png') }] });
      const imageBody = [JSON.stringify({ image: aligned('Aaron_Sorkin_0002.png'), k: 5 })];
      say(`identify by image (112x112 PNG), ${o.connections} connections, ${o.duration} s ...`);
      results.push(summarise('identify by image (112x112 PNG, 1 face)', o, await run(url, o, imageBody, '/v1/galleries/load/identify'), 1));
      const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
      const count = /cosface_embed_batch_size_count (\d+)/.exec(metrics)?.[1];
      const sum = /cosface_embed_batch_size_sum (\d+)/.exec(metrics)?.[1];
      if (count && sum) say(`face-pipeline batches: ${count}, mean photos per batch ${(Number(sum) / Number(count)).toFixed(2)}`);
    }
    return results;
  } finally {
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

export function markdownTable(rows: ScenarioResult[]): string {
  const head = '| scenario | conns | s | requests/s | probes/s | p50 ms | p99 ms | errors | non-2xx | timeouts |\n|---|---|---|---|---|---|---|---|---|---|';
  return [head, ...rows.map((r) => `| ${r.scenario} | ${r.connections} | ${r.seconds} | ${r.requestsPerSec} | ${r.probesPerSec} | ${r.p50ms} | ${r.p99ms} | ${r.errors} | ${r.non2xx} | ${r.timeouts} |`)].join('\n');
}

const invokedDirectly = process.argv[1]?.replace(/\.ts$/, '.js').endsWith('bench/loadtest.js');
if (invokedDirectly) {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '30' },
      connections: { type: 'string', default: '32' },
      faces: { type: 'string', default: '10000' },
      batch: { type: 'string', default: '16' },
      backend: { type: 'string', default: 'auto' },
      'no-images': { type: 'boolean' },
      json: { type: 'string' },
    },
  });
  const o: LoadTestOptions = {
    duration: Number(values.duration),
    connections: Number(values.connections),
    faces: Number(values.faces),
    batch: Number(values.batch),
    backend: String(values.backend),
    images: !values['no-images'],
  };
  runLoadTest(o).then(
    (rows) => {
      process.stdout.write(`\n${markdownTable(rows)}\n\n(${cpus().length} cores: ${cpus()[0]?.model ?? '?'}; node ${process.version})\n`);
      if (values.json) writeFileSync(values.json, JSON.stringify({ options: o, results: rows }, null, 2));
      process.exit(rows.some((r) => r.errors + r.non2xx + r.timeouts > 0) ? 1 : 0);
    },
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
