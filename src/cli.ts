#!/usr/bin/env node
// The cosface command line. Each command validates its arguments, prints JSON with --json, and
// exits non-zero with "error CODE: message" on failure.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import path from 'node:path';
import { CosfaceError } from './errors.js';
import { readFile } from 'node:fs/promises';
import { Embedder, packageRoot } from './embedder.js';
import { createBackend, parseBackendChoice } from './engine.js';

const USAGE = `cosface: face embeddings on WebGPU/WASM, search, verification

Usage:
  cosface embed <image>... --aligned [--backend webgpu|wasm|auto] [--json]
  cosface info [--backend webgpu|wasm|auto] [--json]
  cosface bench embed [--batch 1,16,64] [--runs 5] [--backend ...] [--json] [--no-references] [--profile]

Options:
  --aligned        each image is an already aligned face crop (resized to the model input if needed)
  --backend NAME   webgpu, wasm or auto (default auto: WebGPU when an adapter exists, else WASM)
  --workers N      WASM worker threads (default: number of cores)
  --json           machine-readable output
`;

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
    backend: { type: 'string' },
    workers: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length === 0) throw new CosfaceError('BAD_INPUT', `embed: give at least one image\n\n${USAGE}`);
  if (!values.aligned) {
    throw new CosfaceError('BAD_INPUT', 'embed: photos need face detection, which is not built yet; pass --aligned for aligned face crops');
  }
  const backend = parseBackendChoice(String(values.backend ?? 'auto'));
  const embedder = await Embedder.create({ backend, workers: intOption(values.workers, 'workers', undefined) });
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

async function cmdInfo(args: string[]): Promise<void> {
  const { values } = parse(args, { backend: { type: 'string' }, workers: { type: 'string' }, json: { type: 'boolean' } });
  const backend = await createBackend(parseBackendChoice(String(values.backend ?? 'auto')), { workers: intOption(values.workers, 'workers', undefined) });
  try {
    const { version } = JSON.parse(await readFile(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string };
    const info = { version, backend: backend.name, description: backend.describe() };
    if (values.json) process.stdout.write(`${JSON.stringify(info)}\n`);
    else process.stdout.write(`cosface ${info.version}\nbackend: ${info.description}\n`);
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
      profile: { type: 'boolean' },
    });
    const batches = String(values.batch ?? '1,16,64').split(',').map((s) => intOption(s.trim(), 'batch', 1)!);
    await benchEmbedCommand({
      batches,
      runs: intOption(values.runs, 'runs', 5)!,
      backends: values.backend ? [String(values.backend)] : ['webgpu', 'wasm'],
      json: !!values.json,
      references: !values['no-references'],
      profile: !!values.profile,
    });
    return;
  }
  throw new CosfaceError('BAD_INPUT', `bench: unknown benchmark '${what ?? ''}' (embed)\n\n${USAGE}`);
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  embed: cmdEmbed,
  info: cmdInfo,
  bench: cmdBench,
};

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  const run = COMMANDS[cmd];
  try {
    if (!run) throw new CosfaceError('BAD_INPUT', `unknown command '${cmd}'\n\n${USAGE}`);
    if (args.includes('--help') || args.includes('-h')) {
      process.stdout.write(USAGE);
      return 0;
    }
    await run(args);
    return 0;
  } catch (e) {
    if (e instanceof CosfaceError) {
      process.stderr.write(`error ${e.code}: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`error INTERNAL: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] && path.resolve(process.argv[1]).replace(/\.ts$/, '.js').endsWith(path.join('src', 'cli.js'));
if (invokedDirectly) {
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
