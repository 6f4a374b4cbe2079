// `cosface bench embed`: faces/s and GFLOP/s of our engines beside onnxruntime-web (wasm) and
// onnxruntime-node (CPU) running the ONNX export of the same graph (or, for an ONNX model, the
// user's own file), in one process, on the same
// inputs (real aligned crops repeated to fill the batch), as the median of timed runs after warm-up,
// interleaved round-robin between engines.
import { existsSync, readdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CosfaceError, isCosfaceError } from '../errors.js';
import { graphMacs, numel, type Graph } from '../graph/ir.js';
import { exportOnnx } from '../export/onnx-export.js';
import { createOrtNodeReference, createOrtWebReference, type OrtReference, type TimedRuns } from './ort-references.js';

/** Untimed calls of an engine before each of its timed calls in the round-robin (see benchEmbed). */
const SETTLE_MS = 250;

/** Per-kernel medians of PROFILE_RUNS profiled batches (the first ones also settle the backend's GPU wait). */
const PROFILE_RUNS = 5;
async function medianProfile(profile: (input: Float32Array, n: number) => Promise<BenchKernelTiming[]>, input: Float32Array, n: number): Promise<BenchKernelTiming[]> {
  const runs: BenchKernelTiming[][] = [];
  for (let i = 0; i < PROFILE_RUNS; i++) runs.push(await profile(input, n));
  return runs[0]!.map((k, i) => ({ ...k, ms: runs.map((r) => r[i]!.ms).sort((a, b) => a - b)[PROFILE_RUNS >> 1]! }));
}

/** Per-kernel time of one profiled batch (the WebGPU backend's profile() returns these). */
export interface BenchKernelTiming {
  node: string;
  op: string;
  shader?: string;
  ms: number;
  /** Multiply-adds of this kernel for the whole batch, when known. */
  macs?: number;
}

/** One of our engines, e.g. a CompiledGraph of the webgpu or wasm backend. */
export interface BenchEngine {
  label: string;
  /** CPU threads/workers it uses; leave out for a GPU engine. */
  threads?: number;
  /** One line on what runs it, e.g. the adapter and driver (Backend.describe()). */
  description?: string;
  run(input: Float32Array, n: number): Promise<Float32Array>;
  /** Called once per engine with the largest batch's input, after its timed runs. */
  perKernel?: (input: Float32Array, n: number) => Promise<BenchKernelTiming[]>;
}

export interface EmbedBenchOptions {
  graph: Graph;
  engines: BenchEngine[];
  batches: number[];
  /** Timed runs per engine and batch (default 5); the median is reported. */
  runs?: number;
  /** Untimed runs before them (default 2). */
  warmupRuns?: number;
  /** Run the onnxruntime references (default true). */
  references?: boolean;
  /**
   * The ONNX model the references run (NHWC input, the graph's output). Default: our export of
   * `graph`. For a model imported from ONNX, the user's own file (see export/onnx-reference.ts).
   */
  referenceModel?: Uint8Array;
  /** Thread counts of the references (default [1, 2]). */
  referenceThreads?: number[];
  /**
   * Which references run (default both). One alone keeps the other's threads out of the process,
   * e.g. onnxruntime-node's intra-op threads, which spin on after each of its runs.
   */
  referenceKinds?: ('onnxruntime-web' | 'onnxruntime-node')[];
  /** Per-sample inputs to cycle through; default: the aligned fixture crops (see loadBenchCrops). */
  samples?: Float32Array[];
  /** Progress lines (e.g. console.error); silent by default. */
  log?: (line: string) => void;
}

export type EmbedBenchKind = 'engine' | 'onnxruntime-web' | 'onnxruntime-node';

export interface EmbedBenchRow {
  engine: string;
  kind: EmbedBenchKind;
  /** null for a GPU engine. */
  threads: number | null;
  batch: number;
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  facesPerSec: number;
  gflops: number;
  /** faces/s divided by onnxruntime-web wasm's at refThreads and the same batch; null if not run. */
  vsOrtWeb: number | null;
  /** faces/s divided by onnxruntime-node's at refThreads and the same batch; null if not run. */
  vsOrtNode: number | null;
  /** Thread count of the references this row is compared with (the largest one for GPU engines). */
  refThreads: number | null;
  /** Largest |difference| between this row's output and onnxruntime-node's (same batch); null if not run. */
  maxAbsDiff: number | null;
}

