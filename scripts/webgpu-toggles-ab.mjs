// A/B of Dawn toggles on the real model in one process (run from the compiled dist/, Node only):
// one WebGPU device per set of Dawn flags (dawn.node's create() options), the embedder compiled
// on each, each variant's embeddings checked against the first, then batches run alternately
// (wall time of run(): upload, 51 dispatches, read-back) and profiled alternately (timestamp
// queries, kernel time), medians printed. Alternating in one process makes the paired
// differences meaningful on a busy machine.
// Usage: node scripts/webgpu-toggles-ab.mjs safe skip_validation disable_robustness,allow_unsafe_apis ...
//   a variant is 'safe' (Dawn's defaults), 'default' (what getGpu() uses for the adapter), or a
//   comma-separated list of toggles to enable (prefix a toggle with '-' to disable it instead).
// env: N (batch, default 16), RUNS (timed batches per variant, default 9), PROFILE=0 skips the profile.
import { DEFAULT_EMBEDDER_PATH, prepareEmbedderGraph } from '../dist/src/embedder.js';
import { loadModelFile } from '../dist/src/engine.js';
import { resolveModelMetadata } from '../dist/src/import/model-metadata.js';
import { createGpuContext } from '../dist/src/backend/webgpu/device.js';
import { createWebGpuBackend } from '../dist/src/backend/webgpu/webgpu-backend.js';

const graph = await loadModelFile(DEFAULT_EMBEDDER_PATH);
prepareEmbedderGraph(graph, await resolveModelMetadata(DEFAULT_EMBEDDER_PATH, graph, {}));
const n = Number(process.env.N ?? 16);
const runs = Number(process.env.RUNS ?? 9);
const x = new Float32Array(n * 112 * 112 * 3);
for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 100 + 120;
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
function flagsOf(spec) {
  if (spec === 'safe') return [];
  if (spec === 'default') return null;
  const on = spec.split(',').filter((t) => t && !t.startsWith('-'));
  const off = spec.split(',').filter((t) => t.startsWith('-')).map((t) => t.slice(1));
  return [...(on.length ? [`enable-dawn-features=${on.join(',')}`] : []), ...(off.length ? [`disable-dawn-features=${off.join(',')}`] : [])];
}
const variants = [];
for (const spec of process.argv.slice(2).length ? process.argv.slice(2) : ['safe', 'default']) {
  const flags = flagsOf(spec);
  const gpu = await createGpuContext(flags ? { dawnFlags: flags } : {});
  const backend = await createWebGpuBackend({ gpu });
  variants.push({ spec, flags: gpu.dawnFlags, compiled: await backend.compile(graph), ms: [], profiles: [] });
}
const first = await variants[0].compiled.run(x, n);
for (const v of variants) {
  const out = await v.compiled.run(x, n);
  let diff = 0;
  for (let i = 0; i < out.length; i++) diff = Math.max(diff, Math.abs(out[i] - first[i]));
  console.log(`${v.spec} [${v.flags.join(' ')}]: max abs diff from ${variants[0].spec} ${diff.toExponential(2)}`);
  for (let w = 0; w < 2; w++) await v.compiled.run(x, n); // warm-up (JIT compile of new shaders, GpuWait's estimate)
}
for (let r = 0; r < runs; r++) {
  for (const v of variants) {
    const t0 = performance.now();
    await v.compiled.run(x, n);
    v.ms.push(performance.now() - t0);
  }
}
if (process.env.PROFILE !== '0') {
  for (const v of variants) await v.compiled.profile(x, n);
  for (let r = 0; r < Math.min(runs, 5); r++) for (const v of variants) v.profiles.push(await v.compiled.profile(x, n));
}
for (const v of variants) {
  const ms = median(v.ms);
  const kernel = v.profiles.length ? median(v.profiles.map((p) => p.reduce((a, t) => a + t.ms, 0))).toFixed(1) : '-';
  console.log(`${v.spec.padEnd(48)} batch ${n}: run() median ${ms.toFixed(1)} ms = ${((n * 1000) / ms).toFixed(1)} faces/s (min ${Math.min(...v.ms).toFixed(1)}, max ${Math.max(...v.ms).toFixed(1)}); kernel time median ${kernel} ms`);
}
process.exit(0);
