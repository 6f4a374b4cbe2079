#!/usr/bin/env node
// The cosface command line. Each command validates its arguments, prints JSON with --json, and
// exits non-zero with "error CODE: message" on failure.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import path from 'node:path';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CosfaceError } from './errors.js';
import { readFile } from 'node:fs/promises';
import { Embedder, packageRoot } from './embedder.js';
import { createBackend, parseBackendChoice, type BackendChoice } from './engine.js';
import type { Backend } from './backend/backend.js';
import { createFacePipeline, faceJson, type FacePipeline } from './pipeline/face-pipeline.js';
import { evalLfw, lfwJson } from './eval/lfw.js';
import { EXTRA_COMMANDS, EXTRA_USAGE } from './commands/index.js';
import { parseChannels, parseTriple, type MetadataOverrides } from './import/model-metadata.js';
import { busyError } from './db/busy.js';
import { ProgressBar, stderrSink } from './commands/progress.js';

const USAGE = `cosface: face embeddings on WebGPU/WASM, search, verification

Usage:
  cosface embed <photo>... [--backend webgpu|wasm|auto] [--json]   every face: box, landmarks, quality, embedding
  cosface embed <image>... --aligned [--model <tflite|onnx>] [--backend ...] [--json]   already aligned face crops
  cosface eval lfw --data <dir> [--pairs <csv>] [--roc <png>] [--json] [--quiet]
  cosface info [--backend webgpu|wasm|auto] [--model <tflite|onnx>] [--json]   with --model: its metadata and op counts
  cosface bench embed [--model <tflite|onnx>] [--batch 1,16,64] [--runs 5] [--backend ...] [--json] [--no-references | --references web,node] [--reference-threads 1,2] [--profile]

Options:
  --aligned        each image is an already aligned face crop (resized to the model input if needed)
  --backend NAME   webgpu, wasm or auto (default auto: WebGPU when an adapter exists, else WASM)
  --workers N      WASM worker threads (default: number of cores)
  --json           machine-readable output
  --quiet          no progress on stderr (on a terminal a bar; piped, a line every 5 s)

Model options (with --model; they win over a sidecar <model>.json or <model>.onnx.json):
  --input-mean M|R,G,B   the model sees (pixel - mean) / std (default 0: the vendored model normalises inside)
  --input-std S|R,G,B    (default 1)
  --channels rgb|bgr     the channel order the model was trained on (default rgb)
`;

const MODEL_OPTIONS = {
  model: { type: 'string' },
  'input-mean': { type: 'string' },
  'input-std': { type: 'string' },
  channels: { type: 'string' },
} as const;

/** --input-mean/--input-std/--channels as metadata overrides. */
function metadataFlags(values: Values): MetadataOverrides {
  return {
    ...(values['input-mean'] !== undefined ? { inputMean: parseTriple(String(values['input-mean']), '--input-mean') } : {}),
    ...(values['input-std'] !== undefined ? { inputStd: parseTriple(String(values['input-std']), '--input-std') } : {}),
    ...(values.channels !== undefined ? { channels: parseChannels(String(values.channels)) } : {}),
  };
}

function usage(): string {
  return EXTRA_USAGE.length ? `${USAGE}\nMore commands:\n${EXTRA_USAGE.join('\n')}\n` : USAGE;
}

type Values = Record<string, string | boolean | undefined>;

function parse(args: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `${(e as Error).message}\n\n${USAGE}`);
  }
}

function intOption(v: string | boolean | undefined, name: string, dflt: number | undefined): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CosfaceError('BAD_INPUT', `--${name} must be a positive integer, got '${v}'`);
  return n;
}

