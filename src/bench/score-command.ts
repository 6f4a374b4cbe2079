// `cosface bench score` argument parsing; the benchmark itself is src/bench/score-bench.ts.
import { parseArgs } from 'node:util';
import { CosfaceError } from '../errors.js';
import { benchScoreCommand } from './score-bench.js';

const list = (v: string | undefined, name: string): number[] | undefined => {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => Number(s.trim().replace(/k$/i, '000').replace(/m$/i, '000000')));
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) throw new CosfaceError('BAD_INPUT', `--${name} must be positive integers, got '${v}'`);
  return xs;
};

/** cosface bench score [--sizes 100k,1m] [--dims 128,512] [--queries 1,64] [--k 10] [--runs 5] [--backend wasm,webgpu] [--json] */
export async function scoreCli(args: string[]): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: { sizes: { type: 'string' }, dims: { type: 'string' }, queries: { type: 'string' }, k: { type: 'string' }, runs: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' } } }).values;
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `bench score: ${(e as Error).message}`);
  }
  const k = list(values.k as string | undefined, 'k');
  const runs = list(values.runs as string | undefined, 'runs');
  await benchScoreCommand({
    json: !!values.json,
    sizes: list(values.sizes as string | undefined, 'sizes'),
    dims: list(values.dims as string | undefined, 'dims'),
    queries: list(values.queries as string | undefined, 'queries'),
    k: k?.[0],
    runs: runs?.[0],
    backends: values.backend ? String(values.backend).split(',') : undefined,
  } as Parameters<typeof benchScoreCommand>[0]);
}
