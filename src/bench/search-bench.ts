// Search benchmark: HNSW against exact scoring on synthetic galleries of identity clusters, with
// build rate, memory per vector, recall and latency side by side. Also exports the cluster
// generator the store tests use.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultScorer } from '../store/default-scorer.js';
import type { ExactScorer } from '../store/exact-scorer.js';
import { buildShards, GalleryIndex, graphParams, SHARDED_MIN_M, shardCount, snapshotParts, type SnapshotMeta } from '../store/gallery-index.js';
import { rerankRows, SignCodes } from './sign-codes.js';
import { DEFAULT_HNSW } from '../store/store.js';
import { describeHnswlibBuild } from '../store/hnswlib-build.js';
import type { PgSearchRow } from './pg-search-bench.js';
import { mulberry32 } from '../random.js';

// ---- synthetic identity clusters ----

/** Deterministic uniform [0, 1) generator (mulberry32), so every run sees the same gallery. */
export const seededRandom = mulberry32;

export interface ClusterModel {
  dim: number;
  /** Per-sample "quality" q ~ N(qualityMean, qualitySd) clipped to [0.2, 0.99]: cos(sample, centre). */
  qualityMean: number;
  qualitySd: number;
}

/**
 * Default: in 128-d, two samples of one identity have cosine about q1*q2, mean 0.63 and sd 0.10
 * (the noise directions add ~0.07 of that sd); two identities have cosine mean 0 and sd 1/sqrt(128)
 * = 0.088, which is the floor for any isotropic model in 128-d (the LFW figure of 0.07 would need
 * an anisotropic embedding space).
 */
export const FACE_LIKE_CLUSTERS: ClusterModel = { dim: 128, qualityMean: 0.795, qualitySd: 0.08 };

export class ClusterGenerator {
  private readonly rand: () => number;
  private spare: number | null = null;
  constructor(readonly model: ClusterModel, seed: number) {
    this.rand = seededRandom(seed);
  }

  gauss(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - this.rand()));
    const t = 2 * Math.PI * this.rand();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }

  /** A random unit vector (an identity centre). */
  centre(out = new Float32Array(this.model.dim)): Float32Array {
    let s = 0;
    for (let i = 0; i < out.length; i++) {
      out[i] = this.gauss();
      s += out[i]! * out[i]!;
    }
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < out.length; i++) out[i]! *= inv;
    return out;
  }

  /** One face of the identity with this centre: q * centre + sqrt(1 - q^2) * random direction. */
  sample(centre: Float32Array, out = new Float32Array(this.model.dim), offset = 0): Float32Array {
    const { qualityMean, qualitySd, dim } = this.model;
    const q = Math.min(0.99, Math.max(0.2, qualityMean + qualitySd * this.gauss()));
    const noise = this.centre();
    const w = Math.sqrt(1 - q * q);
    let s = 0;
    for (let i = 0; i < dim; i++) {
      const x = q * centre[i]! + w * noise[i]!;
      out[offset + i] = x;
      s += x * x;
    }
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < dim; i++) out[offset + i]! *= inv;
    return out;
  }
}

export interface ClusteredGallery {
  dim: number;
  n: number;
  /** n x dim unit vectors, row-major. */
  vectors: Float32Array;
  /** Identity index of each row. */
  identityOf: Int32Array;
  /** identities x dim centres. */
  centres: Float32Array;
  identities: number;
  generator: ClusterGenerator;
}

/** n faces spread over ceil(n / facesPerIdentity) identities. */
export function makeClusteredGallery(
  n: number,
  o: { facesPerIdentity?: number; seed?: number; model?: ClusterModel } = {},
): ClusteredGallery {
  const model = o.model ?? FACE_LIKE_CLUSTERS;
  const per = o.facesPerIdentity ?? 2;
  const gen = new ClusterGenerator(model, o.seed ?? 1);
  const identities = Math.ceil(n / per);
  const dim = model.dim;
  const centres = new Float32Array(identities * dim);
  for (let i = 0; i < identities; i++) gen.centre(centres.subarray(i * dim, (i + 1) * dim));
  const vectors = new Float32Array(n * dim);
  const identityOf = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const id = Math.floor(r / per);
    identityOf[r] = id;
    gen.sample(centres.subarray(id * dim, (id + 1) * dim), vectors, r * dim);
  }
  return { dim, n, vectors, identityOf, centres, identities, generator: gen };
}

