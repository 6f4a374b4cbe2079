// postinstall: rebuilds hnswlib-node's addon with AVX2/FMA on an x86-64 Linux machine that has them.
// hnswlib picks its SIMD distance kernels at compile time (__AVX__), and node-gyp's default flags
// give SSE only; BENCHMARKS.md "Search" has the measured gain. The addon is built in a temporary
// copy, checked against an exact scan, and only then copied over the SSE one, so a failure leaves
// the working SSE build in place. The result runs on AVX2 machines only: set
// COSFACE_HNSW_PORTABLE=1 (or install with --ignore-scripts) for node_modules that move to other CPUs.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

// Wherever npm put it: our own node_modules, or a project's that installed cosface.
const require = createRequire(import.meta.url);
const where = (name) => {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    return null;
  }
};
const pkg = where('hnswlib-node') ?? '/nonexistent';
const say = (s) => process.stderr.write(`hnswlib-avx2: ${s}\n`);

function hasAvx2() {
  if (process.arch !== 'x64' || process.platform !== 'linux') return false;
  const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
  return flags.includes('avx2') && flags.includes('fma');
}

// A small index searched against an exact scan, in a child process (an illegal instruction kills only it).
const CHECK = `
const hnswlib = require(process.argv[1]);
const d = 128, n = 2000;
let s = 7; const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
const vs = [];
const ix = new hnswlib.HierarchicalNSW('ip', d);
ix.initIndex(n, 16, 100, 100);
for (let i = 0; i < n; i++) { const v = Array.from({ length: d }, rnd); const l = Math.hypot(...v); vs.push(v.map((x) => x / l)); ix.addPoint(vs[i], i); }
ix.setEf(400);
for (let q = 0; q < 20; q++) {
  const p = vs[q * 50].map((x, i) => x + 0.3 * rnd());
  let best = -1, arg = -1;
  for (let i = 0; i < n; i++) { let dot = 0; for (let j = 0; j < d; j++) dot += p[j] * vs[i][j]; if (dot > best) { best = dot; arg = i; } }
  const r = ix.searchKnn(p, 1);
  if (r.neighbors[0] !== arg || Math.abs(1 - r.distances[0] - best) > 1e-4) { console.error('mismatch', q, r.neighbors[0], arg); process.exit(1); }
}
`;

function main() {
  if (process.env.COSFACE_HNSW_PORTABLE === '1') return say('COSFACE_HNSW_PORTABLE=1: keeping the portable SSE build');
  if (!existsSync(join(pkg, 'binding.gyp'))) return say('hnswlib-node not installed here: nothing to do');
  if (!hasAvx2()) return say('no AVX2/FMA on this machine: keeping the SSE build');
  const gyp = process.env.npm_execpath ? join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : null;
  if (!gyp || !existsSync(gyp)) return say("npm's node-gyp not found (run through npm): keeping the SSE build");
  const work = mkdtempSync(join(tmpdir(), 'cosface-hnswlib-'));
  try {
    const copy = join(work, 'hnswlib-node');
    cpSync(pkg, copy, { recursive: true, filter: (src) => !src.startsWith(join(pkg, 'build')) });
    const env = { ...process.env, CXXFLAGS: `${process.env.CXXFLAGS ?? ''} -mavx2 -mfma`.trim(), NODE_PATH: [dirname(pkg), dirname(where('node-addon-api') ?? pkg)].join(':') };
    execFileSync(process.execPath, [gyp, 'rebuild'], { cwd: copy, env, stdio: ['ignore', 'ignore', 'inherit'] });
    const built = join(copy, 'build', 'Release', 'addon.node');
    // lib/index.js loads the addon through `bindings`, resolved from the installed package.
    cpSync(join(pkg, 'lib'), join(copy, 'lib'), { recursive: true });
    execFileSync(process.execPath, ['-e', CHECK, join(copy, 'lib', 'index.js')], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    copyFileSync(built, join(pkg, 'build', 'Release', 'addon.node'));
    say('built with -mavx2 -mfma');
  } catch (e) {
    say(`AVX2 build failed, keeping the SSE build: ${e.message.split('\n')[0]}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
