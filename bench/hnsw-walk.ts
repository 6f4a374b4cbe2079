// What an hnswlib search does per query: reads one shard file written by `cosface bench search
// --cache` (hnswlib's own format), repeats hnswlib's searchKnn step by step in TypeScript (greedy
// descent through the upper layers, then the ef-wide beam on layer 0, with hnswlib's stopping
// rule), and counts per query the distance computations (each one a vector of dim floats read
// from a random place in the graph: a cache miss at this size), the beam's expansions (each one a
// link list read), and checks its top-10 against hnswlib's on the same file. Probes are the
// benchmark's own (same generator and seed), so the counts explain the latencies measured there.
//
//   npx tsx bench/hnsw-walk.ts <shard file> <gallery size N> [ef,...] [queries]
import hnswlib from 'hnswlib-node';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { makeClusteredGallery, makeProbes } from '../src/bench/search-bench.js';

const [file, nArg, efArg = '128,256,512', qArg = '200'] = process.argv.slice(2);
if (!file || !nArg) {
  console.error('usage: npx tsx bench/hnsw-walk.ts <shard file> <gallery size N> [ef,...] [queries]');
  process.exit(2);
}
const n = Number(nArg);
const efs = efArg.split(',').map(Number);
const queries = Number(qArg);

const buf = readFileSync(file);
const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
let at = 0;
const u64 = () => {
  const v = Number(dv.getBigUint64(at, true));
  at += 8;
  return v;
};
u64(); // offsetLevel0
u64(); // max elements
const count = u64();
const sizePer = u64();
const labelOffset = u64();
const dataOffset = u64();
const maxLevel = dv.getInt32(at, true);
at += 4;
const enter = dv.getUint32(at, true);
at += 4;
const maxM = u64();
const maxM0 = u64();
u64(); // M
at += 8; // mult
u64(); // efConstruction
const level0 = at;
at += count * sizePer;
const links = new Float64Array(count).fill(-1);
for (let i = 0; i < count; i++) {
  const size = dv.getUint32(at, true);
  at += 4;
  if (size) links[i] = at;
  at += size;
}
const linkBytes = maxM * 4 + 4;
const dim = (labelOffset - dataOffset) / 4;
if (buf.byteOffset % 4 !== 0 || (level0 + dataOffset) % 4 !== 0) throw new Error('unaligned vectors');
const f32 = new Float32Array(buf.buffer, buf.byteOffset, Math.floor(buf.byteLength / 4));
const label = (i: number) => Number(dv.getBigUint64(level0 + i * sizePer + labelOffset, true));
console.log(`${file}: ${count} elements, dim ${dim}, maxM ${maxM}, maxM0 ${maxM0}, top level ${maxLevel}, ${(buf.byteLength / 2 ** 20).toFixed(0)} MiB`);

let distances = 0;
const dist = (q: Float32Array, i: number) => {
  distances++;
  const o = (level0 + i * sizePer + dataOffset) / 4;
  let s = 0;
  for (let d = 0; d < dim; d++) s += q[d]! * f32[o + d]!;
  return 1 - s;
};

