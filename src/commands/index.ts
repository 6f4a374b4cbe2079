// Commands contributed by feature modules, merged into the `cosface` command table (src/cli.ts).
// Each entry takes the arguments after the command name, prints its result, and throws
// CosfaceError on failure (the CLI prints "error CODE: message" and exits 2).
// Add a feature's commands here: one import, one line per command, one usage block.
export type Command = (args: string[]) => Promise<void>;

export const EXTRA_COMMANDS: Record<string, () => Promise<Command>> = {};

/** Usage lines appended to the CLI's help. */
export const EXTRA_USAGE: string[] = [];

// Store commands (src/commands/store-commands.ts): enroll, identify, verify, gallery, calibrate,
// and `cosface eval orl` / `cosface bench search` (src/cli.ts routes `eval X` to the entry `eval-X`
// and `bench X` to `bench-X`; the hyphenated names still work as unlisted aliases).
for (const name of ['enroll', 'identify', 'verify', 'gallery', 'calibrate', 'eval-orl', 'bench-search'] as const) {
  EXTRA_COMMANDS[name] = async () => (await import('./store-commands.js')).storeCommands()[name];
}
EXTRA_USAGE.push(
  '  cosface enroll <dir> --gallery <name> [--db <db>] [--backend ...] [--pipeline on|off] [--batch 8] [--stats] [--json] [--quiet]   one folder per identity (folder name = id); resumable',
  '  cosface identify <photo> --gallery <name> [--db <db>] [--k 5] [--far 1e-4 | --threshold t] [--exact] [--json]',
  '  cosface verify <a> <b> [--db <db>] [--far 1e-4 | --threshold t] [--json]   the largest face of each photo',
  '  cosface gallery list | stats <name> [--check] | delete <name>   [--db <db>] [--json]',
  '  cosface gallery duplicates <name> [--far f | --threshold t] [--db <db>] [--json]   identities enrolled twice, best pair first',
  '  cosface gallery migrate <name> --model <file> --photos <dir> [--drop-missing] [--no-recalibrate] [--db <db>] [--json] [--quiet] | --abort [--discard]   re-embed with a new model, then switch (no downtime)',
  '  cosface calibrate --data <dir> [--pairs <csv>] [--all-pairs] [--db <db>] [--json]   store thresholds for FAR 1e-2..1e-6',
  '  cosface eval orl --data <dir> [--far 1e-3 | --threshold t] [--holdout 10] [--pad 2] [--calibration enrolled|stored] [--gallery-db <location>] [--search exact|index] [--json]',
  '  cosface bench search [--sizes 10000,100000] [--ef 32,64,128,256] [--m 32] [--queries 500] [--shards 1|2] [--in-turn] [--design faces|centroids|both|codes] [--centroid-candidates 10,40] [--codes 1024,4096] [--cache <dir>] [--db pglite:<dir>|postgres://... [--shared-index [--shared-other <faces>]]] [--json]',
  '  The store is $COSFACE_DB, else ./cosface.db, unless --db says otherwise: a SQLite file, pglite:<dir> (embedded Postgres) or postgres://user@host/db;',
  '  identify and verify decide at FAR 1e-4 when the model is calibrated there.',
);

// Photo-library de-duplication (src/commands/dedupe-commands.ts): cosface dedupe, cosface eval near-dup.
for (const name of ['dedupe', 'eval-near-dup', 'people'] as const) {
  EXTRA_COMMANDS[name] = async () => (await import('./dedupe-commands.js')).dedupeCommands()[name];
}
EXTRA_USAGE.push(
  '  cosface dedupe <dir>... [--db <path>] [--library <name>] [--out <report-dir>] [--json] [--threshold t | --far f] [--quiet]',
  '         every face of every photo (folders walked, links followed) grouped into people; near-duplicate photos;',
  '         kept in the store, so a second run embeds nothing and a killed run resumes; --out writes an HTML report',
  '  cosface people name <person-id> <name> [--db <path>] [--library <name>]   a person dedupe found, confirmed: never merged automatically',
  '  cosface eval near-dup --data <lfw-dir> [--images 500] [--cache <json>] [--no-faces] [--json]   near-duplicate recall and false pairs',
);

