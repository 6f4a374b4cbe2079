// Clustering faces into people (issue 11, section 2). A layer below store and commands: it knows
// vectors, photos and person ids, nothing of databases, HTTP or the CLI.
//
// API (stable; changes are additive only):
//
//   clusterFaces(input, opts?) -> { labels, edges, timings }
//     input.vectors  Float32Array, n x dim unit vectors (row-major)
//     input.dim      the vector length
//     input.photoOf  Int32Array, a cannot-link group per face (the photo): two faces of one group
//                    are never one person
//     input.fixed?   Int32Array, an existing person id per face (>= 0) or -1. Faces of one existing
//                    person start together and are never split; two existing people may be merged
//                    by the clustering unless one of them is named (the merged person keeps the
//                    smaller id)
//     input.named?   Set<number>, person ids the user confirmed: never merged with another person
//     opts.threshold cosine edge threshold (default DEFAULT_CLUSTER_THRESHOLD)
//     opts.k         neighbours per face in the k-NN graph (default DEFAULT_CLUSTER_K)
//     opts.algorithm 'average' (default) | 'union-find' | 'dbscan' | 'chinese-whispers'
//     opts.search?   an existing neighbour search over the same faces (ids = rows), e.g. the
//                    library's HNSW index: the graph is queried from it, no index is built
//     labels         Int32Array, the person id per face; -1 = unclustered (joined nobody). New people
//                    are numbered from max(fixed) + 1 (0 without fixed), largest first.
//
//   clusterFacesParallel(input, { ...opts, workers }) -> Promise of the same: the k-NN graph on
//     `workers` threads (one HNSW index per slice of the faces, knnGraphParallel), so a server's
//     event loop is free during it; the clustering step itself (seconds at 200k faces) runs on the
//     calling thread. For large libraries.
//
//   assignNewFaces(input, opts?) -> { labels, existing }
//     Photos added later: input.existing { vectors, labels, photoOf } are the faces already
//     clustered (labels as clusterFaces returned them), input.added { vectors, photoOf } the new
//     faces (photo ids in the same space as existing.photoOf). Existing people are never merged or
//     split; each new face joins an existing person or, with other new faces (or existing
//     unclustered ones), forms a new person, or stays -1. Only the new faces are searched:
//     input.searchExisting (e.g. the library's HNSW index; ids are rows of existing.vectors) or,
//     without it, a temporary HNSW index over the existing vectors. labels: per added face;
//     existing: the existing faces' labels afterwards (only -1 entries can change).
//
// How: a k-NN graph from an HNSW index (hnswlib-node, inner product), edges at or above the
// threshold, then one algorithm under the rules of ConstrainedUnionFind. docs/clustering.md has the
// measured comparison behind the default.
import { CosfaceError } from '../errors.js';
import { performance } from 'node:perf_hooks';
import { averageLinkageClusters, chineseWhispersClusters, dbscanClusters, unionFindClusters, type GraphContext } from './algorithms.js';
import { ConstrainedUnionFind, labelsFromSets } from './constraints.js';
import { buildHnsw, edgesAbove, hnswSearch, knnGraph, knnGraphFromSearch, knnGraphParallel, sortEdges, type Edges, type KnnGraph, type KnnOptions, type NeighborSearch } from './knn.js';

export { buildHnsw, edgesAbove, hnswSearch, knnGraph, knnGraphFromSearch, knnGraphParallel, type Edges, type KnnGraph, type KnnOptions, type NeighborSearch } from './knn.js';
export { ConstrainedUnionFind } from './constraints.js';

export type ClusterAlgorithm = 'average' | 'union-find' | 'dbscan' | 'chinese-whispers';
export const CLUSTER_ALGORITHMS: readonly ClusterAlgorithm[] = ['average', 'union-find', 'dbscan', 'chinese-whispers'];

/**
 * The false-accept rate the default edge threshold stands for: the FAR at which the store's
 * identify and verify decide by default. A caller with a calibrated model should pass its
 * threshold at this FAR; DEFAULT_CLUSTER_THRESHOLD is for callers without one.
 */
export const DEFAULT_CLUSTER_FAR = 1e-4;
/**
 * The default cosine edge threshold: this model's FAR 1e-4 threshold (0.390 over the 2.7M impostor
 * pairs of the LFW dev images, rounded up). See docs/clustering.md.
 */
export const DEFAULT_CLUSTER_THRESHOLD = 0.4;
/** Neighbours per face in the k-NN graph. */
export const DEFAULT_CLUSTER_K = 16;