export interface EmbedBenchResult {
  model: string;
  macsPerFace: number;
  gflopPerFace: number;
  /** How many distinct crops the batches cycle through. */
  distinctInputs: number;
  runs: number;
  warmupRuns: number;
  batches: number[];
  env: { node: string; cpu: string; cores: number; loadavg1m: number; onnxruntimeWeb: string | null; onnxruntimeNode: string | null };
  /** Our engines as passed in (label, threads, description). */
  engines: { label: string; threads: number | null; description: string | null }[];
  rows: EmbedBenchRow[];
  kernels: { engine: string; batch: number; timings: BenchKernelTiming[] }[];
  /** The reference whose output the max abs diff column is measured from (null without references). */
  diffFrom: 'onnxruntime-node' | 'onnxruntime-web' | null;
  notes: string[];
  date: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Finds test/fixtures/aligned above this module (works from src/ under tsx and from dist/). */
function defaultCropDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'test', 'fixtures', 'aligned');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new CosfaceError('BAD_INPUT', 'benchmark: no aligned fixture crops found (test/fixtures/aligned); pass samples');
}

/**
 * Decodes the PNG/JPEG crops of a folder (default: the aligned fixtures) into float RGB 0..255
 * HWC samples of the graph's input size, resizing only crops of another size.
 */
export async function loadBenchCrops(inputShape: number[], dir = defaultCropDir()): Promise<Float32Array[]> {
  const [h, w, c] = inputShape as [number, number, number];
  if (inputShape.length !== 3 || c !== 3) throw new CosfaceError('BAD_INPUT', `benchmark: crops need an [H, W, 3] input, the graph takes [${inputShape.join(', ')}]`);
  const { default: sharp } = await import('sharp');
  const files = readdirSync(dir).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort();
  if (files.length === 0) throw new CosfaceError('BAD_INPUT', `benchmark: no PNG or JPEG crops in ${dir}`);
  const out: Float32Array[] = [];
  for (const f of files) {
    let img = sharp(join(dir, f)).removeAlpha();
    const meta = await sharp(join(dir, f)).metadata();
    if (meta.width !== w || meta.height !== h) img = img.resize(w, h, { fit: 'fill' });
    const { data } = await img.raw().toBuffer({ resolveWithObject: true });
    out.push(Float32Array.from(data));
  }
  return out;
}

/** n samples back to back, cycling through the given ones. */
function fillBatch(samples: Float32Array[], n: number, size: number): Float32Array {
  const input = new Float32Array(n * size);
  for (let i = 0; i < n; i++) input.set(samples[i % samples.length]!, i * size);
  return input;
}

async function timeEngine(engine: BenchEngine, input: Float32Array, n: number, warmupRuns: number, runs: number): Promise<TimedRuns> {
  for (let i = 0; i < warmupRuns; i++) await engine.run(input, n);
  const times: number[] = [];
  let output: Float32Array | undefined;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const y = await engine.run(input, n);
    times.push(performance.now() - t0);
    output ??= y;
  }
  return { times, output: output ?? new Float32Array(0) };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = d; // NaN propagates as NaN
  }
  return m;
}

