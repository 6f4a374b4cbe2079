// The k-nearest-neighbour graph that every clustering algorithm here runs on: an HNSW index
// (hnswlib-node, inner product on unit vectors) built over the faces, one k-NN query per face, the
// lists symmetrised into undirected edges at or above the edge threshold. No O(n^2) pass.
import { CosfaceError } from '../errors.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import hnswlib from 'hnswlib-node';

/** Per face, its k most similar other faces (cosine, best first); -1 pads short lists. */
export interface KnnGraph {
  n: number;
  k: number;
  neighbors: Int32Array;
  sims: Float32Array;
  /** Milliseconds spent building the index and querying it. */
  timings?: { buildMs: number; queryMs: number };
}

export interface KnnOptions {
  /** HNSW graph degree (default 16). */
  m?: number;
  /** HNSW build beam (default 100). */
  efConstruction?: number;
  /** Search beam (default max(2k, 64)). */
  ef?: number;
}

/** A neighbour search: the k faces most similar to `query` (ids and cosines, best first). */
export type NeighborSearch = (query: Float32Array, k: number) => { ids: ArrayLike<number>; sims: ArrayLike<number> };

/** hnswlib's fixed seed: two builds over the same faces give the same graph. */
const RANDOM_SEED = 100;

/** Builds an HNSW inner-product index over n x dim unit vectors (label = row). */
export function buildHnsw(vectors: Float32Array, dim: number, o: KnnOptions = {}): InstanceType<typeof hnswlib.HierarchicalNSW> {
  const n = vectors.length / dim;
  const index = new hnswlib.HierarchicalNSW('ip', dim);
  index.initIndex(Math.max(n, 1), o.m ?? 16, o.efConstruction ?? 100, RANDOM_SEED);
  const row = new Array<number>(dim);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dim; d++) row[d] = vectors[i * dim + d]!;
    index.addPoint(row, i);
  }
  return index;
}

/** A NeighborSearch over an hnswlib index built by buildHnsw (ids are rows). */
export function hnswSearch(index: InstanceType<typeof hnswlib.HierarchicalNSW>, ef: number): NeighborSearch {
  index.setEf(ef);
  return (query, k) => {
    const count = index.getCurrentCount();
    if (count === 0) return { ids: [], sims: [] };
    const r = index.searchKnn(Array.from(query), Math.min(k, count));
    // hnswlib's 'ip' distance is 1 - dot.
    return { ids: r.neighbors, sims: r.distances.map((d) => 1 - d) };
  };
}

/**
 * The k-NN graph of n x dim unit vectors from an HNSW index: each face's k nearest other faces.
 * Ties and the face itself are handled by asking for k + 1 and dropping the face's own row.
 */
export function knnGraph(vectors: Float32Array, dim: number, k: number, o: KnnOptions = {}): KnnGraph {
  const n = vectors.length / dim;
  if (n === 0) return { n, k, neighbors: new Int32Array(0), sims: new Float32Array(0) };
  const t0 = performance.now();
  const search = hnswSearch(buildHnsw(vectors, dim, o), o.ef ?? Math.max(2 * k, 64));
  const g = knnGraphFromSearch(vectors, dim, k, search);
  return { ...g, timings: { buildMs: performance.now() - t0 - g.timings!.queryMs, queryMs: g.timings!.queryMs } };
}

/**
 * The k-NN graph from an existing neighbour search over the same faces (ids = rows), e.g. the
 * library's own HNSW index: no index is built.
 */
export function knnGraphFromSearch(vectors: Float32Array, dim: number, k: number, search: NeighborSearch): KnnGraph {
  const n = vectors.length / dim;
  const neighbors = new Int32Array(n * k).fill(-1);
  const sims = new Float32Array(n * k);
  const t1 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = search(vectors.subarray(i * dim, (i + 1) * dim), k + 1);
    let c = 0;
    for (let t = 0; t < r.ids.length && c < k; t++) {
      const j = r.ids[t]!;
      if (j === i) continue;
      if (!(Number.isInteger(j) && j >= 0 && j < n)) throw new CosfaceError('BAD_INPUT', `the neighbour search returned id ${j} for ${n} faces`);
      neighbors[i * k + c] = j;
      sims[i * k + c] = r.sims[t]!;
      c++;
    }
  }
  return { n, k, neighbors, sims, timings: { buildMs: 0, queryMs: performance.now() - t1 } };
}

