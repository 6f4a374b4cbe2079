// workerd memory: cosface on `wrangler dev --local`, N faces enrolled by embedding over HTTP
// (default 10,000: 2,000 identities x 5), then P probes identified; the isolate's memory read
// through the V8 inspector (Runtime.getHeapUsage: JS heap used/total and ArrayBuffer backing
// stores, garbage included: workerd's inspector does not answer HeapProfiler.collectGarbage), sampled
// every 100 requests, plus the WebAssembly memories of the isolate (every WebAssembly.Memory object,
// found with Runtime.queryObjects, which first collects garbage: read at the start and end points
// only; getHeapUsage leaves WASM memory out of its backing stores); beside the RSS of
// the whole workerd process (runtime, miniflare's own workers and the isolate: an upper bound).
// The limit this is measured against: 128 MB per isolate on Cloudflare.
// With --galleries G, G galleries of N faces each (the probes go to each in turn).
// Run: node --experimental-websocket --import tsx src/bench/workerd-memory.ts [--faces 10000] [--probes 1000] [--storage f32|f16|int8] [--galleries 1]
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { gaussian } from '../random.js';
import { groupPids, startRuntime } from './runtime-process.js';

const { values: a } = parseArgs({ options: { faces: { type: 'string', default: '10000' }, probes: { type: 'string', default: '1000' }, storage: { type: 'string', default: 'f32' }, galleries: { type: 'string', default: '1' } } });
const FACES = Number(a.faces);
const GALLERIES = Number(a.galleries);
const names = Array.from({ length: GALLERIES }, (_, i) => (i === 0 ? 'mem' : `mem${i}`));
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
const gauss = gaussian(rnd);
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
  const contexts: number[] = [];
  ws.onmessage = (m) => {
    const d = JSON.parse(String(m.data)) as { id?: number; result?: unknown; method?: string; params?: { context?: { id: number } } };
    if (d.method === 'Runtime.executionContextCreated' && d.params?.context) contexts.push(d.params.context.id);
    if (d.id !== undefined && pending.has(d.id)) {
      pending.get(d.id)!(d.result);
      pending.delete(d.id);
    }
  };
  const send = <T>(method: string, params: Record<string, unknown> = {}): Promise<T> =>
    new Promise((resolve) => {
      const i = ++id;
      pending.set(i, resolve as (r: unknown) => void);
      ws.send(JSON.stringify({ id: i, method, params }));
    });
  return {
    async usage(): Promise<HeapUsage> {
      return send<HeapUsage>('Runtime.getHeapUsage');
    },
    /** Bytes of every WebAssembly.Memory in the worker's context (after a garbage collection), or null if unreadable. */
    async wasmBytes(): Promise<number | null> {
      const contextId = contexts[contexts.length - 1];
      if (contextId === undefined) return null;
      const proto = await send<{ result?: { objectId?: string } }>('Runtime.evaluate', { contextId, expression: 'WebAssembly.Memory.prototype' });
      if (!proto.result?.objectId) return null;
      const found = await send<{ objects?: { objectId?: string } }>('Runtime.queryObjects', { prototypeObjectId: proto.result.objectId });
      if (!found.objects?.objectId) return null;
      const sum = await send<{ result?: { value?: number } }>('Runtime.callFunctionOn', {
        objectId: found.objects.objectId,
        functionDeclaration: 'function () { return this.reduce((s, m) => s + m.buffer.byteLength, 0); }',
        returnByValue: true,
      });
      return sum.result?.value ?? null;
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
  for (const name of names) await post('/v1/galleries', { name });
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
  const wasmIdle = await insp.wasmBytes();
  const rssIdle = rss();
  const identities = Math.ceil(FACES / 5);
  const t0 = performance.now();
  for (let i = 0; i < FACES; i += 200) {
    const faces = [];
    for (let j = i; j < Math.min(FACES, i + 200); j++) faces.push({ identity: `id${Math.floor(j / 5)}`, embedding: near(centre(Math.floor(j / 5))) });
    for (const name of names) await post(`/v1/galleries/${name}/enroll`, { faces });
  }
  const enrollS = (performance.now() - t0) / 1000;
  // The first identify loads the gallery's vectors into the index (after a restart it would too).
  for (const name of names) await post(`/v1/galleries/${name}/identify`, { embedding: near(centre(0)), k: 1 });
  const enrolled = await insp.usage();
  const wasmEnrolled = await insp.wasmBytes();
  let peak = enrolled;
  let rssPeak = rss();
  let correct = 0;
  for (let i = 0; i < PROBES; i++) {
    const who = Math.floor(rnd() * identities);
    const res = await post(`/v1/galleries/${names[i % GALLERIES]}/identify`, { embedding: near(centre(who)), k: 5 });
    if ((res.candidates as { identity: string }[])[0]!.identity === `id${who}`) correct++;
    if (i % 100 === 99) {
      const u = await insp.usage();
      if (isolateBytes(u) > isolateBytes(peak)) peak = u;
      rssPeak = Math.max(rssPeak, rss());
    }
  }
  const after = await insp.usage();
  const wasmAfter = await insp.wasmBytes();
  insp.close();
  console.log(`workerd memory: ${GALLERIES > 1 ? `${GALLERIES} galleries x ` : ''}${FACES} faces enrolled by embedding (${enrollS.toFixed(1)} s), ${PROBES} identify requests (top-1 correct ${correct}/${PROBES}), exact-scan storage ${a.storage}`);
  console.log('| point | JS heap used MiB | JS heap total MiB | ArrayBuffer backing stores MiB | heap used + backing MiB | WASM memories MiB | used + backing + WASM MiB | workerd process RSS MiB |');
  console.log('|---|---|---|---|---|---|---|---|');
  const row = (name: string, u: HeapUsage, wasm: number | null, rssBytes: number | null) =>
    console.log(
      `| ${name} | ${mib(u.usedSize)} | ${mib(u.totalSize)} | ${u.backingStorageSize === undefined ? 'n/a' : mib(u.backingStorageSize)} | ${mib(isolateBytes(u))} | ${wasm === null ? '' : mib(wasm)} | ${wasm === null ? '' : mib(isolateBytes(u) + wasm)} | ${rssBytes === null ? '' : mib(rssBytes)} |`,
    );
  row('started', idle, wasmIdle, rssIdle);
  row(`${GALLERIES > 1 ? `${GALLERIES} x ` : ''}${FACES} enrolled, index loaded`, enrolled, wasmEnrolled, null);
  row('peak sample during identify', peak, null, rssPeak);
  row('after identify', after, wasmAfter, rss());
} finally {
  await r.stop();
}