export interface ClusterInput {
  vectors: Float32Array;
  dim: number;
  photoOf: Int32Array;
  fixed?: Int32Array;
  named?: Set<number>;
}

export interface ClusterOptions {
  threshold?: number;
  k?: number;
  algorithm?: ClusterAlgorithm;
  /** DBSCAN: faces (itself included) within the threshold that make a core face (default 3, Immich). */
  minFaces?: number;
  /** Chinese Whispers: passes over the faces at most (default 30). */
  iterations?: number;
  /** HNSW parameters for the k-NN graph. */
  knn?: KnnOptions;
  /**
   * clusterFaces: an existing neighbour search over the same faces (ids = rows of vectors), e.g.
   * the library's HNSW index; the k-NN graph is then queried from it and no index is built.
   */
  search?: NeighborSearch;
}

export interface ClusterResult {
  labels: Int32Array;
  /** Undirected graph edges at or above the threshold. */
  edges: number;
  timings: { knnMs: number; clusterMs: number };
}

function validate(vectors: Float32Array, dim: number, photoOf: Int32Array, what: string): number {
  if (!Number.isInteger(dim) || dim < 1) throw new CosfaceError('BAD_INPUT', `${what}: dim must be a positive integer, got ${dim}`);
  if (vectors.length % dim !== 0) throw new CosfaceError('BAD_INPUT', `${what}: ${vectors.length} floats are not a multiple of dim ${dim}`);
  const n = vectors.length / dim;
  if (photoOf.length !== n) throw new CosfaceError('BAD_INPUT', `${what}: photoOf has ${photoOf.length} entries for ${n} faces`);
  return n;
}

function options(o: ClusterOptions): Required<Omit<ClusterOptions, 'knn' | 'search'>> & { knn: KnnOptions; search?: NeighborSearch } {
  const threshold = o.threshold ?? DEFAULT_CLUSTER_THRESHOLD;
  if (!(threshold > -1 && threshold < 1)) throw new CosfaceError('BAD_INPUT', `threshold must be a cosine in (-1, 1), got ${threshold}`);
  const k = o.k ?? DEFAULT_CLUSTER_K;
  if (!Number.isInteger(k) || k < 1) throw new CosfaceError('BAD_INPUT', `k must be a positive integer, got ${k}`);
  const algorithm = o.algorithm ?? 'average';
  if (!CLUSTER_ALGORITHMS.includes(algorithm)) throw new CosfaceError('BAD_INPUT', `unknown clustering algorithm '${String(algorithm)}' (${CLUSTER_ALGORITHMS.join(', ')})`);
  return { threshold, k, algorithm, minFaces: o.minFaces ?? 3, iterations: o.iterations ?? 30, knn: o.knn ?? {}, search: o.search };
}

function runAlgorithm(ctx: GraphContext, o: ReturnType<typeof options>): void {
  switch (o.algorithm) {
    case 'average':
      return averageLinkageClusters(ctx);
    case 'union-find':
      return unionFindClusters(ctx);
    case 'dbscan':
      return dbscanClusters(ctx, o.minFaces);
    case 'chinese-whispers':
      return chineseWhispersClusters(ctx, o.iterations);
  }
}

/** Clusters faces into people (see the header). */
export function clusterFaces(input: ClusterInput, opts: ClusterOptions = {}): ClusterResult {
  validate(input.vectors, input.dim, input.photoOf, 'clusterFaces');
  const o = options(opts);
  const t0 = performance.now();
  const graph = opts.search ? knnGraphFromSearch(input.vectors, input.dim, o.k, opts.search) : knnGraph(input.vectors, input.dim, o.k, o.knn);
  const t1 = performance.now();
  const r = clusterGraph(input, graph, opts);
  return { ...r, timings: { knnMs: t1 - t0, clusterMs: r.timings.clusterMs } };
}

/**
 * clusterFaces with the k-NN graph built on `workers` threads (knnGraphParallel): the same
 * clustering rules, for large libraries on several cores.
 */
export async function clusterFacesParallel(input: ClusterInput, opts: ClusterOptions & { workers: number }): Promise<ClusterResult> {
  validate(input.vectors, input.dim, input.photoOf, 'clusterFacesParallel');
  const o = options(opts);
  const t0 = performance.now();
  const graph = await knnGraphParallel(input.vectors, input.dim, o.k, { ...o.knn, workers: opts.workers });
  const t1 = performance.now();
  const r = clusterGraph(input, graph, opts);
  return { ...r, timings: { knnMs: t1 - t0, clusterMs: r.timings.clusterMs } };
}