/** Binary heap of (dist, id); `max` orders the largest first. */
class Heap {
  d: number[] = [];
  id: number[] = [];
  constructor(private readonly max: boolean) {}
  get size() {
    return this.d.length;
  }
  private before(a: number, b: number) {
    return this.max ? this.d[a]! > this.d[b]! : this.d[a]! < this.d[b]!;
  }
  private swap(a: number, b: number) {
    [this.d[a], this.d[b]] = [this.d[b]!, this.d[a]!];
    [this.id[a], this.id[b]] = [this.id[b]!, this.id[a]!];
  }
  push(d: number, id: number) {
    this.d.push(d);
    this.id.push(id);
    for (let i = this.d.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop() {
    const last = this.d.length - 1;
    this.swap(0, last);
    this.d.pop();
    this.id.pop();
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let b = i;
      if (l < this.d.length && this.before(l, b)) b = l;
      if (r < this.d.length && this.before(r, b)) b = r;
      if (b === i) break;
      this.swap(i, b);
      i = b;
    }
  }
}

const visited = new Uint32Array(count);
let stamp = 0;

/** hnswlib's searchKnn (no deletions, no filter): returns the labels found and what it cost. */
function search(q: Float32Array, k: number, ef: number) {
  distances = 0;
  let cur = enter;
  let curDist = dist(q, cur);
  let upperDistances = 0;
  for (let level = maxLevel; level > 0; level--) {
    for (let changed = true; changed; ) {
      changed = false;
      const o = links[cur]! + (level - 1) * linkBytes;
      const size = dv.getUint16(o, true);
      for (let j = 0; j < size; j++) {
        const c = dv.getUint32(o + 4 + 4 * j, true);
        const d = dist(q, c);
        if (d < curDist) {
          curDist = d;
          cur = c;
          changed = true;
        }
      }
    }
  }
  upperDistances = distances;
  stamp++;
  const top = new Heap(true);
  const cand = new Heap(false);
  let lower = curDist;
  top.push(curDist, cur);
  cand.push(curDist, cur);
  visited[cur] = stamp;
  let expansions = 0;
  const width = Math.max(ef, k);
  while (cand.size > 0) {
    const cd = cand.d[0]!;
    const c = cand.id[0]!;
    if (cd > lower) break; // hnswlib: no deletions and no filter stop here even before top holds ef
    cand.pop();
    expansions++;
    const o = level0 + c * sizePer;
    const size = dv.getUint16(o, true);
    for (let j = 0; j < size; j++) {
      const e = dv.getUint32(o + 4 + 4 * j, true);
      if (visited[e] === stamp) continue;
      visited[e] = stamp;
      const d = dist(q, e);
      if (top.size < width || lower > d) {
        cand.push(d, e);
        top.push(d, e);
        if (top.size > width) top.pop();
        lower = top.d[0]!;
      }
    }
  }
  const out: { d: number; id: number }[] = top.d.map((d, i) => ({ d, id: top.id[i]! }));
  out.sort((a, b) => a.d - b.d);
  return { labels: out.slice(0, k).map((x) => label(x.id)), distances, upperDistances, expansions };
}

// The benchmark's gallery and probes (search-bench.ts: seed 1 + N, 2 faces per identity).
const g = makeClusteredGallery(n, { facesPerIdentity: 2, seed: 1 + n });
const { probes } = makeProbes(g, Math.max(queries, 500));
const ix = new hnswlib.HierarchicalNSW('ip', dim);
ix.readIndexSync(file);
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
for (const ef of efs) {
  ix.setEf(ef);
  const dc: number[] = [];
  const up: number[] = [];
  const ex: number[] = [];
  const t: number[] = [];
  let same = 0;
  for (let qi = 0; qi < queries; qi++) {
    const q = probes.subarray(qi * dim, (qi + 1) * dim);
    const r = search(q, 10, ef);
    const t0 = performance.now();
    const h = ix.searchKnn(Array.from(q), 10);
    t.push(performance.now() - t0);
    if (h.neighbors.length === r.labels.length && h.neighbors.every((id, i) => id === r.labels[i])) same++;
    dc.push(r.distances);
    up.push(r.upperDistances);
    ex.push(r.expansions);
  }
  const ms = med(t);
  console.log(
    `ef ${ef}: per query (median of ${queries}) ${med(dc)} distance computations (${med(up)} in the upper layers), ${med(ex)} beam expansions; ` +
      `hnswlib p50 ${ms.toFixed(3)} ms = ${((ms * 1e6) / med(dc)).toFixed(0)} ns per distance computation; ` +
      `vectors read ${((med(dc) * dim * 4) / 2 ** 20).toFixed(1)} MiB; top-10 identical to hnswlib's (ids and order): ${same}/${queries}`,
  );
}
