// `cosface eval cluster --data <dir>`: clustering quality on a labelled folder (one sub-folder
// per person, e.g. ../shared/data/lfw-dev). Every face of every image is clustered (two faces of
// one image are never one person); the face nearest each image's centre is scored against the
// folder it came from: pairwise and BCubed precision/recall/F, clusters against people, the
// fraction of clusters holding more than one person and of people split over several clusters.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { CosfaceError } from '../errors.js';
import { assignNewFaces, CLUSTER_ALGORITHMS, clusterFaces, clusterGraph, DEFAULT_CLUSTER_K, DEFAULT_CLUSTER_THRESHOLD, knnGraph, type ClusterAlgorithm } from '../cluster/index.js';
import { clusterQuality, type ClusterQuality } from '../cluster/metrics.js';
import { createBackend, parseBackendChoice } from '../engine.js';
import { createFacePipeline, type FacePipeline } from '../pipeline/face-pipeline.js';
import type { Backend } from '../backend/backend.js';
import { embedLabelledImages, listLabelledImages, type EmbeddedImage } from './cluster-data.js';
import { ProgressBar } from '../commands/progress.js';

export interface ClusterEvalRun extends ClusterQuality {
  algorithm: ClusterAlgorithm;
  threshold: number;
  k: number;
  /** Clustering time (graph edges + algorithm), seconds. */
  seconds: number;
  incremental?: { first: number; batches: number };
}

export interface ClusterEvalReport {
  images: number;
  people: number;
  /** Faces clustered (all faces of every image, or one per image with centralOnly). */
  faces: number;
  fallbackImages: number;
  knnSeconds: number;
  runs: ClusterEvalRun[];
}

/** Clusters the embedded images and scores the central face of each (pure: no pipeline). */
export function scoreClustering(images: readonly EmbeddedImage[], o: {
  algorithms: ClusterAlgorithm[];
  thresholds: number[];
  k: number;
  centralOnly?: boolean;
  /**
   * Incremental: cluster this fraction of the images (a seeded random choice) with clusterFaces,
   * then add the rest in `batches` steps with assignNewFaces, as a library that grows would.
   */
  incremental?: { first: number; batches: number };
}): ClusterEvalReport {
  const dim = images.find((im) => im.faces.length > 0)?.faces[0]!.embedding.length ?? 0;
  if (dim === 0) throw new CosfaceError('BAD_INPUT', 'eval cluster: no faces');
  const rows: Float32Array[] = [];
  const photo: number[] = [];
  const scored: number[] = [];
  const truth: number[] = [];
  const personId = new Map<string, number>();
  images.forEach((im, p) => {
    if (!personId.has(im.person)) personId.set(im.person, personId.size);
    im.faces.forEach((f, j) => {
      if (o.centralOnly && j !== im.central) return;
      if (j === im.central) {
        scored.push(rows.length);
        truth.push(personId.get(im.person)!);
      }
      rows.push(f.embedding);
      photo.push(p);
    });
  });
  const vectors = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => vectors.set(r, i * dim));
  const photoOf = Int32Array.from(photo);
  const t0 = performance.now();
  const graph = knnGraph(vectors, dim, o.k);
  const knnSeconds = (performance.now() - t0) / 1000;
  const runs: ClusterEvalRun[] = [];
  for (const algorithm of o.algorithms) {
    for (const threshold of o.thresholds) {
      const t1 = performance.now();
      const labels = o.incremental
        ? incrementalLabels(vectors, dim, photoOf, images.length, o.incremental, { algorithm, threshold, k: o.k })
        : clusterGraph({ vectors, dim, photoOf }, graph, { algorithm, threshold, k: o.k }).labels;
      const seconds = (performance.now() - t1) / 1000;
      const q = clusterQuality(scored.map((i) => labels[i]!), truth);
      runs.push({ algorithm, threshold, k: o.k, seconds, ...q, ...(o.incremental ? { incremental: o.incremental } : {}) });
    }
  }
  return { images: images.length, people: personId.size, faces: rows.length, fallbackImages: images.filter((im) => im.source === 'fallback').length, knnSeconds, runs };
}