/** Measures every engine and reference at every batch size; see EmbedBenchResult. */
export async function benchEmbed(opts: EmbedBenchOptions): Promise<EmbedBenchResult> {
  const { graph, engines, batches } = opts;
  const runs = opts.runs ?? 5;
  const warmupRuns = opts.warmupRuns ?? 2;
  const useReferences = opts.references ?? true;
  const refThreadList = opts.referenceThreads ?? [1, 2];
  const refKinds = new Set(opts.referenceKinds ?? ['onnxruntime-web', 'onnxruntime-node']);
  if (refKinds.size === 0 || refThreadList.length === 0 || refThreadList.some((t) => !Number.isInteger(t) || t < 1)) {
    throw new CosfaceError('BAD_INPUT', `benchmark: references need a kind and thread counts >= 1 (got [${[...refKinds].join(', ')}], [${refThreadList.join(', ')}])`);
  }
  const log = opts.log ?? (() => {});
  if (batches.length === 0 || batches.some((b) => !Number.isInteger(b) || b < 1)) {
    throw new CosfaceError('EMPTY_BATCH', `benchmark: batch sizes must be integers >= 1, got [${batches.join(', ')}]`);
  }
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(warmupRuns) || warmupRuns < 0) {
    throw new CosfaceError('BAD_INPUT', `benchmark: runs must be >= 1 and warm-up runs >= 0 (got ${runs}, ${warmupRuns})`);
  }
  const inputShape = graph.input.shape;
  const sampleSize = numel(inputShape);
  const samples = opts.samples ?? (await loadBenchCrops(inputShape));
  for (const s of samples) {
    if (s.length !== sampleSize) throw new CosfaceError('DIMENSION_MISMATCH', `benchmark: a sample has ${s.length} values, the graph input takes ${sampleSize}`);
  }
  if (samples.length === 0) throw new CosfaceError('BAD_INPUT', 'benchmark: no input samples');
  const macsPerFace = graphMacs(graph);
  const notes: string[] = [];

  const refs: OrtReference[] = [];
  let onnxruntimeWeb: string | null = null;
  let onnxruntimeNode: string | null = null;
  try {
    let model: Uint8Array | null = null;
    if (useReferences) {
      try {
        model = opts.referenceModel ?? exportOnnx(graph);
      } catch (e) {
        // A graph the exporter cannot express is still benchmarked, only without references.
        if (!isCosfaceError(e, 'UNSUPPORTED_OP')) throw e;
        notes.push(`no onnxruntime references: ${e.message}`);
      }
    }
    if (model) {
      for (const t of refKinds.has('onnxruntime-web') ? refThreadList : []) {
        log(`starting onnxruntime-web wasm with ${t} thread(s)`);
        const ref = await createOrtWebReference(model, t);
        if (ref.threads !== t) notes.push(`onnxruntime-web was asked for ${t} threads and runs with ${ref.threads}`);
        onnxruntimeWeb = ref.version;
        refs.push(ref);
      }
      for (const t of refKinds.has('onnxruntime-node') ? refThreadList : []) {
        log(`starting onnxruntime-node cpu with ${t} thread(s)`);
        const ref = await createOrtNodeReference(model, t);
        onnxruntimeNode = ref.version;
        refs.push(ref);
      }
    }

    const rows: EmbedBenchRow[] = [];
    let diffFrom: EmbedBenchResult['diffFrom'] = null;
    const kernels: EmbedBenchResult['kernels'] = [];
    const largest = Math.max(...batches);
    for (const n of batches) {
      const input = fillBatch(samples, n, sampleSize);
      const measured: { row: Omit<EmbedBenchRow, 'vsOrtWeb' | 'vsOrtNode' | 'refThreads' | 'maxAbsDiff'>; output: Float32Array }[] = [];
      const record = (engine: string, kind: EmbedBenchKind, threads: number | null, t: TimedRuns) => {
        const medianMs = median(t.times);
        const facesPerSec = (n * 1000) / medianMs;
        measured.push({
          row: {
            engine, kind, threads, batch: n, runs: t.times.length, medianMs,
            minMs: Math.min(...t.times), maxMs: Math.max(...t.times),
            facesPerSec, gflops: (facesPerSec * 2 * macsPerFace) / 1e9,
          },
          output: t.output,
        });
        log(`batch ${n} ${engine}${threads === null ? '' : ` (${threads}t)`}: ${facesPerSec.toFixed(1)} faces/s`);
      };
      // Everyone warms up first; then the timed runs go round-robin, one run of each engine per
      // round, so that a change in the machine's load (it is shared) hits all of them alike and
      // the ratios stay meaningful even when the absolute numbers move. In each round an engine
      // makes untimed calls for SETTLE_MS before its timed one: the engine before it leaves threads
      // busy (after an onnxruntime run, our 2-worker face took 13-15 ms instead of 6 for the next
      // 50-60 ms, 2026-12-06), its own workers have gone to sleep and its adaptive choices (the WASM
      // pool's split of a lone face, re-tried every 16th face) follow the load of the moment;
      // a program calling one engine face after face pays none of that, and the timed call
      // measures that steady state.
      const runners: { label: string; kind: EmbedBenchKind; threads: number | null; measure: (warm: number, timed: number) => Promise<TimedRuns> }[] = [
        ...engines.map((e) => ({ label: e.label, kind: 'engine' as const, threads: e.threads ?? null, measure: (w: number, t: number) => timeEngine(e, input, n, w, t) })),
        ...refs.map((r) => ({ label: r.label, kind: r.kind, threads: r.threads, measure: (w: number, t: number) => r.measure(input, n, inputShape, w, t) })),
      ];
      for (const r of runners) if (warmupRuns > 0) await r.measure(warmupRuns, 0);
      const timed: TimedRuns[] = runners.map(() => ({ times: [], output: new Float32Array(0) }));
      for (let round = 0; round < runs; round++) {
        for (const [i, r] of runners.entries()) {
          if (warmupRuns > 0) for (const t0 = performance.now(); performance.now() - t0 < SETTLE_MS; ) await r.measure(1, 0);
          const t = await r.measure(0, 1);
          timed[i]!.times.push(...t.times);
          if (round === 0) timed[i]!.output = t.output;
        }
      }
      for (const [i, r] of runners.entries()) record(r.label, r.kind, r.threads, timed[i]!);
      for (const e of engines) {
        if (e.perKernel && n === largest) kernels.push({ engine: e.label, batch: n, timings: await medianProfile(e.perKernel, input, n) });
      }

      const refAt = (kind: EmbedBenchKind, threads: number) => measured.find((m) => m.row.kind === kind && m.row.threads === threads);
      const maxRefThreads = refs.length ? Math.max(...refs.map((r) => r.threads)) : null;
      // Differences from onnxruntime-node's output, or onnxruntime-web's when it runs alone.
      const diffBase = measured.find((m) => m.row.kind === 'onnxruntime-node') ?? measured.find((m) => m.row.kind === 'onnxruntime-web');
      if (diffBase) diffFrom = diffBase.row.kind === 'onnxruntime-node' ? 'onnxruntime-node' : 'onnxruntime-web';
      for (const m of measured) {
        const refThreads = m.row.threads ?? maxRefThreads;
        const web = refThreads === null ? undefined : refAt('onnxruntime-web', refThreads);
        const node = refThreads === null ? undefined : refAt('onnxruntime-node', refThreads);
        rows.push({
          ...m.row,
          vsOrtWeb: web ? m.row.facesPerSec / web.row.facesPerSec : null,
          vsOrtNode: node ? m.row.facesPerSec / node.row.facesPerSec : null,
          refThreads: web || node ? refThreads : null,
          maxAbsDiff: diffBase ? maxAbsDiff(m.output, diffBase.output) : null,
        });
      }
    }
    return {
      model: graph.source,
      macsPerFace,
      gflopPerFace: (2 * macsPerFace) / 1e9,
      distinctInputs: samples.length,
      runs,
      warmupRuns,
      batches: [...batches],
      env: { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, loadavg1m: loadavg()[0] ?? 0, onnxruntimeWeb, onnxruntimeNode },
      engines: engines.map((e) => ({ label: e.label, threads: e.threads ?? null, description: e.description ?? null })),
      rows,
      kernels,
      diffFrom,
      notes,
      date: new Date().toISOString(),
    };
  } finally {
    for (const r of refs) await r.dispose();
  }
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));
const ratio = (x: number | null) => (x === null ? '–' : `${x.toFixed(2)}x`);

