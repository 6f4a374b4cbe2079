// workerd memory: cosface on `wrangler dev --local`, N faces enrolled by embedding over HTTP
// (default 10,000: 2,000 identities x 5), then P probes identified; the isolate's memory read
// through the V8 inspector (Runtime.getHeapUsage: JS heap used/total and ArrayBuffer backing
// stores, garbage included: workerd's inspector does not answer HeapProfiler.collectGarbage), sampled
// every 100 requests; beside the RSS of
// the whole workerd process (runtime, miniflare's own workers and the isolate: an upper bound).
// The limit this is measured against: 128 MB per isolate on Cloudflare.
// Run: node --experimental-websocket --import tsx src/bench/workerd-memory.ts [--faces 10000] [--probes 1000] [--storage f32|f16|int8]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { groupPids, startRuntime } from './runtime-process.js';

const { values: a } = parseArgs({ options: { faces: { type: 'string', default: '10000' }, probes: { type: 'string', default: '1000' }, storage: { type: 'string', default: 'f32' } } });
const FACES = Number(a.faces);
const PROBES = Number(a.probes);
const DIM = 128;
const ADMIN = 'workerd-memory-admin-key-0123456789';

let seed = 7;
const rnd = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
const centre = (i: number) => {
  const s = seed;
  seed = 1000 + i;
  const c = Array.from({ length: DIM }, gauss);
  seed = s;
  return c;
};
const near = (c: number[]) => c.map((x) => Math.round((x + 0.5 * gauss()) * 1e5) / 1e5);

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

interface HeapUsage {
  usedSize: number;
  totalSize: number;
  backingStorageSize?: number;
}

async function inspector(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { origin: 'http://localhost' } } as never);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('cannot reach the workerd inspector'));
  });
  let id = 0;
  const pending = new Map<number, (r: unknown) => void>();
  ws.onmessage = (m) => {
    const d = JSON.parse(String(m.data)) as { id?: number; result?: unknown };
    if (d.id !== undefined && pending.has(d.id)) {
      pending.get(d.id)!(d.result);
      pending.delete(d.id);
    }
  };
  const send = <T>(method: string): Promise<T> =>
    new Promise((resolve) => {
      const i = ++id;
      pending.set(i, resolve as (r: unknown) => void);
      ws.send(JSON.stringify({ id: i, method, params: {} }));
    });
  return {
    async usage(): Promise<HeapUsage> {
      return send<HeapUsage>('Runtime.getHeapUsage');
    },
    enable: () => send('Runtime.enable'),
    close: () => ws.close(),
  };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const isolateBytes = (u: HeapUsage) => u.usedSize + (u.backingStorageSize ?? 0);

const inspectorPort = await freePort();
const r = await startRuntime('workerd', { adminKey: ADMIN, env: { COSFACE_INSPECTOR_PORT: String(inspectorPort), COSFACE_VECTOR_STORAGE: a.storage! }, timeoutMs: 180_000 });
try {
  const post = async (path: string, body: unknown) => {
    const res = await fetch(r.url + path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  await post('/v1/galleries', { name: 'mem' });
  const workerd = groupPids(r).filter((p) => p.comm === 'workerd').map((p) => p.pid);
  const rss = () =>
    workerd.reduce((sum, pid) => {
      try {
        return sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      } catch {
        process.stderr.write(`workerd process ${pid} is gone\n`);
        return sum;
      }
    }, 0);
  process.stderr.write(`started ${r.url}; inspector on ${inspectorPort}\n`);
  const insp = await inspector(inspectorPort);
  process.stderr.write('inspector connected\n');
  await insp.enable();
  const idle = await insp.usage();
  const rssIdle = rss();
  const identities = Math.ceil(FACES / 5);
  const t0 = performance.now();
  for (let i = 0; i < FACES; i += 200) {
    const faces = [];
    for (let j = i; j < Math.min(FACES, i + 200); j++) faces.push({ identity: `id${Math.floor(j / 5)}`, embedding: near(centre(Math.floor(j / 5))) });
    await post('/v1/galleries/mem/enroll', { faces });
  }
  const enrollS = (performance.now() - t0) / 1000;
  // The first identify loads the gallery's vectors into the index (after a restart it would too).
  await post('/v1/galleries/mem/identify', { embedding: near(centre(0)), k: 1 });
  const enrolled = await insp.usage();
  let peak = enrolled;
  let rssPeak = rss();
  let correct = 0;
  for (let i = 0; i < PROBES; i++) {
    const who = Math.floor(rnd() * identities);
    const res = await post('/v1/galleries/mem/identify', { embedding: near(centre(who)), k: 5 });
    if ((res.candidates as { identity: string }[])[0]!.identity === `id${who}`) correct++;
    if (i % 100 === 99) {
      const u = await insp.usage();
      if (isolateBytes(u) > isolateBytes(peak)) peak = u;
      rssPeak = Math.max(rssPeak, rss());
    }
  }
  const after = await insp.usage();
  insp.close();
  console.log(`workerd memory: ${FACES} faces enrolled by embedding (${enrollS.toFixed(1)} s), ${PROBES} identify requests (top-1 correct ${correct}/${PROBES}), exact-scan storage ${a.storage}`);
  console.log('| point | JS heap used MiB | JS heap total MiB | ArrayBuffer backing stores MiB | heap used + backing MiB | workerd process RSS MiB |');
  console.log('|---|---|---|---|---|---|');
  const row = (name: string, u: HeapUsage, rssBytes: number | null) =>
    console.log(`| ${name} | ${mib(u.usedSize)} | ${mib(u.totalSize)} | ${u.backingStorageSize === undefined ? 'n/a' : mib(u.backingStorageSize)} | ${mib(isolateBytes(u))} | ${rssBytes === null ? '' : mib(rssBytes)} |`);
  row('started', idle, rssIdle);
  row(`${FACES} enrolled, index loaded`, enrolled, null);
  row('peak sample during identify', peak, rssPeak);
  row('after identify', after, rss());
} finally {
  await r.stop();
}