// Whole-pipeline speed (src/bench/pipeline-bench.ts): cosface bench pipeline.
EXTRA_COMMANDS['bench-pipeline'] = async () => (await import('../bench/pipeline-bench.js')).benchPipelineCommand;
EXTRA_USAGE.push('  cosface bench pipeline <photo|dir>... [--backend webgpu,wasm] [--runs 3] [--json]   photos/s through the whole pipeline');
// Bulk enrollment speed with the stage split (src/bench/enroll-bench.ts): cosface bench enroll.
EXTRA_COMMANDS['bench-enroll'] = async () => (await import('../bench/enroll-bench.js')).benchEnrollCommand;
EXTRA_USAGE.push('  cosface bench enroll --photos <dir> [--limit N] [--backend wasm] [--pipeline off,on] [--batch 8] [--runs 1] [--json]   enroll photos/s and where the time goes');
EXTRA_COMMANDS['bench-enroll-http'] = async () => (await import('../bench/enroll-http-bench.js')).benchEnrollHttpCommand;
EXTRA_USAGE.push('  cosface bench enroll-http [--faces 100000] [--batch 1000] [--slices 5] [--shard-from 200000] [--json]   embeddings/s through the bulk enrollment route, by stage');

// The HTTP API (src/server): cosface serve, cosface keys.
EXTRA_COMMANDS.serve = async () => (await import('../server/cli-commands.js')).serveCli;
EXTRA_COMMANDS.keys = async () => (await import('../server/cli-commands.js')).keysCli;
EXTRA_USAGE.push(
  '  cosface serve [--db <db>] [--port 8080] [--host 127.0.0.1] [--backend ...] [--no-auth]   the HTTP API (docs at /docs)',
  '  cosface keys create [--gallery <g>] [--name <n>] | list | revoke <id>   [--db <db>] [--json]   API keys',
);

// Exact scoring speed against the memory-read limit (src/bench/score-bench.ts): cosface bench score.
EXTRA_COMMANDS['bench-score'] = async () => (await import('../bench/score-command.js')).scoreCli;
EXTRA_USAGE.push('  cosface bench score [--sizes 100k,1m] [--dims 128,512] [--queries 1,64] [--k 10] [--backend wasm,webgpu] [--json]');

// The CosFace loss (src/train): margin bounds and head training on frozen features.
EXTRA_COMMANDS.loss = async () => async (args: string[]) => {
  const [what, ...rest] = args;
  if (what !== 'bounds') {
    const { CosfaceError } = await import('../errors.js');
    throw new CosfaceError('BAD_INPUT', `loss: unknown subcommand '${what ?? ''}' (bounds)`);
  }
  process.stdout.write(`${(await import('../train/loss-bounds.js')).lossBoundsCommand(rest)}\n`);
};
EXTRA_COMMANDS.train = async () => async (args: string[]) => {
  const [what, ...rest] = args;
  if (what !== 'head') {
    const { CosfaceError } = await import('../errors.js');
    throw new CosfaceError('BAD_INPUT', `train: unknown subcommand '${what ?? ''}' (head)`);
  }
  await (await import('../train/train-head.js')).trainHeadCommand(rest);
};
EXTRA_USAGE.push(
  '  cosface loss bounds --classes C --dim d [--posterior 0.9] [--json]   CosFace margin and scale bounds',
  '  cosface train head --features <file> --out <head.json> [...]   fit an embedding head with LMCL on frozen features',
);

// Clustering faces into people (src/cluster): cosface eval cluster, cosface bench cluster.
EXTRA_COMMANDS['eval-cluster'] = async () => (await import('../eval/cluster-eval.js')).evalClusterCommand;
EXTRA_COMMANDS['bench-cluster'] = async () => (await import('../bench/cluster-bench.js')).benchClusterCommand;
EXTRA_USAGE.push(
  '  cosface eval cluster --data <dir> [--algorithm average] [--threshold t] [--k 16] [--central-only] [--incremental 0.5 [--batches 4]] [--cache <file>] [--json]   clustering quality on labelled folders',
  '  cosface bench cluster [--n 200000] [--per 10] [--workers 1 [--strategy shards|shared]] [--algorithm average,union-find,dbscan,chinese-whispers] [--k 16] [--m 16] [--json]',
);
