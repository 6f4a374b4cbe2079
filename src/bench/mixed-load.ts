// Mixed HTTP load (`npm run loadtest:mixed`): a real `cosface serve` on a gallery of 100,000 faces,
// N connections for D seconds of identify / verify / enroll / delete by embedding (50/20/20/10),
// then the same operation mix as direct calls of the store in this process (the library API), so
// the cost of HTTP shows as a ratio. Prints requests/s, p50/p99 and errors as markdown.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../embedder.js';
import { openStore } from '../store/index.js';
import { centredRandom } from '../random.js';

interface AutocannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  '2xx': number;
  statusCodeStats?: Record<string, { count: number }>;
}
interface Req {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
}
type Autocannon = (
  o: { url: string; connections: number; duration: number; timeout: number; headers: Record<string, string>; requests: { setupRequest: (r: Req) => Req }[] },
  cb: (err: Error | null, r: AutocannonResult) => void,
) => unknown;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const KEY = 'mixed-load-admin-key-0123456789abcdef';
const GALLERY = 'load';
const DIM = 128;

export interface MixedLoadOptions {
  faces: number;
  connections: number;
  duration: number;
  backend: string;
}

export interface MixedResult {
  where: 'HTTP' | 'in-process';
  seconds: number;
  ops: number;
  opsPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  non2xx: number;
  byOp: Record<string, number>;
}

// Uniform in [-0.5, 0.5): the operation mix below and the random directions depend on it.
const rng = centredRandom;