/** Clusters faces on a k-NN graph already built (knnGraph), e.g. to compare algorithms on one graph. */
export function clusterGraph(input: ClusterInput, graph: KnnGraph, opts: ClusterOptions = {}): ClusterResult {
  const n = validate(input.vectors, input.dim, input.photoOf, 'clusterGraph');
  if (graph.n !== n) throw new CosfaceError('BAD_INPUT', `clusterGraph: the graph has ${graph.n} faces, the input ${n}`);
  const o = options(opts);
  const t0 = performance.now();
  const edges = edgesAbove(graph, o.threshold);
  const uf = new ConstrainedUnionFind(n, { photoOf: input.photoOf, fixed: input.fixed, named: input.named });
  runAlgorithm({ n, dim: input.dim, vectors: input.vectors, edges, threshold: o.threshold, uf }, o);
  const labels = labelsFromSets(n, (i) => uf.find(i), (r) => uf.person[r]!, input.fixed);
  return { labels, edges: edges.w.length, timings: { knnMs: 0, clusterMs: performance.now() - t0 } };
}

export interface AssignInput {
  dim: number;
  existing: { vectors: Float32Array; labels: Int32Array; photoOf: Int32Array };
  added: { vectors: Float32Array; photoOf: Int32Array };
  named?: Set<number>;
  /** Neighbours among the existing faces (ids = rows of existing.vectors); default: a temporary HNSW index. */
  searchExisting?: NeighborSearch;
}

export interface AssignResult {
  /** Person id per added face, -1 = unclustered. */
  labels: Int32Array;
  /** Labels of the existing faces afterwards (only unclustered ones can change). */
  existing: Int32Array;
}

/** Assigns faces of photos added later (see the header). */
export function assignNewFaces(input: AssignInput, opts: ClusterOptions = {}): AssignResult {
  const { dim, existing, added } = input;
  const nE = validate(existing.vectors, dim, existing.photoOf, 'assignNewFaces (existing)');
  const nA = validate(added.vectors, dim, added.photoOf, 'assignNewFaces (added)');
  if (existing.labels.length !== nE) throw new CosfaceError('BAD_INPUT', `assignNewFaces: existing.labels has ${existing.labels.length} entries for ${nE} faces`);
  const o = options(opts);
  const n = nE + nA;
  const vectors = new Float32Array(n * dim);
  vectors.set(existing.vectors, 0);
  vectors.set(added.vectors, nE * dim);
  const photoOf = new Int32Array(n);
  photoOf.set(existing.photoOf, 0);
  photoOf.set(added.photoOf, nE);
  const fixed = new Int32Array(n).fill(-1);
  fixed.set(existing.labels, 0);

  // Edges from each new face to its k nearest existing faces and its k nearest new faces.
  const a: number[] = [];
  const b: number[] = [];
  const w: number[] = [];
  const searchE = nE === 0 ? null : (input.searchExisting ?? hnswSearch(buildHnsw(existing.vectors, dim, o.knn), o.knn.ef ?? Math.max(2 * o.k, 64)));
  const addedGraph = knnGraph(added.vectors, dim, o.k, o.knn);
  const addedEdges = edgesAbove(addedGraph, o.threshold);
  for (let e = 0; e < addedEdges.w.length; e++) {
    a.push(nE + addedEdges.a[e]!);
    b.push(nE + addedEdges.b[e]!);
    w.push(addedEdges.w[e]!);
  }
  if (searchE) {
    for (let i = 0; i < nA; i++) {
      const r = searchE(added.vectors.subarray(i * dim, (i + 1) * dim), o.k);
      for (let t = 0; t < r.ids.length; t++) {
        if (!(r.sims[t]! >= o.threshold)) continue;
        a.push(r.ids[t]!);
        b.push(nE + i);
        w.push(r.sims[t]!);
      }
    }
  }
  const edges: Edges = sortEdges({ a: Int32Array.from(a), b: Int32Array.from(b), w: Float32Array.from(w) });
  const uf = new ConstrainedUnionFind(n, { photoOf, fixed, named: input.named, lockFixed: true });
  runAlgorithm({ n, dim, vectors, edges, threshold: o.threshold, uf }, o);
  const labels = labelsFromSets(n, (i) => uf.find(i), (r) => uf.person[r]!, fixed);
  return { labels: labels.slice(nE), existing: labels.slice(0, nE) };
}