/** Labels from clustering a seeded part of the photos first and adding the rest in batches. */
function incrementalLabels(
  vectors: Float32Array, dim: number, photoOf: Int32Array, photos: number, inc: { first: number; batches: number },
  opts: { algorithm: ClusterAlgorithm; threshold: number; k: number },
): Int32Array {
  const n = photoOf.length;
  // A seeded order of the photos; a face goes in with its photo.
  let seed = 12345;
  const rand = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  const order = Array.from({ length: photos }, (_, i) => i);
  for (let i = photos - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const step = new Int32Array(photos);
  const firstCount = Math.round(inc.first * photos);
  order.forEach((p, r) => {
    step[p] = r < firstCount ? 0 : 1 + Math.min(inc.batches - 1, Math.floor(((r - firstCount) * inc.batches) / Math.max(1, photos - firstCount)));
  });
  const rowsOf = (s: number): number[] => [...Array(n).keys()].filter((i) => step[photoOf[i]!] === s);
  const pick = (rows: number[]): Float32Array => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((r, i) => out.set(vectors.subarray(r * dim, (r + 1) * dim), i * dim));
    return out;
  };
  const labels = new Int32Array(n).fill(-1);
  let have = rowsOf(0);
  const first = clusterFaces({ vectors: pick(have), dim, photoOf: Int32Array.from(have, (r) => photoOf[r]!) }, opts);
  have.forEach((r, i) => (labels[r] = first.labels[i]!));
  for (let s = 1; s <= inc.batches; s++) {
    const add = rowsOf(s);
    if (add.length === 0) continue;
    const r = assignNewFaces({
      dim,
      existing: { vectors: pick(have), labels: Int32Array.from(have, (x) => labels[x]!), photoOf: Int32Array.from(have, (x) => photoOf[x]!) },
      added: { vectors: pick(add), photoOf: Int32Array.from(add, (x) => photoOf[x]!) },
    }, opts);
    have.forEach((x, i) => (labels[x] = r.existing[i]!));
    add.forEach((x, i) => (labels[x] = r.labels[i]!));
    have = have.concat(add);
  }
  return labels;
}

function formatRun(r: ClusterEvalRun): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  return [
    `${r.algorithm}, threshold ${r.threshold}, k ${r.k}${r.incremental ? `, incremental: ${Math.round(100 * r.incremental.first)}% of the photos first, the rest in ${r.incremental.batches} batch${r.incremental.batches > 1 ? 'es' : ''}` : ''} (${r.seconds.toFixed(2)} s):`,
    `  pairwise  precision ${r.pairwise.precision.toFixed(4)}  recall ${r.pairwise.recall.toFixed(4)}  F ${r.pairwise.f.toFixed(4)}`,
    `  BCubed    precision ${r.bcubed.precision.toFixed(4)}  recall ${r.bcubed.recall.toFixed(4)}  F ${r.bcubed.f.toFixed(4)}`,
    `  clusters ${r.clusters} for ${r.people} people (${r.clustersOfTwoOrMore} of two or more faces, ${r.unclustered} faces unclustered)`,
    `  clusters holding more than one person ${pct(r.impureClusterFraction)}; people split over more than one cluster ${pct(r.splitPersonFraction)}`,
  ].join('\n');
}

const numberList = (v: string, name: string, integer: boolean): number[] => {
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x) || (integer && (!Number.isInteger(x) || x < 1)) || (!integer && !(x > -1 && x < 1)))) {
    throw new CosfaceError('BAD_INPUT', `eval cluster: --${name} must be ${integer ? 'positive integers' : 'cosines in (-1, 1)'}, got '${v}'`);
  }
  return xs;
};