/** Fresh faces of enrolled identities (genuine probes), q x dim, and which identity each is. */
export function makeProbes(g: ClusteredGallery, q: number): { probes: Float32Array; identity: Int32Array } {
  const probes = new Float32Array(q * g.dim);
  const identity = new Int32Array(q);
  for (let i = 0; i < q; i++) {
    const id = Math.floor(g.generator.gauss() ** 2 * 1e9) % g.identities;
    identity[i] = id;
    g.generator.sample(g.centres.subarray(id * g.dim, (id + 1) * g.dim), probes, i * g.dim);
  }
  return { probes, identity };
}

/** Mean and sd of same-identity and different-identity cosines, measured on the generator. */
export function measureClusterSpread(model: ClusterModel, pairs = 2000, seed = 7) {
  const gen = new ClusterGenerator(model, seed);
  const same: number[] = [];
  const diff: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const c = gen.centre();
    const a = gen.sample(c);
    same.push(dotF(a, gen.sample(c)));
    diff.push(dotF(a, gen.sample(gen.centre())));
  }
  return { same: meanSd(same), different: meanSd(diff) };
}

function dotF(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function meanSd(a: number[]): { mean: number; sd: number } {
  const mean = a.reduce((x, y) => x + y, 0) / a.length;
  return { mean, sd: Math.sqrt(a.reduce((x, y) => x + (y - mean) ** 2, 0) / a.length) };
}

// ---- benchmark ----

export interface SearchBenchOptions {
  sizes?: number[];
  efs?: number[];
  m?: number;
  efConstruction?: number;
  /** Graphs per gallery, built in parallel on worker threads (default: the store's, shardCount(n)). */
  shards?: number;
  /**
   * 'faces' (default): the store's index over every face. 'centroids': a candidate design measured
   * beside it, not the store's: an index over identity centroids (mean of an identity's faces,
   * normalised), the identities it returns re-ranked by their faces' exact scores. 'both'. 'codes':
   * neither index, only the sign-code route (`codes`).
   */
  design?: 'faces' | 'centroids' | 'both' | 'codes';
  /**
   * Also measure the sign-code route (src/bench/sign-codes.ts, a candidate; not the store's): a scan of one sign bit per
   * dimension shortlists this many faces by Hamming distance, which are then scored exactly.
   */
  codes?: number[];
  /**
   * Also load a sharded index's shard files into this thread and search them one after another
   * with the same merge (what the store did before its shards lived in worker threads): the
   * reference for the at-once search, on the same graphs in the same run.
   */
  inTurn?: boolean;
  /** Identities the centroid design re-ranks (default 10). */
  centroidCandidates?: number[];
  facesPerIdentity?: number;
  /** Genuine probes per size. */
  queries?: number;
  k?: number;
  seed?: number;
  scorer?: ExactScorer;
  scorerName?: string;
  log?: (line: string) => void;
  /**
   * Keep built indexes (and their build measurements) here and reuse them on the next run with the
   * same N, M, efConstruction and seed, so an ef sweep does not pay for the build again.
   */
  cacheDir?: string;
  /** Also run pgvector (the Postgres store's index and SQL) on the same galleries and probes: a pglite:<dir> or postgres:// location. */
  pg?: { location: string; sharedIndexCheck?: boolean; sharedOther?: number; incremental?: number };
}

export interface LatencyStats {
  p50Ms: number;
  p99Ms: number;
  qps: number;
}

export interface SearchBenchRow {
  /** The graphs' degree: the gallery's M, at least SHARDED_MIN_M when sharded. */
  m: number;
  n: number;
  /** Graphs the index is made of (built in parallel, searched one after another, results merged). */
  shards: number;
  identities: number;
  buildSeconds: number;
  buildPerSecond: number;
  /** Growth of resident memory outside the JS heap while building, per vector. */
  measuredBytesPerVector: number;
  /** hnswlib's own estimate (README): (4d + 8M) bytes per element. */
  readmeBytesPerVector: number;
  /** hnswlib's data layout: level-0 block + expected upper-level links + per-element bookkeeping. */
  layoutBytesPerVector: number;
  fileBytesPerVector: number;
  exact: LatencyStats;
  hnsw: (LatencyStats & { ef: number; recall1: number; recall10: number; speedup: number })[];
  /** Recall@1 of the index after writeIndex + readIndex, at the first ef; must equal the in-memory one. */
  reloadedRecall1: number;
  /** The same shards in this thread, searched one after another (options.inTurn). */
  inTurn?: (LatencyStats & { ef: number; recall1: number; recall10: number; speedup: number })[];
  /** The sign-code route (options.codes): shortlist size, recall and latency with the exact re-rank. */
  codes?: { buildSeconds: number; rows: (LatencyStats & { shortlist: number; recall1: number; recall10: number; speedup: number })[] };
  /** The centroid design (options.design), when measured. */
  centroids?: CentroidRow;
  /** The same gallery and probes on pgvector, when asked for. */
  pg?: PgSearchRow;
}

export interface CentroidRow {
  identities: number;
  shards: number;
  /** Identity counts re-ranked, one row of `hnsw` per ef and count. */
  candidates: number[];
  buildSeconds: number;
  buildPerSecond: number;
  hnsw: (LatencyStats & { ef: number; candidates: number; recall1: number; recall10: number; speedup: number })[];
}

export interface SearchBenchResult {
  dim: number;
  m: number;
  efConstruction: number;
  k: number;
  queries: number;
  facesPerIdentity: number;
  scorer: string;
  model: ClusterModel;
  spread: ReturnType<typeof measureClusterSpread>;
  rows: SearchBenchRow[];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function latency(times: number[], totalMs: number): LatencyStats {
  const s = [...times].sort((a, b) => a - b);
  return { p50Ms: percentile(s, 0.5), p99Ms: percentile(s, 0.99), qps: (times.length / totalMs) * 1000 };
}

/** hnswlib memory per element by its data layout (64-bit Linux). */
export function hnswLayoutBytes(dim: number, m: number): number {
  const level0 = 4 * dim + (2 * m * 4 + 4) + 8; // vector + level-0 links (2M + count) + label
  const upper = (m * 4 + 4) / (m - 1); // expected upper levels: sum over l >= 1 of M^-l
  const bookkeeping = 8 + 4 + 40 + 32; // linkLists_ pointer, element_levels_, a std::mutex, label map entry
  return level0 + upper + bookkeeping;
}

let gc: (() => void) | null | undefined;
/** Forces a full V8 collection when possible (exposing gc at run time, as --expose-gc would). */
function collectGarbage(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
  }
  gc?.();
}

/** Resident memory outside the JS heap and buffers: the native index, not the garbage adds leave. */
function nativeBytes(): number {
  collectGarbage();
  const m = process.memoryUsage();
  return m.rss - m.heapTotal - m.external;
}

export async function benchSearch(o: SearchBenchOptions = {}): Promise<SearchBenchResult> {
  const sizes = o.sizes ?? [10_000, 100_000];
  const efs = o.efs ?? [32, 64, 128, 256];
  const m = o.m ?? DEFAULT_HNSW.m;
  const efConstruction = o.efConstruction ?? DEFAULT_HNSW.efConstruction;
  const per = o.facesPerIdentity ?? 2;
  const queries = o.queries ?? 500;
  const k = o.k ?? 10;
  const { scorer, name: defaultName } = o.scorer ? { scorer: o.scorer, name: o.scorerName ?? 'custom' } : await defaultScorer();
  const log = o.log ?? (() => undefined);
  const model = FACE_LIKE_CLUSTERS;
  const rows: SearchBenchRow[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'cosface-bench-'));
  try {
    for (const n of sizes) {
      const g = makeClusteredGallery(n, { facesPerIdentity: per, seed: (o.seed ?? 1) + n });
      const { probes } = makeProbes(g, queries);
      const dim = g.dim;
      const shards = o.shards ?? shardCount(n);
      // The store's graphs: a sharded gallery's degree is at least SHARDED_MIN_M (graphParams).
      const params = graphParams({ dimension: dim, m, efConstruction, ef: efs[0]! }, shards);
      // The gallery in shared memory: what the build workers read, and the exact scorer's workers too.
      const shared = new Float32Array(new SharedArrayBuffer(g.vectors.byteLength));
      shared.set(g.vectors);

      const design = o.design ?? 'faces';
      const faces = design === 'faces' || design === 'both';
      let index: GalleryIndex | null = null;
      let build: { buildSeconds: number; measuredBytesPerVector: number } = { buildSeconds: NaN, measuredBytesPerVector: NaN };
      // One folder per configuration: a build keeps a single snapshot per folder and gallery id.
      const cacheDir = o.cacheDir ? join(o.cacheDir, `search-n${n}-d${dim}-m${params.m}-efc${efConstruction}-s${o.seed ?? 1}-f${per}-sh${shards}`) : null;
      if (!faces) {
        // only the centroid design or the sign codes below
      } else if (cacheDir && existsSync(join(cacheDir, 'build.json'))) {
        const cached = JSON.parse(readFileSync(join(cacheDir, 'build.json'), 'utf8')) as { build: typeof build; meta: SnapshotMeta };
        build = cached.build;
        index = await GalleryIndex.fromFile(params, cacheDir, cached.meta);
        log(`n=${n}: reused cached index (built in ${build.buildSeconds.toFixed(1)} s)`);
      } else {
        // The store's build (buildFromDatabase, rebuilds): one worker thread per shard, each
        // writing its graph to a file, loaded here; the time includes writing and loading.
        const native0 = nativeBytes();
        const t0 = performance.now();
        const ids = new Float64Array(new SharedArrayBuffer(n * 8));
        for (let r = 0; r < n; r++) ids[r] = r + 1; // labels are row + 1
        const dir = cacheDir ?? join(tmp, 'build');
        let next = 100_000;
        const progress = (added: number) => {
          if (added < next) return;
          next += 100_000;
          const s = (performance.now() - t0) / 1000;
          log(`  n=${n}: ${added} added in ${s.toFixed(1)} s (${Math.round(added / s)} vectors/s so far, load ${loadavg()[0]!.toFixed(2)})`);
        };
        index = await buildShards({ id: n, ...params }, { ids, vectors: shared }, { lastFaceId: n, deleteSeq: 0 }, shards, dir, { onProgress: progress }).promise;
        build = { buildSeconds: (performance.now() - t0) / 1000, measuredBytesPerVector: (nativeBytes() - native0) / n };
        log(`n=${n}: built ${shards} shard(s) in ${build.buildSeconds.toFixed(1)} s`);
        if (cacheDir) writeFileSync(join(cacheDir, 'build.json'), JSON.stringify({ build, meta: index!.snapshot }));
      }
      const { buildSeconds, measuredBytesPerVector } = build;

      // Exact top-k for every probe: the ground truth, and the exact latency.
      // The scan reads the SharedArrayBuffer copy, which the WASM scorer's workers use in place.
      const truth: Int32Array[] = [];
      const exactTimes: number[] = [];
      const te = performance.now();
      for (let qi = 0; qi < queries; qi++) {
        const t = performance.now();
        const top = await scorer(probes.subarray(qi * dim, (qi + 1) * dim), 1, shared, n, dim, k);
        exactTimes.push(performance.now() - t);
        truth.push(top.indices.map((i) => i + 1)); // labels are row + 1
      }
      const exact = latency(exactTimes, performance.now() - te);
      log(`n=${n}: exact p50 ${exact.p50Ms.toFixed(2)} ms`);

      /** Latency and recall of one search function over every probe, against the exact answer. */
      const measure = (search: (q: Float32Array) => readonly number[]) => {
        const times: number[] = [];
        let hit1 = 0;
        let hit10 = 0;
        const th = performance.now();
        for (let qi = 0; qi < queries; qi++) {
          const t = performance.now();
          const ids = search(probes.subarray(qi * dim, (qi + 1) * dim));
          times.push(performance.now() - t);
          const want = truth[qi]!;
          if (ids[0] === want[0]) hit1++;
          const set = new Set(want);
          for (const id of ids) if (set.has(id)) hit10++;
        }
        return { ...latency(times, performance.now() - th), recall1: hit1 / queries, recall10: hit10 / (queries * k) };
      };
      const runHnsw = (ix: GalleryIndex, ef: number) => measure((q) => ix.search(q, k, ef).faceIds);
      const hnsw = !index
        ? []
        : efs.map((ef) => {
            const r = runHnsw(index!, ef);
            log(`n=${n}: ef=${ef} recall@1 ${r.recall1.toFixed(4)} p50 ${r.p50Ms.toFixed(3)} ms`);
            return { ef, ...r, speedup: exact.p50Ms / r.p50Ms };
          });
      let inTurn: SearchBenchRow['inTurn'];
      if (o.inTurn && index && index.shardCount > 1 && index.snapshot) {
        const snap = index.snapshot;
        const partsDir = cacheDir ?? join(tmp, 'build');
        const locals = await Promise.all(
          snapshotParts(snap).map((p) => GalleryIndex.fromFile(params, partsDir, { ...snap, file: p.file, bytes: p.bytes, sha256: p.sha256, count: p.count, deletedCount: 0, parts: undefined })),
        );
        inTurn = efs.map((ef) => {
          const r = measure((q) => {
            const found: { id: number; score: number }[] = [];
            for (const l of locals) {
              const h = l.search(q, k, ef);
              h.faceIds.forEach((id, i) => found.push({ id, score: h.scores[i]! }));
            }
            found.sort((a, b) => b.score - a.score || a.id - b.id);
            return found.slice(0, k).map((f) => f.id);
          });
          log(`n=${n}: shards in turn, ef=${ef} recall@1 ${r.recall1.toFixed(4)} p50 ${r.p50Ms.toFixed(3)} ms`);
          return { ef, ...r, speedup: exact.p50Ms / r.p50Ms };
        });
        for (const l of locals) l.close();
      }
      let codes: SearchBenchRow['codes'];
      if (o.codes && o.codes.length > 0) {
        const tc = performance.now();
        const sc = new SignCodes(dim, n);
        for (let r = 0; r < n; r++) sc.push(g.vectors.subarray(r * dim, (r + 1) * dim));
        const buildSeconds = (performance.now() - tc) / 1000;
        codes = {
          buildSeconds,
          rows: o.codes.map((shortlist) => {
            const r = measure((q) => rerankRows(sc.shortlist(q, shortlist), q, g.vectors, dim, k).rows.map((row) => row + 1));
            log(`n=${n}: sign codes, shortlist ${shortlist}: recall@1 ${r.recall1.toFixed(4)} p50 ${r.p50Ms.toFixed(3)} ms`);
            return { shortlist, ...r, speedup: exact.p50Ms / r.p50Ms };
          }),
        };
      }
      const centroids = design !== 'centroids' && design !== 'both' ? undefined : await benchCentroids(g, probes, truth, efs, k, o.centroidCandidates ?? [10], shards, params, join(tmp, 'centroids'), exact.p50Ms, log);

      let pg: PgSearchRow | undefined;
      if (o.pg) {
        const { benchPgSearch } = await import('./pg-search-bench.js');
        pg = await benchPgSearch({
          location: o.pg.location,
          g,
          probes,
          truth,
          efs,
          k,
          m,
          efConstruction,
          ...(o.pg.incremental !== undefined ? { incremental: o.pg.incremental } : {}),
          // The shared-index comparison doubles the rows: only at the smallest size.
          ...(o.pg.sharedIndexCheck && n === Math.min(...sizes) ? { sharedIndexCheck: true } : {}),
          ...(o.pg.sharedOther !== undefined ? { sharedOther: o.pg.sharedOther } : {}),
          log,
        });
      }

      let reloadedRecall1 = NaN;
      let fileBytesPerVector = NaN;
      if (index) {
        const meta = index.save(tmp, n);
        const reloaded = await GalleryIndex.fromFile(params, tmp, meta);
        reloadedRecall1 = runHnsw(reloaded, efs[0]!).recall1;
        reloaded.close();
        index.close();
        fileBytesPerVector = snapshotParts(meta).reduce((b, p) => b + statSync(join(tmp, p.file)).size, 0) / n;
      }

      rows.push({
        n,
        shards,
        m: params.m,
        identities: g.identities,
        buildSeconds,
        buildPerSecond: n / buildSeconds,
        measuredBytesPerVector,
        readmeBytesPerVector: 4 * dim + 8 * params.m,
        layoutBytesPerVector: hnswLayoutBytes(dim, params.m),
        fileBytesPerVector,
        exact,
        hnsw,
        reloadedRecall1,
        ...(centroids ? { centroids } : {}),
        ...(codes ? { codes } : {}),
        ...(inTurn ? { inTurn } : {}),
        ...(pg ? { pg } : {}),
      });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return {
    dim: model.dim,
    m,
    efConstruction,
    k,
    queries,
    facesPerIdentity: per,
    scorer: defaultName,
    model,
    spread: measureClusterSpread(model),
    rows,
  };
}

/**
 * The centroid design on the same gallery and probes: one unit centroid per identity in an index
 * built like the store's (buildShards), searched for `candidates` identities whose faces are then
 * scored exactly; recall of the re-ranked faces against the exact face top-k. Time per query
 * includes the re-rank.
 */
async function benchCentroids(
  g: ClusteredGallery,
  probes: Float32Array,
  truth: Int32Array[],
  efs: number[],
  k: number,
  candidateCounts: number[],
  shards: number,
  params: { dimension: number; m: number; efConstruction: number; ef: number },
  dir: string,
  exactP50: number,
  log: (line: string) => void,
): Promise<CentroidRow> {
  const { dim, n, identities } = g;
  // Faces of each identity (counting sort on identityOf), and the normalised centroids.
  const start = new Int32Array(identities + 1);
  for (let r = 0; r < n; r++) start[g.identityOf[r]! + 1]!++;
  for (let i = 0; i < identities; i++) start[i + 1]! += start[i]!;
  const fill = start.slice(0, identities);
  const rowsOf = new Int32Array(n);
  for (let r = 0; r < n; r++) rowsOf[fill[g.identityOf[r]!]!++] = r;
  const cent = new Float32Array(new SharedArrayBuffer(identities * dim * 4));
  for (let i = 0; i < identities; i++) {
    const c = cent.subarray(i * dim, (i + 1) * dim);
    for (let j = start[i]!; j < start[i + 1]!; j++) {
      const r = rowsOf[j]!;
      for (let d = 0; d < dim; d++) c[d]! += g.vectors[r * dim + d]!;
    }
    let s = 0;
    for (let d = 0; d < dim; d++) s += c[d]! * c[d]!;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < dim; d++) c[d]! *= inv;
  }
  const ids = new Float64Array(new SharedArrayBuffer(identities * 8));
  for (let i = 0; i < identities; i++) ids[i] = i + 1;
  const t0 = performance.now();
  const index = await buildShards({ id: 1, ...params }, { ids, vectors: cent }, { lastFaceId: identities, deleteSeq: 0 }, shards, dir).promise;
  const buildSeconds = (performance.now() - t0) / 1000;
  log(`n=${n}: centroid index of ${identities} identities (${shards} shard(s)) built in ${buildSeconds.toFixed(1)} s`);
  const queries = truth.length;
  const hnsw = efs.flatMap((ef) => candidateCounts.map((candidates) => {
    const times: number[] = [];
    let hit1 = 0;
    let hit10 = 0;
    const th = performance.now();
    for (let qi = 0; qi < queries; qi++) {
      const t = performance.now();
      const p = probes.subarray(qi * dim, (qi + 1) * dim);
      const found = index.search(p, candidates, ef);
      const scored: { face: number; score: number }[] = [];
      for (const id of found.faceIds) {
        for (let j = start[id - 1]!; j < start[id]!; j++) {
          const r = rowsOf[j]!;
          let s = 0;
          for (let d = 0; d < dim; d++) s += p[d]! * g.vectors[r * dim + d]!;
          scored.push({ face: r + 1, score: s });
        }
      }
      scored.sort((a, b) => b.score - a.score);
      times.push(performance.now() - t);
      const want = truth[qi]!;
      if (scored[0]?.face === want[0]) hit1++;
      const set = new Set(want);
      for (const f of scored.slice(0, k)) if (set.has(f.face)) hit10++;
    }
    const r = { ef, candidates, ...latency(times, performance.now() - th), recall1: hit1 / queries, recall10: hit10 / (queries * k) };
    log(`n=${n}: centroids ef=${ef} candidates=${candidates} recall@1 ${r.recall1.toFixed(4)} p50 ${r.p50Ms.toFixed(3)} ms`);
    return { ...r, speedup: exactP50 / r.p50Ms };
  }));
  index.close();
  return { identities, shards, candidates: candidateCounts, buildSeconds, buildPerSecond: identities / buildSeconds, hnsw };
}

export function formatSearchBench(r: SearchBenchResult): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  const lines: string[] = [];
  lines.push(`### Search: HNSW (${describeHnswlibBuild()}, M=${r.m} (sharded galleries: at least ${SHARDED_MIN_M}), efConstruction=${r.efConstruction}) vs exact (${r.scorer} scorer)`);
  lines.push('');
  lines.push(
    `Gallery: ${r.dim}-d unit vectors in identity clusters, ${r.facesPerIdentity} faces per identity. Each identity has a random ` +
      `unit centre c; a face is normalise(q*c + sqrt(1-q^2)*u), u a random unit direction, q ~ N(${r.model.qualityMean}, ${r.model.qualitySd}) ` +
      `clipped to [0.2, 0.99]. Measured cosine: same identity ${f(r.spread.same.mean)} ± ${f(r.spread.same.sd)}, different identities ` +
      `${f(r.spread.different.mean)} ± ${f(r.spread.different.sd)} (target from LFW: 0.63 ± 0.10 and 0.00 ± 0.07; 1/sqrt(${r.dim}) = ` +
      `${f(1 / Math.sqrt(r.dim), 3)} is the floor for the impostor sd of any isotropic ${r.dim}-d model). Probes: ${r.queries} fresh faces of ` +
      `enrolled identities; k=${r.k}; recall against the exact top-k; one query at a time, one thread.`,
  );
  lines.push('');
  lines.push('| N | build (vec/s) | memory B/vec: measured (RSS - JS heap) / layout formula / README 4d+8M / file | exact p50 / p99 ms | exact QPS |');
  lines.push('|---|---|---|---|---|');
  for (const row of r.rows) {
    lines.push(
      `| ${row.n.toLocaleString('en-US')}${row.shards > 1 ? ` (${row.shards} shards, M=${row.m})` : ''} | ${Math.round(row.buildPerSecond)} (${f(row.buildSeconds, 1)} s) | ${Math.round(row.measuredBytesPerVector)} / ${Math.round(
        row.layoutBytesPerVector,
      )} / ${row.readmeBytesPerVector} / ${Math.round(row.fileBytesPerVector)} | ${f(row.exact.p50Ms)} / ${f(row.exact.p99Ms)} | ${Math.round(row.exact.qps)} |`,
    );
  }
  lines.push('');
  lines.push('| N | ef | recall@1 | recall@10 | HNSW p50 / p99 ms | HNSW QPS | exact/HNSW p50 latency |');
  lines.push('|---|---|---|---|---|---|---|');
  for (const row of r.rows) {
    for (const h of row.hnsw) {
      lines.push(
        `| ${row.n.toLocaleString('en-US')} | ${h.ef} | ${f(h.recall1, 4)} | ${f(h.recall10, 4)} | ${f(h.p50Ms, 3)} / ${f(h.p99Ms, 3)} | ${Math.round(h.qps)} | ${f(h.speedup, 1)}x |`,
      );
    }
  }
  const tRows = r.rows.filter((row) => row.inTurn);
  if (tRows.length > 0) {
    lines.push('');
    lines.push('Reference: the same shard files loaded into this thread and searched one after another, results merged (the store before its shards lived in worker threads).');
    lines.push('');
    lines.push('| N | ef | recall@1 | recall@10 | p50 / p99 ms | QPS | at once / in turn p50 |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const row of tRows) {
      for (const h of row.inTurn!) {
        const once = row.hnsw.find((x) => x.ef === h.ef);
        lines.push(`| ${row.n.toLocaleString('en-US')} | ${h.ef} | ${f(h.recall1, 4)} | ${f(h.recall10, 4)} | ${f(h.p50Ms, 3)} / ${f(h.p99Ms, 3)} | ${Math.round(h.qps)} | ${once ? `${f(h.p50Ms / once.p50Ms, 2)}x faster at once` : '-'} |`);
      }
    }
  }
  const sRows = r.rows.filter((row) => row.codes);
  if (sRows.length > 0) {
    lines.push('');
    lines.push('Sign codes (src/bench/sign-codes.ts; a candidate, not the store): one bit per dimension, a WebAssembly scan by Hamming distance keeps a shortlist, scored exactly (one thread).');
    lines.push('');
    lines.push('| N | codes made | shortlist | recall@1 | recall@10 | p50 / p99 ms (with re-rank) | QPS | exact/this p50 |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const row of sRows) {
      for (const h of row.codes!.rows) {
        lines.push(`| ${row.n.toLocaleString('en-US')} | ${f(row.codes!.buildSeconds, 2)} s | ${h.shortlist} | ${f(h.recall1, 4)} | ${f(h.recall10, 4)} | ${f(h.p50Ms, 3)} / ${f(h.p99Ms, 3)} | ${Math.round(h.qps)} | ${f(h.speedup, 1)}x |`);
      }
    }
  }
  const cRows = r.rows.filter((row) => row.centroids);
  if (cRows.length > 0) {
    lines.push('');
    lines.push('Candidate design (not the store\'s): an index over identity centroids, the returned identities re-ranked by their faces\' exact scores.');
    lines.push('');
    lines.push('| N | identities (shards) | centroid build | candidates | ef | recall@1 | recall@10 | p50 / p99 ms (with re-rank) | QPS | exact/this p50 |');
    lines.push('|---|---|---|---|---|---|---|---|---|---|');
    for (const row of cRows) {
      const c = row.centroids!;
      for (const h of c.hnsw) {
        lines.push(
          `| ${row.n.toLocaleString('en-US')} | ${c.identities.toLocaleString('en-US')} (${c.shards}) | ${f(c.buildSeconds, 1)} s (${Math.round(c.buildPerSecond)}/s) | ${h.candidates} | ${h.ef} | ${f(h.recall1, 4)} | ${f(h.recall10, 4)} | ${f(h.p50Ms, 3)} / ${f(h.p99Ms, 3)} | ${Math.round(h.qps)} | ${f(h.speedup, 1)}x |`,
        );
      }
    }
  }
  lines.push('');
  const pgRows = r.rows.filter((row) => row.pg);
  if (pgRows.length > 0) {
    const p0 = pgRows[0]!.pg!;
    lines.push('');
    lines.push(`#### The same galleries and probes on pgvector ${p0.pgvector} (${p0.location}): a partial HNSW index per gallery, vector_ip_ops, the store's own search SQL`);
    lines.push('');
    lines.push('| N | load (rows/s) | index build (vec/s) | insert with index (faces/s, one per transaction) | index B/vec | table+indexes B/vec | exact SQL scan p50 / p99 ms |');
    lines.push('|---|---|---|---|---|---|---|');
    for (const row of pgRows) {
      const p = row.pg!;
      lines.push(
        `| ${row.n.toLocaleString('en-US')} | ${Math.round(p.loadPerSecond)} (${f(p.loadSeconds, 1)} s) | ${Math.round(p.indexPerSecond)} (${f(p.indexSeconds, 1)} s) | ${Math.round(p.incrementalPerSecond)} | ${Math.round(p.indexBytesPerVector)} | ${Math.round(p.tableBytesPerVector)} | ${f(p.exactViaSql.p50Ms, 1)} / ${f(p.exactViaSql.p99Ms, 1)} |`,
      );
    }
    lines.push('');
    lines.push('| N | ef_search | pgvector recall@1 | recall@10 | p50 / p99 ms | QPS | hnswlib recall@1 at this ef | hnswlib p50 ms |');
    lines.push('|---|---|---|---|---|---|---|---|');
    for (const row of pgRows) {
      for (const h of row.pg!.hnsw) {
        const hl = row.hnsw.find((x) => x.ef === h.ef);
        lines.push(
          `| ${row.n.toLocaleString('en-US')} | ${h.ef} | ${f(h.recall1, 4)} | ${f(h.recall10, 4)} | ${f(h.p50Ms, 2)} / ${f(h.p99Ms, 2)} | ${Math.round(h.qps)} | ${hl ? f(hl.recall1, 4) : '-'} | ${hl ? f(hl.p50Ms, 3) : '-'} |`,
        );
      }
    }
    for (const row of pgRows) {
      const sh = row.pg!.sharedIndex;
      if (sh) {
        lines.push('');
        lines.push(
          `N=${row.n}, one HNSW index shared with a second gallery of ${sh.otherFaces} faces, filtered by gallery_id, ef_search=${sh.ef}: ` +
            `recall@1 ${f(sh.plain.recall1, 4)} (p50 ${f(sh.plain.p50Ms, 2)} ms) without iterative scan, ${f(sh.iterative.recall1, 4)} (p50 ${f(sh.iterative.p50Ms, 2)} ms) with hnsw.iterative_scan = relaxed_order; ` +
            `the per-gallery partial index: ${f(row.pg!.hnsw.find((h) => h.ef === sh.ef)?.recall1 ?? NaN, 4)}.`,
        );
      }
    }
  }
  lines.push('');
  lines.push(
    r.rows
      .filter((row) => row.hnsw.length > 0)
      .map((row) => `N=${row.n}: reloaded index recall@1 at ef=${row.hnsw[0]!.ef}: ${f(row.reloadedRecall1, 4)} (in memory ${f(row.hnsw[0]!.recall1, 4)})`).join('; '),
  );
  return lines.join('\n');
}
