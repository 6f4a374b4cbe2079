// WebGPU embedding benchmark for a machine with a real GPU (run from the compiled dist/, needs
// only the `webgpu` and `flatbuffers` packages): checks the embeddings against the reference
// first, then times batches (median of --runs after a warm-up) with and without subgroup
// kernels, and times every kernel with timestamp queries. Writes a JSON report.
// Usage: node scripts/gpu-bench.mjs --crops f32 --reference f32 [--batches 1,16,64,256] [--runs 7] [--out file]
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readTflite } from '../dist/src/import/tflite/read-tflite.js';
import { optimizeGraph, appendL2Normalize } from '../dist/src/graph/passes.js';
import { graphMacs } from '../dist/src/graph/ir.js';
import { createWebGpuBackend } from '../dist/src/backend/webgpu/webgpu-backend.js';

const { values } = parseArgs({ options: { crops: { type: 'string' }, reference: { type: 'string' }, batches: { type: 'string' }, runs: { type: 'string' }, out: { type: 'string' }, model: { type: 'string' } } });
const f32 = (p) => { const b = readFileSync(p); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
const crops = f32(values.crops);
const reference = f32(values.reference);
const batches = (values.batches ?? '1,16,64,256').split(',').map(Number);
const runs = Number(values.runs ?? 7);
const graph = readTflite(readFileSync(values.model ?? 'models/mobilefacenet-arcface.tflite'), 'mobilefacenet-arcface.tflite');
optimizeGraph(graph);
appendL2Normalize(graph);
const gflopPerFace = (2 * graphMacs(graph)) / 1e9;
const per = 112 * 112 * 3;
const nCrops = crops.length / per;
const batchOf = (n) => { const x = new Float32Array(n * per); for (let i = 0; i < n; i++) x.set(crops.subarray((i % nCrops) * per, (i % nCrops + 1) * per), i * per); return x; };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const report = { gflopPerFace, variants: [] };
for (const subgroups of [true, false]) {
  const backend = await createWebGpuBackend({ subgroups });
  const compiled = await backend.compile(graph);
  const out = await compiled.run(crops, nCrops);
  let maxDiff = 0;
  for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i] - reference[i]));
  const v = { backend: backend.describe(), subgroups, maxDiff, batches: [], kernels: null };
  for (const n of batches) {
    const x = batchOf(n);
    await compiled.run(x, n);
    await compiled.run(x, n);
    const ms = [];
    for (let r = 0; r < runs; r++) { const t = performance.now(); await compiled.run(x, n); ms.push(performance.now() - t); }
    const m = median(ms);
    v.batches.push({ batch: n, ms: m, facesPerSec: (n * 1000) / m, gflops: (n * gflopPerFace) / (m / 1000) });
    console.log(`${v.backend} batch ${n}: ${((n * 1000) / m).toFixed(1)} faces/s, ${((n * gflopPerFace) / (m / 1000)).toFixed(1)} GFLOP/s (median of ${runs}: ${m.toFixed(2)} ms), max diff ${maxDiff.toExponential(2)}`);
  }
  try {
    const n = Math.min(64, compiled.maxChunk);
    const timings = await compiled.profile(batchOf(n), n);
    const byShader = {};
    for (const t of timings) { byShader[t.shader] ??= { ms: 0, macs: 0, count: 0 }; byShader[t.shader].ms += t.ms; byShader[t.shader].macs += t.macs; byShader[t.shader].count++; }
    v.kernels = { batch: n, totalMs: timings.reduce((a, t) => a + t.ms, 0), byShader, timings };
    console.log(`kernels at batch ${n}:`, JSON.stringify(byShader));
  } catch (e) { console.log('profile failed:', e.message); }
  report.variants.push(v);
  compiled.dispose();
  await backend.dispose();
}
if (values.out) writeFileSync(values.out, JSON.stringify(report, null, 1));
process.exit(0);