/** Markdown: a header with the model and conditions, the main table, then per-kernel tables. */
export function formatEmbedBench(r: EmbedBenchResult): string {
  const lines: string[] = [];
  lines.push(`Model: ${r.model} (${r.gflopPerFace.toFixed(3)} GFLOP per face). Median of ${r.runs} timed runs after ${r.warmupRuns} warm-up, round-robin between engines with ${SETTLE_MS} ms of untimed calls before each timed one, inputs cycle through ${r.distinctInputs} aligned crops.`);
  lines.push(`Machine: ${r.env.cpu}, ${r.env.cores} cores, Node ${r.env.node}, load ${r.env.loadavg1m.toFixed(2)}; onnxruntime-web ${r.env.onnxruntimeWeb ?? '–'}, onnxruntime-node ${r.env.onnxruntimeNode ?? '–'}.`);
  for (const e of r.engines) {
    if (e.description) lines.push(`Engine ${e.label}${e.threads === null ? '' : ` (${e.threads} threads)`}: ${e.description}.`);
  }
  lines.push('');
  lines.push('| engine | threads | batch | faces/s | GFLOP/s | vs ort-web wasm | vs ort-node | max abs diff |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of r.rows) {
    const threads = row.threads === null ? (row.refThreads === null ? 'gpu' : `gpu (vs ${row.refThreads}t)`) : String(row.threads);
    const diff = row.maxAbsDiff === null ? '–' : row.maxAbsDiff.toExponential(1);
    lines.push(`| ${row.engine} | ${threads} | ${row.batch} | ${fmt(row.facesPerSec)} | ${fmt(row.gflops)} | ${ratio(row.vsOrtWeb)} | ${ratio(row.vsOrtNode)} | ${diff} |`);
  }
  lines.push('');
  lines.push(`Ratios compare faces/s with the reference at the same thread count and batch; GPU engines are compared with the references at their largest thread count. max abs diff: largest element difference from ${r.diffFrom ?? 'onnxruntime-node'}\'s output on the same batch.`);
  for (const note of r.notes) lines.push(`Note: ${note}`);
  for (const k of r.kernels) {
    const total = k.timings.reduce((s, t) => s + t.ms, 0);
    lines.push('');
    lines.push(`Per-kernel time, ${k.engine}, batch ${k.batch} (total ${total.toFixed(2)} ms):`);
    lines.push('');
    lines.push('| node | op | shader | ms | share | GFLOP/s |');
    lines.push('|---|---|---|---:|---:|---:|');
    for (const t of k.timings) {
      const gflops = t.macs && t.ms > 0 ? fmt((2 * t.macs) / (t.ms * 1e6)) : '–';
      lines.push(`| ${t.node} | ${t.op} | ${t.shader ?? '–'} | ${t.ms.toFixed(3)} | ${total > 0 ? ((100 * t.ms) / total).toFixed(1) : '0'}% | ${gflops} |`);
    }
  }
  return lines.join('\n');
}
