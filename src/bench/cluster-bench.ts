// Clustering at library scale: n face-like embeddings from the search benchmark's generator
// (src/bench/search-bench.ts), grouped into photos of one to three faces, clustered by
// clusterFaces. Reports the k-NN graph time (HNSW build, queries), the clustering time, peak RSS,
// and the quality against the generator's identities, for each algorithm asked for.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import { CosfaceError } from '../errors.js';
import { CLUSTER_ALGORITHMS, clusterGraph, DEFAULT_CLUSTER_K, DEFAULT_CLUSTER_THRESHOLD, knnGraph, knnGraphParallel, type ClusterAlgorithm } from '../cluster/index.js';
import { clusterQuality } from '../cluster/metrics.js';
import { makeClusteredGallery, seededRandom } from './search-bench.js';

export interface ClusterBenchOptions {
  n: number;
  /** Faces per generated identity (default 10). */
  perIdentity?: number;
  algorithms?: ClusterAlgorithm[];
  threshold?: number;
  k?: number;
  m?: number;
  efConstruction?: number;
  ef?: number;
  seed?: number;
  /** Worker threads for the k-NN graph queries (default 1: everything on the main thread). */
  workers?: number;
  /** With workers: one index per slice (default) or one shared index. */
  strategy?: 'shared' | 'shards';
}

export interface ClusterBenchRow {
  algorithm: ClusterAlgorithm;
  clusterSeconds: number;
  clusterCpuSeconds: number;
  edges: number;
  pairwiseF: number;
  bcubedF: number;
  clusters: number;
  identities: number;
  unclustered: number;
}

export interface ClusterBenchResult {
  n: number;
  dim: number;
  perIdentity: number;
  photos: number;
  threshold: number;
  k: number;
  m: number;
  efConstruction: number;
  ef: number;
  generateSeconds: number;
  hnswBuildSeconds: number;
  knnQuerySeconds: number;
  /** CPU time of the k-NN graph (build + queries), seconds: less sensitive to a shared machine. */
  knnCpuSeconds: number;
  /** Wall time of the whole k-NN graph step, seconds. */
  knnSeconds: number;
  workers: number;
  rows: ClusterBenchRow[];
  /** Peak resident set of the whole process (generator, graph and clustering), MiB. */
  peakRssMiB: number;
  /** 1-minute load average at the start and end (the machine is shared). */
  load: [number, number];
}

/** Faces shuffled (seeded) into photos of 1, 2 or 3 faces. */
export function photosOfFaces(n: number, seed: number): { photoOf: Int32Array; photos: number } {
  const rand = seededRandom(seed);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  const photoOf = new Int32Array(n);
  let photos = 0;
  for (let i = 0; i < n; ) {
    const size = 1 + Math.floor(rand() * 3);
    for (let s = 0; s < size && i < n; s++) photoOf[order[i++]!] = photos;
    photos++;
  }
  return { photoOf, photos };
}

export async function benchCluster(o: ClusterBenchOptions, log: (line: string) => void = () => undefined): Promise<ClusterBenchResult> {
  const load0 = loadavg()[0]!;
  const perIdentity = o.perIdentity ?? 10;
  const threshold = o.threshold ?? DEFAULT_CLUSTER_THRESHOLD;
  const k = o.k ?? DEFAULT_CLUSTER_K;
  const m = o.m ?? 16;
  const efConstruction = o.efConstruction ?? 100;
  const ef = o.ef ?? Math.max(2 * k, 64);
  const t0 = performance.now();
  const g = makeClusteredGallery(o.n, { facesPerIdentity: perIdentity, seed: o.seed ?? 1 });
  const { photoOf, photos } = photosOfFaces(o.n, (o.seed ?? 1) + 1);
  const generateSeconds = (performance.now() - t0) / 1000;
  log(`generated ${o.n} faces of ${g.identities} identities in ${photos} photos (${generateSeconds.toFixed(1)} s)`);
  const cpu = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const c0 = cpu();
  const workers = o.workers ?? 1;
  const tk = performance.now();
  const graph = workers > 1 ? await knnGraphParallel(g.vectors, g.dim, k, { m, efConstruction, ef, workers, strategy: o.strategy }) : knnGraph(g.vectors, g.dim, k, { m, efConstruction, ef });
  const knnSeconds = (performance.now() - tk) / 1000;
  // Worker threads' CPU time is included in process.cpuUsage.
  const knnCpuSeconds = cpu() - c0;
  const hnswBuildSeconds = graph.timings!.buildMs / 1000;
  const knnQuerySeconds = graph.timings!.queryMs / 1000;
  log(`k-NN graph (k ${k}, M ${m}, efConstruction ${efConstruction}, ef ${ef}, ${workers} worker${workers > 1 ? `s, ${o.strategy ?? 'shards'}` : ''}): ${knnSeconds.toFixed(1)} s = HNSW build ${hnswBuildSeconds.toFixed(1)} s + queries ${knnQuerySeconds.toFixed(1)} s${workers > 1 ? ' (workers) + merge' : ''}; CPU ${knnCpuSeconds.toFixed(1)} s`);
  const rows: ClusterBenchRow[] = [];
  for (const algorithm of o.algorithms ?? ['average']) {
    const c1 = cpu();
    const r = clusterGraph({ vectors: g.vectors, dim: g.dim, photoOf }, graph, { algorithm, threshold, k });
    const clusterCpuSeconds = cpu() - c1;
    const q = clusterQuality(r.labels, g.identityOf);
    const row = { algorithm, clusterSeconds: r.timings.clusterMs / 1000, clusterCpuSeconds, edges: r.edges, pairwiseF: q.pairwise.f, bcubedF: q.bcubed.f, clusters: q.clustersOfTwoOrMore, identities: g.identities, unclustered: q.unclustered };
    rows.push(row);
    log(`${algorithm}: ${row.clusterSeconds.toFixed(2)} s (CPU ${clusterCpuSeconds.toFixed(2)} s), ${row.edges} edges >= ${threshold}, pairwise F ${row.pairwiseF.toFixed(4)}, BCubed F ${row.bcubedF.toFixed(4)}, ${row.clusters} people (of ${row.identities}), ${row.unclustered} unclustered`);
  }
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  return { n: o.n, dim: g.dim, perIdentity, photos, threshold, k, m, efConstruction, ef, generateSeconds, hnswBuildSeconds, knnQuerySeconds, knnCpuSeconds, knnSeconds, workers, rows, peakRssMiB, load: [load0, loadavg()[0]!] };
}