/** Undirected edges, each pair once (a < b), sorted by similarity, best first. */
export interface Edges {
  a: Int32Array;
  b: Int32Array;
  w: Float32Array;
}

/** The graph's edges with similarity >= threshold, symmetrised (i in j's list or j in i's). */
export function edgesAbove(g: KnnGraph, threshold: number): Edges {
  const { n, k, neighbors, sims } = g;
  const a: number[] = [];
  const b: number[] = [];
  const w: number[] = [];
  const inList = (i: number, j: number): boolean => {
    for (let t = 0; t < k; t++) if (neighbors[i * k + t] === j) return true;
    return false;
  };
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) {
      const j = neighbors[i * k + t]!;
      const s = sims[i * k + t]!;
      if (j < 0 || !(s >= threshold)) continue;
      // Each pair once: from the smaller row, or from the larger when the smaller does not list it.
      if (i < j || !inList(j, i)) {
        a.push(Math.min(i, j));
        b.push(Math.max(i, j));
        w.push(s);
      }
    }
  }
  return sortEdges({ a: Int32Array.from(a), b: Int32Array.from(b), w: Float32Array.from(w) });
}

/** Sorts edges by similarity, best first (ties by a, then b, so the order is deterministic). */
export function sortEdges(e: Edges): Edges {
  const order = new Uint32Array(e.w.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((x, y) => e.w[y]! - e.w[x]! || e.a[x]! - e.a[y]! || e.b[x]! - e.b[y]!);
  return { a: Int32Array.from(order, (i) => e.a[i]!), b: Int32Array.from(order, (i) => e.b[i]!), w: Float32Array.from(order, (i) => e.w[i]!) };
}

// The parallel k-NN graph: each worker thread builds an HNSW index over one slice of the faces and
// answers the k+1 nearest within its slice for every face; the main thread merges the lists. Plain
// JavaScript evaluated in the worker, so it runs the same under tsx, vitest and the build.
const KNN_WORKER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const hnswlib = require(w.hnswModule);
const { dim, lo, hi, n, kk, m, efConstruction, ef, seed } = w;
const vectors = new Float32Array(w.vectors);
const nb = new Int32Array(w.nb);
const sim = new Float32Array(w.sim);
const t0 = Date.now();
const index = new hnswlib.HierarchicalNSW('ip', dim);
index.initIndex(Math.max(hi - lo, 1), m, efConstruction, seed);
const row = new Array(dim);
for (let i = lo; i < hi; i++) {
  for (let d = 0; d < dim; d++) row[d] = vectors[i * dim + d];
  index.addPoint(row, i);
}
index.setEf(ef);
const t1 = Date.now();
const want = Math.min(kk, hi - lo);
for (let i = 0; i < n; i++) {
  for (let d = 0; d < dim; d++) row[d] = vectors[i * dim + d];
  const r = want > 0 ? index.searchKnn(row, want) : { neighbors: [], distances: [] };
  for (let t = 0; t < kk; t++) {
    nb[i * kk + t] = t < r.neighbors.length ? r.neighbors[t] : -1;
    sim[i * kk + t] = t < r.neighbors.length ? 1 - r.distances[t] : -2;
  }
}
parentPort.postMessage({ buildMs: t1 - t0, queryMs: Date.now() - t1 });
`;

// The shared-index strategy's worker: loads the index the main thread built and saved, and
// answers the k+1 nearest for its rows [lo, hi).
const QUERY_WORKER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const hnswlib = require(w.hnswModule);
const { dim, lo, hi, n, kk, ef } = w;
const vectors = new Float32Array(w.vectors);
const nb = new Int32Array(w.nb);
const sim = new Float32Array(w.sim);
const index = new hnswlib.HierarchicalNSW('ip', dim);
index.readIndexSync(w.path);
index.setEf(ef);
const t1 = Date.now();
const want = Math.min(kk, n);
const row = new Array(dim);
for (let i = lo; i < hi; i++) {
  for (let d = 0; d < dim; d++) row[d] = vectors[i * dim + d];
  const r = index.searchKnn(row, want);
  for (let t = 0; t < kk; t++) {
    nb[i * kk + t] = t < r.neighbors.length ? r.neighbors[t] : -1;
    sim[i * kk + t] = t < r.neighbors.length ? 1 - r.distances[t] : -2;
  }
}
parentPort.postMessage({ buildMs: 0, queryMs: Date.now() - t1 });
`;

// The shared-index strategy's builder: one index over every face, written to a file.
const BUILD_WORKER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const hnswlib = require(w.hnswModule);
const { dim, n, m, efConstruction, seed } = w;
const vectors = new Float32Array(w.vectors);
const t0 = Date.now();
const index = new hnswlib.HierarchicalNSW('ip', dim);
index.initIndex(Math.max(n, 1), m, efConstruction, seed);
const row = new Array(dim);
for (let i = 0; i < n; i++) {
  for (let d = 0; d < dim; d++) row[d] = vectors[i * dim + d];
  index.addPoint(row, i);
}
index.writeIndexSync(w.path);
parentPort.postMessage({ buildMs: Date.now() - t0, queryMs: 0 });
`;

function runWorker(source: string, workerData: Record<string, unknown>): Promise<{ buildMs: number; queryMs: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData });
    worker.once('message', (msg: { buildMs: number; queryMs: number }) => {
      resolve(msg);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`k-NN worker exited with code ${code}`));
    });
  });
}

/**
 * knnGraph on worker threads (the calling thread stays free). Two strategies:
 * - 'shards' (default): `workers` slices of the faces, one index each, built and queried in
 *   parallel; every face is searched in every slice. The build (most of the work) is parallel;
 *   the queries cost about `workers` times the CPU of one index's, and the smaller indexes give a
 *   better recall at the same ef (BENCHMARKS.md, "Clustering").
 * - 'shared': one HNSW index built by a worker thread and saved to a temporary file, loaded by
 *   `workers` threads that split the queries. The least CPU (that of knnGraph plus the save and
 *   loads), but the build is sequential.
 * Same result format as knnGraph; timings are the build and the slowest worker's queries.
 */
export async function knnGraphParallel(vectors: Float32Array, dim: number, k: number, o: KnnOptions & { workers: number; strategy?: 'shared' | 'shards' }): Promise<KnnGraph> {
  if (o.strategy === 'shared') return knnGraphSharedIndex(vectors, dim, k, o);
  const n = vectors.length / dim;
  const workers = Math.max(1, Math.min(o.workers, Math.floor(n / 2) || 1));
  const shared = new SharedArrayBuffer(vectors.byteLength);
  new Float32Array(shared).set(vectors);
  const kk = k + 1;
  const require = createRequire(import.meta.url);
  const hnswModule = require.resolve('hnswlib-node');
  const parts = Array.from({ length: workers }, (_, w) => ({
    lo: Math.floor((w * n) / workers),
    hi: Math.floor(((w + 1) * n) / workers),
    nb: new SharedArrayBuffer(n * kk * 4),
    sim: new SharedArrayBuffer(n * kk * 4),
  }));
  const times = await Promise.all(parts.map((p) => runWorker(KNN_WORKER_SOURCE, {
    hnswModule, dim, n, kk, lo: p.lo, hi: p.hi, m: o.m ?? 16, efConstruction: o.efConstruction ?? 100, ef: o.ef ?? Math.max(2 * k, 64), seed: RANDOM_SEED, vectors: shared, nb: p.nb, sim: p.sim,
  })));
  // Merge: per face, the best k of all slices' lists, without the face itself.
  const neighbors = new Int32Array(n * k).fill(-1);
  const sims = new Float32Array(n * k);
  const lists = parts.map((p) => ({ nb: new Int32Array(p.nb), sim: new Float32Array(p.sim) }));
  const pos = new Int32Array(workers);
  for (let i = 0; i < n; i++) {
    pos.fill(0);
    for (let c = 0; c < k; ) {
      let best = -1;
      let bestSim = -Infinity;
      for (let w = 0; w < workers; w++) {
        // Skip the face itself and padding.
        while (pos[w]! < kk && (lists[w]!.nb[i * kk + pos[w]!] === i || lists[w]!.nb[i * kk + pos[w]!]! < 0)) {
          if (lists[w]!.nb[i * kk + pos[w]!]! < 0) pos[w] = kk;
          else pos[w]!++;
        }
        if (pos[w]! < kk && lists[w]!.sim[i * kk + pos[w]!]! > bestSim) {
          bestSim = lists[w]!.sim[i * kk + pos[w]!]!;
          best = w;
        }
      }
      if (best < 0) break;
      neighbors[i * k + c] = lists[best]!.nb[i * kk + pos[best]!]!;
      sims[i * k + c] = bestSim;
      pos[best]!++;
      c++;
    }
  }
  return {
    n,
    k,
    neighbors,
    sims,
    timings: { buildMs: Math.max(...times.map((t) => t.buildMs)), queryMs: Math.max(...times.map((t) => t.queryMs)) },
  };
}

async function knnGraphSharedIndex(vectors: Float32Array, dim: number, k: number, o: KnnOptions & { workers: number }): Promise<KnnGraph> {
  const n = vectors.length / dim;
  const neighbors = new Int32Array(n * k).fill(-1);
  const sims = new Float32Array(n * k);
  if (n === 0) return { n, k, neighbors, sims, timings: { buildMs: 0, queryMs: 0 } };
  const workers = Math.max(1, Math.min(o.workers, n));
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'cosface-knn-'));
  const path = join(dir, 'index.hnsw');
  try {
    const shared = new SharedArrayBuffer(vectors.byteLength);
    new Float32Array(shared).set(vectors);
    const hnswModule = createRequire(import.meta.url).resolve('hnswlib-node');
    // Built in a worker too, so that the calling thread (a server's event loop) stays free.
    await runWorker(BUILD_WORKER_SOURCE, { hnswModule, dim, n, m: o.m ?? 16, efConstruction: o.efConstruction ?? 100, seed: RANDOM_SEED, vectors: shared, path });
    const buildMs = performance.now() - t0;
    const kk = k + 1;
    const nbBuf = new SharedArrayBuffer(n * kk * 4);
    const simBuf = new SharedArrayBuffer(n * kk * 4);
    const t1 = performance.now();
    await Promise.all(Array.from({ length: workers }, (_, w) => runWorker(QUERY_WORKER_SOURCE, {
      hnswModule, dim, n, kk, path, ef: o.ef ?? Math.max(2 * k, 64), lo: Math.floor((w * n) / workers), hi: Math.floor(((w + 1) * n) / workers),
      vectors: shared, nb: nbBuf, sim: simBuf,
    })));
    const queryMs = performance.now() - t1;
    const nb = new Int32Array(nbBuf);
    const sim = new Float32Array(simBuf);
    for (let i = 0; i < n; i++) {
      let c = 0;
      for (let t = 0; t < kk && c < k; t++) {
        const j = nb[i * kk + t]!;
        if (j < 0) break;
        if (j === i) continue;
        neighbors[i * k + c] = j;
        sims[i * k + c] = sim[i * kk + t]!;
        c++;
      }
    }
    return { n, k, neighbors, sims, timings: { buildMs, queryMs } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
