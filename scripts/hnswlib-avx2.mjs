// postinstall: rebuilds hnswlib-node's addon with AVX2/FMA on an x86-64 Linux machine that has them,
// with two memory-access patches (scripts/hnswlib-patches.mjs: all of a neighbour's vector
// prefetched at once; huge pages for the level-0 block). hnswlib picks its SIMD distance kernels at
// compile time (__AVX__), and node-gyp's default flags give SSE only; BENCHMARKS.md "Search" has the
// measured gains. Both builds (AVX2, AVX2 + patches) are made in temporary copies; the plain one is
// checked against an exact scan, the patched one must build and search byte-for-byte what the plain
// one does; only then is one copied over the SSE addon, so a failure leaves a working build in
// place. `build/Release/cosface-build.json` says what was installed (`cosface info` prints it). The
// result runs on AVX2 machines only: set COSFACE_HNSW_PORTABLE=1 (or install with --ignore-scripts)
// for node_modules that move to other CPUs.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { HNSWLIB_PATCHES, patchSource } from './hnswlib-patches.mjs';

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

// The same index built, saved, reloaded, grown and searched: what a build writes to argv[2].
const SAME = `
const hnswlib = require(process.argv[1]);
const fs = require('fs');
const d = 96, n = 3000;
let s = 11; const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
const unit = (v) => { const l = Math.hypot(...v); return v.map((x) => x / l); };
const vs = [];
const ix = new hnswlib.HierarchicalNSW('ip', d);
ix.initIndex(n / 2, 12, 60, 100);
for (let i = 0; i < n; i++) {
  if (i === n / 2) ix.resizeIndex(n);
  const v = unit(i % 3 && i ? vs[i - 1].map((x) => x + 0.2 * rnd()) : Array.from({ length: d }, rnd));
  vs.push(v); ix.addPoint(v, i);
}
const out = [];
const search = (index) => { for (let q = 0; q < 40; q++) { index.setEf(16 + q); const r = index.searchKnn(unit(vs[q * 70].map((x) => x + 0.3 * rnd())), 10); out.push(r.neighbors.join(','), r.distances.map((x) => x.toFixed(7)).join(',')); } };
search(ix);
ix.writeIndexSync(process.argv[2] + '.bin');
const back = new hnswlib.HierarchicalNSW('ip', d);
back.readIndexSync(process.argv[2] + '.bin', true);
search(back);
fs.writeFileSync(process.argv[2] + '.txt', out.join('\\n'));
`;

/** Copies the package to dir, patches it, builds the addon there; returns the addon's path. */
function build(gyp, env, dir, patches) {
  cpSync(pkg, dir, { recursive: true, filter: (src) => !src.startsWith(join(pkg, 'build')) });
  for (const p of patches) {
    const file = join(dir, p.file);
    const r = patchSource(readFileSync(file, 'utf8'), p.edits);
    if (r.error) throw new Error(`patch ${p.name}: ${r.error}`);
    writeFileSync(file, r.text);
  }
  execFileSync(process.execPath, [gyp, 'rebuild'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] }); // compiler warnings: only in a failure's message
  // lib/index.js loads the addon through `bindings`, resolved from the installed package.
  cpSync(join(pkg, 'lib'), join(dir, 'lib'), { recursive: true });
  return join(dir, 'build', 'Release', 'addon.node');
}

function install(built, what) {
  // A new file renamed over the old one: a process that has the old addon loaded keeps its mapping.
  const dest = join(pkg, 'build', 'Release', 'addon.node');
  copyFileSync(built, `${dest}.tmp`);
  renameSync(`${dest}.tmp`, dest);
  writeFileSync(join(pkg, 'build', 'Release', 'cosface-build.json'), JSON.stringify(what) + '\n');
}

function main() {
  if (process.env.COSFACE_HNSW_PORTABLE === '1') return say('COSFACE_HNSW_PORTABLE=1: keeping the portable SSE build');
  if (!existsSync(join(pkg, 'binding.gyp'))) return say('hnswlib-node not installed here: nothing to do');
  if (!hasAvx2()) return say('no AVX2/FMA on this machine: keeping the SSE build');
  const gyp = process.env.npm_execpath ? join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : null;
  if (!gyp || !existsSync(gyp)) return say("npm's node-gyp not found (run through npm): keeping the SSE build");
  const work = mkdtempSync(join(tmpdir(), 'cosface-hnswlib-'));
  try {
    const env = { ...process.env, CXXFLAGS: `${process.env.CXXFLAGS ?? ''} -mavx2 -mfma`.trim(), NODE_PATH: [dirname(pkg), dirname(where('node-addon-api') ?? pkg)].join(':') };
    const plain = build(gyp, env, join(work, 'plain'), []);
    const lib = (dir) => join(work, dir, 'lib', 'index.js');
    execFileSync(process.execPath, ['-e', CHECK, lib('plain')], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    try {
      const patched = build(gyp, env, join(work, 'patched'), HNSWLIB_PATCHES);
      for (const dir of ['plain', 'patched']) execFileSync(process.execPath, ['-e', SAME, lib(dir), join(work, dir)], { env, stdio: ['ignore', 'inherit', 'inherit'] });
      for (const ext of ['.bin', '.txt']) {
        if (!readFileSync(join(work, 'plain' + ext)).equals(readFileSync(join(work, 'patched' + ext)))) throw new Error(`the patched build's ${ext === '.bin' ? 'index file' : 'search results'} differ from the plain build's`);
      }
      install(patched, { simd: 'avx2', patches: HNSWLIB_PATCHES.map((p) => p.name) });
      say(`built with -mavx2 -mfma and the ${HNSWLIB_PATCHES.map((p) => p.name).join(' + ')} patches`);
    } catch (e) {
      install(plain, { simd: 'avx2', patches: [], unpatched: e.message.split('\n')[0] });
      say(`built with -mavx2 -mfma, without the patches (${e.message.split('\n')[0]})`);
    }
  } catch (e) {
    say(`AVX2 build failed, keeping the SSE build: ${e.message.split('\n')[0]}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