/** cosface eval cluster --data <dir> [--algorithm a[,b]|all] [--threshold t[,u]] [--k 16] [--central-only] [--incremental 0.5 [--batches 1]] [--cache <file>] [--backend ...] [--workers n] [--json] */
export async function evalClusterCommand(args: string[], io: { out(s: string): void; err(s: string): void; errIsTTY?: boolean } = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  errIsTTY: process.stderr.isTTY,
}): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      options: {
        data: { type: 'string' }, algorithm: { type: 'string' }, threshold: { type: 'string' }, k: { type: 'string' },
        'central-only': { type: 'boolean' }, incremental: { type: 'string' }, batches: { type: 'string' }, cache: { type: 'string' }, backend: { type: 'string' }, workers: { type: 'string' }, json: { type: 'boolean' }, quiet: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `eval cluster: ${(e as Error).message}`);
  }
  if (!values.data) throw new CosfaceError('BAD_INPUT', 'eval cluster: --data <dir> is required (one sub-folder per person)');
  const algorithms = (values.algorithm === undefined ? ['average'] : values.algorithm === 'all' ? [...CLUSTER_ALGORITHMS] : String(values.algorithm).split(',').map((a) => a.trim())) as ClusterAlgorithm[];
  for (const a of algorithms) if (!CLUSTER_ALGORITHMS.includes(a)) throw new CosfaceError('BAD_INPUT', `eval cluster: unknown algorithm '${a}' (${CLUSTER_ALGORITHMS.join(', ')}, all)`);
  const thresholds = values.threshold === undefined ? [DEFAULT_CLUSTER_THRESHOLD] : numberList(String(values.threshold), 'threshold', false);
  const k = values.k === undefined ? DEFAULT_CLUSTER_K : numberList(String(values.k), 'k', true)[0]!;
  const workers = values.workers === undefined ? undefined : numberList(String(values.workers), 'workers', true)[0];
  let incremental: { first: number; batches: number } | undefined;
  if (values.incremental !== undefined) {
    const first = Number(values.incremental);
    if (!(first > 0 && first < 1)) throw new CosfaceError('BAD_INPUT', `eval cluster: --incremental must be a fraction in (0, 1), got '${values.incremental}'`);
    incremental = { first, batches: values.batches === undefined ? 1 : numberList(String(values.batches), 'batches', true)[0]! };
  }
  const backendChoice = parseBackendChoice(String(values.backend ?? 'auto'));
  const data = String(values.data);
  const json = !!values.json;
  const images = await listLabelledImages(data);
  let backend: Backend | undefined;
  let pipeline: FacePipeline | undefined;
  let bar: ProgressBar | null = null;
  try {
    const embedded = await embedLabelledImages({
      data,
      images,
      cache: values.cache ? String(values.cache) : undefined,
      pipeline: async () => {
        backend = await createBackend(backendChoice, { workers });
        if (!json) io.err(`backend: ${backend.describe()}\n`);
        pipeline = await createFacePipeline({ backend });
        return pipeline;
      },
      onProgress: (done, total) => {
        bar ??= new ProgressBar({ err: io.err, errIsTTY: !!io.errIsTTY }, total, 'embedding images', { quiet: json || !!values.quiet, unit: 'images' });
        if (done > bar.count) bar.tick(done - bar.count);
      },
    });
    const report = scoreClustering(embedded, { algorithms, thresholds, k, centralOnly: !!values['central-only'], incremental });
    if (json) {
      io.out(`${JSON.stringify(report)}\n`);
      return;
    }
    io.out(`${report.images} images of ${report.people} people; ${report.faces} faces clustered (${values['central-only'] ? 'the central face of each image' : 'every face of every image'}), the face nearest each image centre scored`);
    io.out(`${report.fallbackImages ? `; ${report.fallbackImages} images without a detected face use a centred crop` : ''}\n`);
    io.out(`k-NN graph (HNSW, k ${k}): ${report.knnSeconds.toFixed(2)} s\n`);
    for (const r of report.runs) io.out(`${formatRun(r)}\n`);
  } finally {
    (pipeline as FacePipeline | undefined)?.dispose();
    await (backend as Backend | undefined)?.dispose();
  }
}