/** The operation sequence both sides run: op i is the same request over HTTP and in process. */
export class Mix {
  private r = rng(7);
  private enrolled = 0;
  private deleted = 0;
  constructor(
    private base: number[][],
    /** Identities del<first> .. del<first + deletable - 1> are this side's to delete. */
    private first: number,
    private deletable: number,
    private tag: string,
  ) {}
  next(): { op: 'identify' | 'verify' | 'enroll' | 'delete'; embedding: number[]; identity: string } {
    const x = this.r() + 0.5;
    const i = Math.floor((this.r() + 0.5) * this.base.length);
    const near = this.base[i]!.map((v) => v + 0.1 * this.r());
    if (x < 0.5) return { op: 'identify', embedding: near, identity: '' };
    if (x < 0.7) return { op: 'verify', embedding: near, identity: `id${i}` };
    if (x < 0.9 || this.deleted >= this.deletable) return { op: 'enroll', embedding: near, identity: `new-${this.tag}-${this.enrolled++}` };
    return { op: 'delete', embedding: near, identity: `del${this.first + this.deleted++}` };
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

function startServer(db: string, backend: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [join(packageRoot, 'dist/src/cli.js'), 'serve', '--db', db, '--port', '0', '--backend', backend], {
    cwd: packageRoot,
    env: { ...process.env, COSFACE_ADMIN_KEY: KEY },
    stdio: ['ignore', 'ignore', 'pipe'],
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

export async function runMixedLoad(o: MixedLoadOptions, say: (l: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<MixedResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'cosface-mixed-'));
  const db = join(dir, 'load.db');
  try {
    // The gallery: identities of two faces each, plus identities kept for the deletes.
    const r = rng(1);
    const people = Math.floor(o.faces / 2);
    const base = Array.from({ length: people }, () => Array.from({ length: DIM }, r));
    const deletable = Math.max(1000, Math.floor(o.faces / 20));
    let t = performance.now();
    {
      const store = await openStore(db, { synchronous: 'normal' });
      await store.createGallery(GALLERY, { modelId: 'mobilefacenet-arcface', dimension: DIM });
      for (let start = 0; start < people; start += 1000) {
        const items: { identity: string; face: { embedding: number[] } }[] = [];
        const fresh: { externalId: string }[] = [];
        for (let i = start; i < Math.min(people, start + 1000); i++) {
          fresh.push({ externalId: `id${i}` });
          items.push({ identity: `id${i}`, face: { embedding: base[i]! } }, { identity: `id${i}`, face: { embedding: base[i]!.map((v) => v + 0.1 * r()) } });
        }
        await store.addFaces(GALLERY, items, { newIdentities: fresh });
      }
      for (let start = 0; start < deletable; start += 1000) {
        const fresh = Array.from({ length: Math.min(1000, deletable - start) }, (_, k) => ({ externalId: `del${start + k}` }));
        await store.addFaces(GALLERY, fresh.map((f) => ({ identity: f.externalId, face: { embedding: Array.from({ length: DIM }, r) } })), { newIdentities: fresh });
      }
      await store.close(); // writes the index snapshot the server opens
    }
    say(`gallery: ${people * 2 + deletable} faces (${people} identities x 2, ${deletable} to delete) built in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const results: MixedResult[] = [];
    // ---- HTTP ----
    const { child, url } = await startServer(db, o.backend);
    try {
      const warm = await fetch(`${url}/v1/galleries/${GALLERY}/identify`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ embedding: base[0], k: 5 }) });
      if (!warm.ok) throw new Error(`warm-up identify: ${warm.status} ${await warm.text()}`);
      const mix = new Mix(base, 0, Math.floor(deletable / 2), 'http');
      const byOp: Record<string, number> = {};
      say(`HTTP: ${o.connections} connections, ${o.duration} s ...`);
      const a = await new Promise<AutocannonResult>((resolve, reject) =>
        autocannon(
          {
            url,
            connections: o.connections,
            duration: o.duration,
            timeout: 60,
            headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
            requests: [
              {
                setupRequest: (req) => {
                  // Fresh headers on every request: autocannon keeps the Content-Length it computed
                  // for one request in the shared headers object, so a DELETE without a body after a
                  // POST would announce the POST's length, and the server would read the next request
                  // on that connection as its body (the connection then stalls until the run ends).
                  req = { ...req, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } };
                  const m = mix.next();
                  byOp[m.op] = (byOp[m.op] ?? 0) + 1;
                  if (m.op === 'identify') return { ...req, method: 'POST', path: `/v1/galleries/${GALLERY}/identify`, body: JSON.stringify({ embedding: m.embedding, k: 5 }) };
                  if (m.op === 'verify') return { ...req, method: 'POST', path: '/v1/verify', body: JSON.stringify({ a: m.embedding, b: { gallery: GALLERY, identity: m.identity } }) };
                  if (m.op === 'enroll') return { ...req, method: 'POST', path: `/v1/galleries/${GALLERY}/enroll`, body: JSON.stringify({ faces: [{ identity: m.identity, embedding: m.embedding }] }) };
                  return { ...req, headers: { authorization: `Bearer ${KEY}` }, method: 'DELETE', path: `/v1/galleries/${GALLERY}/identities/${m.identity}`, body: undefined };
                },
              },
            ],
          },
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      );
      const ok = a['2xx'];
      results.push({ where: 'HTTP', seconds: a.duration, ops: a.requests.total, opsPerSec: Math.round((ok / a.duration) * 10) / 10, p50ms: a.latency.p50, p99ms: a.latency.p99, errors: a.errors + a.timeouts, non2xx: a.non2xx, byOp });
      say(`HTTP: ${JSON.stringify(results[0])}`);
    } finally {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }

    // ---- the same mix in process, through the store's API ----
    const store = await openStore(db);
    try {
      const mix = new Mix(base, Math.floor(deletable / 2), deletable - Math.floor(deletable / 2), 'lib');
      const lat: number[] = [];
      const byOp: Record<string, number> = {};
      let errors = 0;
      const end = performance.now() + o.duration * 1000;
      const worker = async () => {
        while (performance.now() < end) {
          const m = mix.next();
          byOp[m.op] = (byOp[m.op] ?? 0) + 1;
          const t0 = performance.now();
          try {
            if (m.op === 'identify') await store.identify(GALLERY, m.embedding, { k: 5 });
            else if (m.op === 'verify') await store.verify(m.embedding, { gallery: GALLERY, identity: m.identity });
            else if (m.op === 'enroll') await store.addFaces(GALLERY, [{ identity: m.identity, face: { embedding: m.embedding } }], { newIdentities: [{ externalId: m.identity }] });
            else await store.deleteIdentity(GALLERY, m.identity);
          } catch {
            errors++;
          }
          lat.push(performance.now() - t0);
          // Let the other workers in, as concurrent requests would.
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      t = performance.now();
      await Promise.all(Array.from({ length: o.connections }, worker));
      const seconds = (performance.now() - t) / 1000;
      lat.sort((x, y) => x - y);
      results.push({ where: 'in-process', seconds: Math.round(seconds * 10) / 10, ops: lat.length, opsPerSec: Math.round(((lat.length - errors) / seconds) * 10) / 10, p50ms: Math.round(percentile(lat, 50) * 100) / 100, p99ms: Math.round(percentile(lat, 99) * 100) / 100, errors, non2xx: 0, byOp });
      say(`in-process: ${JSON.stringify(results[1])}`);
    } finally {
      await store.close();
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function mixedTable(rows: MixedResult[]): string {
  const head = '| where | conns | s | ops | ops/s | p50 ms | p99 ms | errors | non-2xx | mix (identify/verify/enroll/delete) |\n|---|---|---|---|---|---|---|---|---|---|';
  return [head, ...rows.map((r) => `| ${r.where} | | ${r.seconds} | ${r.ops} | ${r.opsPerSec} | ${r.p50ms} | ${r.p99ms} | ${r.errors} | ${r.non2xx} | ${['identify', 'verify', 'enroll', 'delete'].map((k) => r.byOp[k] ?? 0).join(' / ')} |`)].join('\n');
}

const invokedDirectly = process.argv[1]?.replace(/\.ts$/, '.js').endsWith('bench/mixed-load.js');
if (invokedDirectly) {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '30' },
      connections: { type: 'string', default: '32' },
      faces: { type: 'string', default: '100000' },
      backend: { type: 'string', default: 'wasm' },
      json: { type: 'string' },
    },
  });
  const o: MixedLoadOptions = { duration: Number(values.duration), connections: Number(values.connections), faces: Number(values.faces), backend: String(values.backend) };
  const load0 = loadavg()[0]!;
  runMixedLoad(o).then(
    (rows) => {
      const ratio = rows[1] && rows[0] ? `HTTP / in-process: ops/s ${(rows[0].opsPerSec / rows[1].opsPerSec).toFixed(2)}x, p50 ${(rows[0].p50ms / Math.max(0.001, rows[1].p50ms)).toFixed(1)}x` : '';
      process.stdout.write(`\n${mixedTable(rows).replace(/\| \| /g, `| ${o.connections} | `)}\n\n${ratio}\n(${cpus().length} cores: ${cpus()[0]?.model ?? '?'}; node ${process.version}; load average ${load0.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end)\n`);
      if (values.json) writeFileSync(values.json, JSON.stringify({ options: o, results: rows }, null, 2));
      process.exit(rows.some((r) => r.errors + r.non2xx > 0) ? 1 : 0);
    },
    (e: unknown) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
