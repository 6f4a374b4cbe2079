// Edge benchmark: the same gallery (default 10,000 face-like vectors: 2,000 identities x 5
// templates) enrolled by embedding over HTTP into Node (hnswlib), Bun, Deno and workerd (exact
// scan), the same probes (default 1,000) identified one request at a time on each, in one run.
// Prints, per runtime: identify p50/p99 (client-side, loopback) and the ratio of p50 to Node's,
// how many top-1 answers differ from Node's, and the peak resident memory of the runtime's
// process (for workerd: the workerd process itself, which holds the isolate, an upper bound on
// the isolate's memory). Run: npx tsx src/bench/edge-bench.ts [--faces 10000] [--probes 1000]
// [--runtimes node,bun,deno,workerd] [--storage f32|f16|int8]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { groupPids, RUNTIMES, startRuntime, type RunningRuntime, type RuntimeName } from './runtime-process.js';
import { gaussian, mulberry32 } from '../random.js';

const { values: a } = parseArgs({
  options: { faces: { type: 'string', default: '10000' }, probes: { type: 'string', default: '1000' }, runtimes: { type: 'string', default: RUNTIMES.join(',') }, storage: { type: 'string', default: 'f32' } },
});
const FACES = Number(a.faces);
const PROBES = Number(a.probes);
const TEMPLATES = 5;
const DIM = 128;
const ADMIN = 'edge-bench-admin-key-0123456789';
const runtimes = a.runtimes!.split(',') as RuntimeName[];

/** mulberry32 */
const rng = mulberry32;
const rnd = rng(20261206);
const gauss = gaussian(rnd);
const round = (x: number) => Math.round(x * 1e5) / 1e5;
const identities = Math.ceil(FACES / TEMPLATES);
const centres = Array.from({ length: identities }, () => Array.from({ length: DIM }, gauss));
// Spread 0.5 per dimension around a centre: templates of one person at cosine ~0.8, like real ones.
const near = (c: number[]) => c.map((x) => round(x + 0.5 * gauss()));
const faces = Array.from({ length: FACES }, (_, i) => ({ identity: `id${Math.floor(i / TEMPLATES)}`, embedding: near(centres[Math.floor(i / TEMPLATES)]!) }));
const probes = Array.from({ length: PROBES }, () => near(centres[Math.floor(rnd() * identities)]!));

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The process that holds the server: workerd under wrangler, else the runtime under npm. */
function serverPid(r: RunningRuntime): number {
  const procs = groupPids(r);
  const want = r.name === 'workerd' ? 'workerd' : r.name === 'node' ? 'node' : r.name;
  const hits = procs.filter((p) => p.comm.startsWith(want) && p.pid !== r.child.pid);
  // node: npm itself is a node process; the server is the last node started (tsx's child).
  return (hits.length ? hits[hits.length - 1]! : procs[procs.length - 1]!).pid;
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface Result {
  name: RuntimeName;
  top1: string[];
  p50: number;
  p99: number;
  enrollS: number;
  rssIdleMiB: number;
  rssPeakMiB: number;
}

async function runOne(name: RuntimeName): Promise<Result> {
  const r = await startRuntime(name, { adminKey: ADMIN, env: { COSFACE_VECTOR_STORAGE: a.storage! }, timeoutMs: 180_000 });
  try {
    const pid = serverPid(r);
    const g = await post(`${r.url}/v1/galleries`, { name: 'bench' });
    if (g.status !== 201) throw new Error(`${name}: create gallery ${g.status} ${JSON.stringify(g.json)}`);
    // Warm up the process and sample its idle memory.
    await post(`${r.url}/v1/galleries/bench/identify`, { embedding: probes[0], k: 1 });
    const rssIdle = rssKiB(pid);
    let peak = rssIdle;
    const t0 = performance.now();
    for (let i = 0; i < faces.length; i += 200) {
      const res = await post(`${r.url}/v1/galleries/bench/enroll`, { faces: faces.slice(i, i + 200) });
      if (res.status !== 201) throw new Error(`${name}: enroll ${res.status} ${JSON.stringify(res.json).slice(0, 300)}`);
      peak = Math.max(peak, rssKiB(pid));
    }
    const enrollS = (performance.now() - t0) / 1000;
    const top1: string[] = [];
    const ms: number[] = [];
    for (let i = 0; i < probes.length; i++) {
      const t = performance.now();
      const res = await post(`${r.url}/v1/galleries/bench/identify`, { embedding: probes[i], k: 1 });
      ms.push(performance.now() - t);
      if (res.status !== 200) throw new Error(`${name}: identify ${res.status} ${JSON.stringify(res.json)}`);
      top1.push((res.json.candidates as { identity: string }[])[0]!.identity);
      if (i % 50 === 0) peak = Math.max(peak, rssKiB(pid));
    }
    peak = Math.max(peak, rssKiB(pid));
    ms.sort((x, y) => x - y);
    return { name, top1, p50: ms[Math.floor(ms.length / 2)]!, p99: ms[Math.floor(ms.length * 0.99)]!, enrollS, rssIdleMiB: rssIdle / 1024, rssPeakMiB: peak / 1024 };
  } finally {
    await r.stop();
  }
}

const results: Result[] = [];
for (const name of runtimes) {
  process.stderr.write(`${name}...\n`);
  results.push(await runOne(name));
}
const ref = results.find((x) => x.name === 'node') ?? results[0]!;
console.log(`edge bench: ${FACES} faces (${identities} identities x ${TEMPLATES}), ${PROBES} probes, one identify request at a time, edge storage ${a.storage}`);
console.log('| runtime | search | identify p50 ms | p99 ms | p50 / Node | top-1 differing from Node | enroll s | RSS idle MiB | RSS peak MiB |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const x of results) {
  const differ = x.top1.filter((id, i) => id !== ref.top1[i]).length;
  const search = x.name !== 'node' ? `exact scan (WASM, ${a.storage})` : FACES > 2000 ? 'hnswlib (M 32, ef 128) + exact re-rank' : 'exact scan (under 2000 faces)';
  console.log(
    `| ${x.name} | ${search} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ${(x.p50 / ref.p50).toFixed(2)} | ${differ} / ${x.top1.length} | ${x.enrollS.toFixed(1)} | ${x.rssIdleMiB.toFixed(0)} | ${x.rssPeakMiB.toFixed(0)} |`,
  );
}
