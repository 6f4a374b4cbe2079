// `cosface bench embed`: compiles the embedder (default or --model: TFLite or ONNX) on the requested backends (WebGPU; WASM with
// 1 and 2 workers) and hands them to benchEmbed beside the onnxruntime references.
import { cpus } from 'node:os';
import type { Backend, CompiledGraph } from '../backend/backend.js';
import { DEFAULT_EMBEDDER_PATH, prepareEmbedderGraph } from '../embedder.js';
import { createBackend, loadModelFile, parseBackendChoice } from '../engine.js';
import { CosfaceError } from '../errors.js';
import { resolveModelMetadata, type MetadataOverrides } from '../import/model-metadata.js';
import { wrapOnnxForReference } from '../export/onnx-reference.js';
import { readFile } from 'node:fs/promises';
import { benchEmbed, formatEmbedBench, type BenchEngine, type BenchKernelTiming } from './embed-bench.js';

export interface BenchEmbedCommandOptions {
  batches: number[];
  runs: number;
  warmupRuns?: number;
  /** 'webgpu', 'wasm' or 'auto' (each name once). */
  backends: string[];
  /** WASM worker counts to measure (default [1, 2]: compared with 1- and 2-thread references). */
  wasmWorkers?: number[];
  json: boolean;
  references: boolean;
  /** Which references (default both) and their thread counts (default [1, 2]): see EmbedBenchOptions. */
  referenceKinds?: ('onnxruntime-web' | 'onnxruntime-node')[];
  referenceThreads?: number[];
  /** Per-kernel timings at the largest batch for engines that can profile (WebGPU). */
  profile: boolean;
  modelPath?: string;
  /** Input normalisation and channel order flags (over a sidecar <model>.json). */
  metadata?: MetadataOverrides;
  /** Where the report goes (default stdout); progress goes to stderr. */
  write?: (text: string) => void;
}

type Profilable = CompiledGraph & { profile?: (input: Float32Array, n: number) => Promise<BenchKernelTiming[]> };

export async function benchEmbedCommand(opts: BenchEmbedCommandOptions): Promise<void> {
  const write = opts.write ?? ((t: string) => process.stdout.write(t));
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const modelPath = opts.modelPath ?? DEFAULT_EMBEDDER_PATH;
  const graph = await loadModelFile(modelPath);
  // An ONNX model is its own reference: onnxruntime runs the user's file (NHWC and L2 wrapped
  // around it), which also benchmarks models whose folded form our exporter cannot write.
  const meta = await resolveModelMetadata(modelPath, graph, opts.metadata);
  const perm = meta.channels === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  const referenceModel = graph.source.startsWith('onnx:')
    ? wrapOnnxForReference(await readFile(modelPath), graph, true, { bgr: meta.channels === 'bgr', mean: perm.map((p) => meta.inputMean[p]!), std: perm.map((p) => meta.inputStd[p]!) })
    : undefined;
  prepareEmbedderGraph(graph, meta);

  const backends: Backend[] = [];
  const compiled: CompiledGraph[] = [];
  const engines: BenchEngine[] = [];
  const skipped: string[] = [];
  try {
    // label: what was asked for, until the backend says what it is ('auto' picks one).
    const add = async (asked: string, workers: number | undefined, make: () => Promise<Backend>) => {
      let backend: Backend;
      try {
        backend = await make();
      } catch (e) {
        // A missing adapter is a fact about the machine, not a failed benchmark: say so and go on.
        if (e instanceof CosfaceError && e.code === 'NO_ADAPTER') {
          skipped.push(`${asked}: ${e.message}`);
          progress(`skipping ${asked}: ${e.message}`);
          return;
        }
        throw e;
      }
      backends.push(backend);
      progress(`compiling on ${backend.describe()}`);
      const c = (await backend.compile(graph)) as Profilable;
      compiled.push(c);
      const profile = c.profile;
      engines.push({
        label: backend.name,
        description: backend.describe(),
        // A GPU engine has no CPU thread count; WASM uses its workers (default: one per core).
        threads: backend.name === 'wasm' ? (workers ?? cpus().length) : undefined,
        run: (input, n) => c.run(input, n),
        perKernel: opts.profile && profile ? (input, n) => profile.call(c, input, n) : undefined,
      });
    };
    for (const name of new Set(opts.backends.map(parseBackendChoice))) {
      if (name === 'wasm') {
        for (const workers of opts.wasmWorkers ?? [1, 2]) await add('wasm', workers, () => createBackend('wasm', { workers }));
      } else {
        await add(name, undefined, () => createBackend(name));
      }
    }
    const result = await benchEmbed({
      graph,
      engines,
      batches: opts.batches,
      runs: opts.runs,
      warmupRuns: opts.warmupRuns,
      references: opts.references,
      referenceKinds: opts.referenceKinds,
      referenceThreads: opts.referenceThreads,
      referenceModel,
      log: progress,
    });
    result.notes.push(...skipped);
    write(opts.json ? `${JSON.stringify(result)}\n` : `${formatEmbedBench(result)}\n`);
  } finally {
    for (const c of compiled) c.dispose();
    for (const b of backends) await b.dispose();
  }
}
