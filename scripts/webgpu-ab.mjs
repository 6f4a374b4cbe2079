// A/B of subgroup GEMM tiles on the real model in one process (run from the compiled dist/):
// compiles the embedder once per variant, checks each variant's embeddings against the first,
// then profiles the variants alternately (timestamp queries) and prints per-shader medians.
// Alternating in one process makes the paired differences meaningful on a busy machine.
// Usage: node scripts/webgpu-ab.mjs default 24:1 64:1 32:2   (rows per subgroup : vec4 columns per lane)
// env: N (batch, default 16), RUNS (profiled batches per variant, default 7).
import { DEFAULT_EMBEDDER_PATH, prepareEmbedderGraph } from '../dist/src/embedder.js';
import { loadModelFile } from '../dist/src/engine.js';
import { resolveModelMetadata } from '../dist/src/import/model-metadata.js';
import { createWebGpuBackend } from '../dist/src/backend/webgpu/webgpu-backend.js';

const graph = await loadModelFile(DEFAULT_EMBEDDER_PATH);
prepareEmbedderGraph(graph, await resolveModelMetadata(DEFAULT_EMBEDDER_PATH, graph, {}));
const n = Number(process.env.N ?? 16);
const runs = Number(process.env.RUNS ?? 7);
const x = new Float32Array(n * 112 * 112 * 3);
for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 100 + 120;
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const variants = [];
for (const spec of process.argv.slice(2).length ? process.argv.slice(2) : ['default']) {
  const [rows, cols] = spec.split(':').map(Number);
  const backend = await createWebGpuBackend({ subgroupGemm: spec === 'default' ? null : { rows, cols } });
  variants.push({ spec, compiled: await backend.compile(graph), profiles: [] });
}
const first = await variants[0].compiled.run(x, n);
for (const v of variants) {
  const out = await v.compiled.run(x, n);
  let diff = 0;
  for (let i = 0; i < out.length; i++) diff = Math.max(diff, Math.abs(out[i] - first[i]));
  console.log(`${v.spec}: max abs diff from ${variants[0].spec} ${diff.toExponential(2)}`);
  await v.compiled.profile(x, n); // warm-up (the first batch of a new shader includes its JIT compile)
}
for (let r = 0; r < runs; r++) for (const v of variants) v.profiles.push(await v.compiled.profile(x, n));
for (const v of variants) {
  const byShader = {};
  for (const p of v.profiles) {
    const sum = {};
    for (const t of p) sum[t.shader] = (sum[t.shader] ?? 0) + t.ms;
    for (const [k, ms] of Object.entries(sum)) (byShader[k] ??= []).push(ms);
  }
  console.log(`${v.spec}: kernel time per batch of ${n}, median of ${runs}: ${median(v.profiles.map((p) => p.reduce((a, t) => a + t.ms, 0))).toFixed(1)} ms`);
  for (const [k, a] of Object.entries(byShader)) console.log(`  ${k.padEnd(40)} ${median(a).toFixed(1).padStart(7)} ms`);
}
process.exit(0);
