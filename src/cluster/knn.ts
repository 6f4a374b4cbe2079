// The k-nearest-neighbour graph that every clustering algorithm here runs on: an HNSW index
// (hnswlib-node, inner product on unit vectors) built over the faces, one k-NN query per face, the
// lists symmetrised into undirected edges at or above the edge threshold. No O(n^2) pass.
import { performance } from 'node:perf_hooks';
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
  const neighbors = new Int32Array(n * k).fill(-1);
  const sims = new Float32Array(n * k);
  if (n === 0) return { n, k, neighbors, sims };
  const t0 = performance.now();
  const search = hnswSearch(buildHnsw(vectors, dim, o), o.ef ?? Math.max(2 * k, 64));
  const t1 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = search(vectors.subarray(i * dim, (i + 1) * dim), k + 1);
    let c = 0;
    for (let t = 0; t < r.ids.length && c < k; t++) {
      const j = r.ids[t]!;
      if (j === i) continue;
      neighbors[i * k + c] = j;
      sims[i * k + c] = r.sims[t]!;
      c++;
    }
  }
  return { n, k, neighbors, sims, timings: { buildMs: t1 - t0, queryMs: performance.now() - t1 } };
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
