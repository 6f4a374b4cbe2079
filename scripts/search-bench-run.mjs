// Runs the search benchmark from the compiled dist/ (for a machine without the dev toolchain).
// Usage: node scripts/search-bench-run.mjs [--sizes 1000000] [--ef 64,128,256] [--queries 500] [--m 32] [--ef-construction 200] [--shards 2] [--cache dir] [--design faces|centroids|both] [--centroid-candidates 10] [--out file.json]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { benchSearch, formatSearchBench } from '../dist/src/bench/search-bench.js';

const { values } = parseArgs({ options: { sizes: { type: 'string' }, ef: { type: 'string' }, queries: { type: 'string' }, out: { type: 'string' }, m: { type: 'string' }, 'ef-construction': { type: 'string' }, shards: { type: 'string' }, cache: { type: 'string' }, design: { type: 'string' }, 'centroid-candidates': { type: 'string' } } });
const nums = (s, d) => (s ?? d).split(',').map(Number);
const result = await benchSearch({
  sizes: nums(values.sizes, '1000000'),
  efs: nums(values.ef, '64,128,256'),
  queries: Number(values.queries ?? 500),
  m: values.m ? Number(values.m) : undefined,
  efConstruction: values['ef-construction'] ? Number(values['ef-construction']) : undefined,
  shards: values.shards ? Number(values.shards) : undefined,
  cacheDir: values.cache,
  design: values.design,
  centroidCandidates: values['centroid-candidates'] ? Number(values['centroid-candidates']) : undefined,
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(`${formatSearchBench(result)}\n`);
if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 1));
process.exit(0);
