// What the start watchdog of a shard worker (hnsw-shards.ts: a heartbeat in shared memory every 100
// faces added, a timer polling it) costs a normal shard start: 2 shard workers build their graphs
// from vectors in shared memory (as buildShards does) and then load the files they wrote, timed
// until both are ready, against a baseline copy of hnsw-shards.ts (one without the watchdog),
// alternating the two run by run.
//
//   mkdir -p tmp && git show <commit>:src/store/hnsw-shards.ts | sed "s|'\.\./errors\.js'|'../src/errors.js'|" > tmp/hnsw-shards-baseline.ts
//   npx tsx src/bench/shard-start-bench.ts --faces 20000 --runs 5 --baseline tmp/hnsw-shards-baseline.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_HNSW } from '../store/store.js';
import { SHARDED_MIN_M } from '../store/gallery-index.js';
import { makeClusteredGallery } from './search-bench.js';

type Shards = typeof import('../store/hnsw-shards.js');

const { values } = parseArgs({
  options: { faces: { type: 'string', default: '20000' }, runs: { type: 'string', default: '5' }, baseline: { type: 'string' } },
});
const n = Number(values.faces);
const runs = Number(values.runs);
if (!values.baseline) throw new Error('--baseline <path of a copy of hnsw-shards.ts> is required');
const variants: { name: string; mod: Shards }[] = [
  { name: 'watchdog', mod: await import('../store/hnsw-shards.js') },
  { name: 'baseline', mod: (await import(pathToFileURL(resolve(values.baseline)).href)) as Shards },
];

const g = makeClusteredGallery(n, { seed: 7 });
const ids = new Float64Array(new SharedArrayBuffer(n * 8));
for (let r = 0; r < n; r++) ids[r] = r + 1;
const vectors = new Float32Array(new SharedArrayBuffer(n * g.dim * 4));
vectors.set(g.vectors);
const params = { dimension: g.dim, m: SHARDED_MIN_M, efConstruction: DEFAULT_HNSW.efConstruction };

async function once(mod: Shards): Promise<{ build: number; load: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'cosface-shard-start-'));
  try {
    const files = [0, 1].map((s) => join(dir, `s${s}.hnsw`));
    let t0 = performance.now();
    const built = await Promise.all(files.map((path, shard) => mod.startShardWorker(params, { mode: 'build', ids, vectors, shard, shards: 2, path }, { serve: true }).ready));
    const build = performance.now() - t0;
    for (const b of built) b.shard!.close();
    t0 = performance.now();
    const loaded = await Promise.all(files.map((path) => mod.startShardWorker(params, { mode: 'load', path }, { serve: true }).ready));
    const load = performance.now() - t0;
    for (const l of loaded) l.shard!.close();
    return { build, load };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const times = new Map(variants.map((v) => [v.name, { build: [] as number[], load: [] as number[] }]));
console.log(`2 shards x ${n / 2} faces, dim ${g.dim}, M ${params.m}, efConstruction ${params.efConstruction}; load ${loadavg()[0]!.toFixed(2)}`);
for (let r = 0; r < runs; r++) {
  // Alternate which goes first, so a drift in the machine's load falls on both.
  for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
    const t = await once(v.mod);
    times.get(v.name)!.build.push(t.build);
    times.get(v.name)!.load.push(t.load);
    console.log(`run ${r + 1} ${v.name}: build ${(t.build / 1000).toFixed(2)} s, load ${t.load.toFixed(0)} ms (load ${loadavg()[0]!.toFixed(2)})`);
  }
}
const w = times.get('watchdog')!;
const b = times.get('baseline')!;
console.log(`median build: watchdog ${(median(w.build) / 1000).toFixed(2)} s, baseline ${(median(b.build) / 1000).toFixed(2)} s, ratio ${(median(w.build) / median(b.build)).toFixed(3)}`);
console.log(`median load: watchdog ${median(w.load).toFixed(0)} ms, baseline ${median(b.load).toFixed(0)} ms, ratio ${(median(w.load) / median(b.load)).toFixed(3)}`);