async function cmdEmbed(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    aligned: { type: 'boolean' },
    ...MODEL_OPTIONS,
    backend: { type: 'string' },
    workers: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length === 0) throw new CosfaceError('BAD_INPUT', `embed: give at least one image\n\n${USAGE}`);
  const backend = parseBackendChoice(String(values.backend ?? 'auto'));
  if (!values.aligned) {
    await embedPhotos(positionals, backend, intOption(values.workers, 'workers', undefined), !!values.json);
    return;
  }
  const embedder = await Embedder.create({ backend, workers: intOption(values.workers, 'workers', undefined), modelPath: values.model ? String(values.model) : undefined, metadata: metadataFlags(values) });
  try {
    const crops = await Promise.all(positionals.map((f) => embedder.loadAlignedCrop(f)));
    const per = crops[0]!.length;
    const batch = new Float32Array(crops.length * per);
    crops.forEach((c, i) => batch.set(c, i * per));
    const out = await embedder.embed(batch, crops.length);
    const dim = embedder.dim;
    const results = positionals.map((file, i) => ({ file, faces: [{ embedding: Array.from(out.subarray(i * dim, (i + 1) * dim)) }] }));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(results)}\n`);
    } else {
      process.stderr.write(`backend: ${embedder.backend.describe()}\n`);
      for (const r of results) {
        const e = r.faces[0]!.embedding;
        process.stdout.write(`${r.file}: ${dim}-d [${e.slice(0, 4).map((v) => v.toFixed(4)).join(', ')}, ...]\n`);
      }
    }
  } finally {
    await embedder.dispose();
  }
}

/** Opens the face pipeline (detector, landmarks, embedder) on a backend. */
async function openPipeline(choice: BackendChoice, workers: number | undefined): Promise<{ pipeline: FacePipeline; backend: Backend }> {
  const backend = await createBackend(choice, { workers });
  try {
    const pipeline = await createFacePipeline({ backend });
    return { pipeline, backend };
  } catch (e) {
    await backend.dispose();
    throw e;
  }
}

async function embedPhotos(files: string[], choice: BackendChoice, workers: number | undefined, json: boolean): Promise<void> {
  const { pipeline, backend } = await openPipeline(choice, workers);
  try {
    if (!json) process.stderr.write(`backend: ${backend.describe()}\n`);
    const results: { file: string; faces: ReturnType<typeof faceJson>[] }[] = [];
    for (const file of files) {
      const faces = await pipeline.facesInPhoto(file);
      results.push({ file, faces: faces.map(faceJson) });
      if (!json) {
        process.stdout.write(`${file}: ${faces.length} face${faces.length === 1 ? '' : 's'}\n`);
        for (const f of faces) {
          const [x, y, w, h] = f.box.map((v) => Math.round(v));
          process.stdout.write(`  box [${x}, ${y}, ${w}, ${h}] score ${f.score.toFixed(3)} quality ${f.quality.toFixed(3)}\n`);
        }
      }
    }
    if (json) process.stdout.write(`${JSON.stringify(results)}\n`);
  } finally {
    pipeline.dispose();
    await backend.dispose();
  }
}

async function cmdEval(args: string[]): Promise<void> {
  const [what, ...rest] = args;
  const extra = what ? EXTRA_COMMANDS[`eval-${what}`] : undefined;
  if (extra) return (await extra())(rest);
  if (what !== 'lfw') throw new CosfaceError('BAD_INPUT', `eval: unknown evaluation '${what ?? ''}' (lfw, ${Object.keys(EXTRA_COMMANDS).filter((k) => k.startsWith('eval-')).map((k) => k.slice(5)).join(', ')})\n\n${USAGE}`);
  const { values } = parse(rest, {
    data: { type: 'string' },
    pairs: { type: 'string' },
    roc: { type: 'string' },
    backend: { type: 'string' },
    workers: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
  });
  if (!values.data) throw new CosfaceError('BAD_INPUT', `eval lfw: --data <dir> is required\n\n${USAGE}`);
  const data = String(values.data);
  const { pipeline, backend } = await openPipeline(parseBackendChoice(String(values.backend ?? 'auto')), intOption(values.workers, 'workers', undefined));
  try {
    const rocPath = String(values.roc ?? 'lfw-roc.png');
    let bar: ProgressBar | null = null;
    const report = await evalLfw({
      data,
      pairs: values.pairs ? String(values.pairs) : undefined,
      pipeline,
      rocPath,
      onProgress: (_done, total) => {
        bar ??= new ProgressBar(stderrSink, total, 'embedding images', { quiet: !!values.quiet, unit: 'images' });
        bar.tick();
      },
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(lfwJson(report))}\n`);
    } else {
      const j = lfwJson(report);
      process.stdout.write(`backend: ${backend.describe()}\n`);
      process.stdout.write(`LFW (${j.pairs} pairs): accuracy ${j.accuracy.toFixed(2)}% +- ${j.std.toFixed(2)}\n`);
      for (const f of report.folds) process.stdout.write(`  fold ${f.fold}: ${f.accuracy.toFixed(2)}% at threshold ${f.threshold.toFixed(3)}\n`);
      process.stdout.write(`TAR at FAR 1e-3: ${j.tarAtFar1e3 === null ? 'n/a' : j.tarAtFar1e3.toFixed(3)} (${report.tarNote})\n`);
      process.stdout.write(`images without a detected face: ${j.noFace.count} (${j.noFace.action})\n`);
      process.stdout.write(`ROC curve: ${rocPath}\n`);
    }
  } finally {
    pipeline.dispose();
    await backend.dispose();
  }
}