const strategyOf = (v: string): 'shared' | 'shards' => {
  if (v !== 'shared' && v !== 'shards') throw new CosfaceError('BAD_INPUT', `bench cluster: --strategy must be shared or shards, got '${v}'`);
  return v;
};

const int = (v: string | boolean | undefined, name: string, dflt?: number): number | undefined => {
  if (v === undefined) return dflt;
  const x = Number(String(v).replace(/k$/i, '000'));
  if (!Number.isInteger(x) || x < 1) throw new CosfaceError('BAD_INPUT', `bench cluster: --${name} must be a positive integer, got '${v}'`);
  return x;
};

/** cosface bench cluster [--n 200000] [--per 10] [--workers 1] [--strategy shards|shared] [--algorithm average,union-find,...] [--threshold t] [--k 16] [--m 16] [--ef-construction 100] [--ef 64] [--json] */
export async function benchClusterCommand(args: string[]): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: { n: { type: 'string' }, per: { type: 'string' }, algorithm: { type: 'string' }, threshold: { type: 'string' }, k: { type: 'string' }, m: { type: 'string' }, 'ef-construction': { type: 'string' }, ef: { type: 'string' }, seed: { type: 'string' }, workers: { type: 'string' }, strategy: { type: 'string' }, json: { type: 'boolean' } } }).values;
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `bench cluster: ${(e as Error).message}`);
  }
  const algorithms = values.algorithm === undefined ? ['average' as const] : String(values.algorithm).split(',').map((a) => a.trim()) as ClusterAlgorithm[];
  for (const a of algorithms) if (!CLUSTER_ALGORITHMS.includes(a)) throw new CosfaceError('BAD_INPUT', `bench cluster: unknown algorithm '${a}' (${CLUSTER_ALGORITHMS.join(', ')})`);
  const threshold = values.threshold === undefined ? undefined : Number(values.threshold);
  if (threshold !== undefined && !(threshold > -1 && threshold < 1)) throw new CosfaceError('BAD_INPUT', `bench cluster: --threshold must be a cosine in (-1, 1), got '${values.threshold}'`);
  const json = !!values.json;
  const r = await benchCluster({
    n: int(values.n, 'n', 200_000)!,
    perIdentity: int(values.per, 'per'),
    algorithms,
    threshold,
    k: int(values.k, 'k'),
    m: int(values.m, 'm'),
    efConstruction: int(values['ef-construction'], 'ef-construction'),
    ef: int(values.ef, 'ef'),
    seed: int(values.seed, 'seed'),
    workers: int(values.workers, 'workers'),
    strategy: values.strategy === undefined ? undefined : strategyOf(String(values.strategy)),
  }, json ? undefined : (line) => process.stdout.write(`${line}\n`));
  if (json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const first = r.rows[0]!;
  process.stdout.write(`total for ${first.algorithm}: ${(r.knnSeconds + first.clusterSeconds).toFixed(1)} s (k-NN graph ${r.knnSeconds.toFixed(1)} s + clustering ${first.clusterSeconds.toFixed(1)} s); peak RSS ${r.peakRssMiB.toFixed(0)} MiB; load average ${r.load[0].toFixed(2)} -> ${r.load[1].toFixed(2)}\n`);
}