async function cmdInfo(args: string[]): Promise<void> {
  const { values } = parse(args, { backend: { type: 'string' }, workers: { type: 'string' }, json: { type: 'boolean' }, ...MODEL_OPTIONS });
  if (values.model) {
    const { describeModel, formatModelInfo } = await import('./model-info.js');
    const info = await describeModel(String(values.model), metadataFlags(values));
    process.stdout.write(values.json ? `${JSON.stringify(info)}\n` : formatModelInfo(info));
    return;
  }
  const backend = await createBackend(parseBackendChoice(String(values.backend ?? 'auto')), { workers: intOption(values.workers, 'workers', undefined) });
  try {
    const { version } = JSON.parse(await readFile(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
    const { hnswlibBuild, describeHnswlibBuild } = await import('./store/hnswlib-build.js');
    const hnsw = hnswlibBuild();
    const info = { version, backend: backend.name, description: backend.describe(), hnswlib: hnsw };
    if (values.json) process.stdout.write(`${JSON.stringify(info)}\n`);
    else process.stdout.write(`cosface ${info.version}\nbackend: ${info.description}\nindex: ${describeHnswlibBuild(hnsw)}\n`);
  } finally {
    await backend.dispose();
  }
}

async function cmdBench(args: string[]): Promise<void> {
  const [what, ...rest] = args;
  if (what === 'embed') {
    const { benchEmbedCommand } = await import('./bench/embed-command.js');
    const { values } = parse(rest, {
      batch: { type: 'string' },
      runs: { type: 'string' },
      backend: { type: 'string' },
      workers: { type: 'string' },
      json: { type: 'boolean' },
      'no-references': { type: 'boolean' },
      references: { type: 'string' },
      'reference-threads': { type: 'string' },
      profile: { type: 'boolean' },
      ...MODEL_OPTIONS,
    });
    const REF_KINDS = { web: 'onnxruntime-web', node: 'onnxruntime-node' } as const;
    const referenceKinds = values.references
      ? String(values.references).split(',').map((k) => {
          const kind = REF_KINDS[k.trim() as keyof typeof REF_KINDS];
          if (!kind) throw new CosfaceError('BAD_INPUT', `--references takes web, node or web,node, got '${k.trim()}'`);
          return kind;
        })
      : undefined;
    const batches = String(values.batch ?? '1,16,64').split(',').map((s) => intOption(s.trim(), 'batch', 1)!);
    await benchEmbedCommand({
      batches,
      runs: intOption(values.runs, 'runs', 5)!,
      backends: values.backend ? [String(values.backend)] : ['webgpu', 'wasm'],
      json: !!values.json,
      references: !values['no-references'],
      referenceKinds,
      referenceThreads: values['reference-threads'] ? String(values['reference-threads']).split(',').map((t) => intOption(t.trim(), 'reference-threads', 1)!) : undefined,
      profile: !!values.profile,
      modelPath: values.model ? String(values.model) : undefined,
      metadata: metadataFlags(values),
      wasmWorkers: values.workers ? [intOption(values.workers, 'workers', undefined)!] : undefined,
    });
    return;
  }
  const extra = what ? EXTRA_COMMANDS[`bench-${what}`] : undefined;
  if (extra) return (await extra())(rest);
  const known = ['embed', ...Object.keys(EXTRA_COMMANDS).filter((k) => k.startsWith('bench-')).map((k) => k.slice(6))];
  throw new CosfaceError('BAD_INPUT', `bench: unknown benchmark '${what ?? ''}' (${known.join(', ')})\n\n${USAGE}`);
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  embed: cmdEmbed,
  eval: cmdEval,
  info: cmdInfo,
  bench: cmdBench,
};

export async function main(argv: string[]): Promise<number> {
  // WASM worker threads are unref'd between requests, so while a command awaits a worker's reply
  // nothing else may keep the event loop alive and Node would exit early with status 0. A ref'd
  // timer holds the process until the command has finished.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    return await runCommand(argv);
  } finally {
    clearInterval(keepAlive);
  }
}

async function runCommand(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage());
    return cmd ? 0 : 1;
  }
  const extra = EXTRA_COMMANDS[cmd];
  const run = COMMANDS[cmd] ?? (extra ? async (a: string[]) => (await extra())(a) : undefined);
  try {
    if (!run) throw new CosfaceError('BAD_INPUT', `unknown command '${cmd}'\n\n${USAGE}`);
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(usage());
      return 0;
    }
    await run(args);
    return 0;
  } catch (caught) {
    const e = busyError(caught) ?? caught;
    if (e instanceof CosfaceError) {
      process.stderr.write(`error ${e.code}: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`error INTERNAL: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

/**
 * True when this module is the program Node was started with: `node dist/src/cli.js`, `tsx
 * src/cli.ts`, or the `cosface` bin, which npm installs as a symlink (node_modules/.bin/cosface ->
 * ../cosface/dist/src/cli.js) or, on Windows, a shim: so both paths are compared after resolving
 * links, never by how argv[1] happens to end.
 */
export function isMainModule(argv1: string | undefined, moduleUrl: string): boolean {
  if (!argv1) return false;
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const self = real(fileURLToPath(moduleUrl));
  const started = real(argv1);
  // `node dist/src/cli` (no extension) resolves to the same file as Node's loader does.
  return started === self || `${started}.js` === self || `${started}.ts` === self;
}

if (isMainModule(process.argv[1], import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Dawn and worker threads can keep the event loop alive; the work is done.
      setTimeout(() => process.exit(code), 50).unref();
    },
    (e) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}
