// Per-kernel profile of the WASM embedder (MobileFaceNet) on 1 or more threads at once, each its own
// worker thread and kernel instance running the plan's steps sample by sample, as the backend's
// workers do: shows whether a second worker slows the kernels (shared caches, memory traffic) or
// only the scheduling around them. Reads dist/ (run `npm run build` first).
//   node scripts/wasm-profile.mjs [threads=1] [microBatch=1] [samples=8] [reps=5] [v]
// Prints ms per sample per thread, faces/s of all threads together, time per op, and with `v`
// every layer shape, slowest first.
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
const D = new URL('../dist/src/', import.meta.url).href;
const { loadModelFile } = await import(D + 'engine.js');
const { DEFAULT_EMBEDDER_PATH, prepareEmbedderGraph } = await import(D + 'embedder.js');
const { resolveModelMetadata } = await import(D + 'import/model-metadata.js');
const { planGraph } = await import(D + 'backend/wasm/wasm-plan.js');
const { WasmKernels, loadWasmBuild } = await import(D + 'backend/wasm/wasm-kernels.js');
const { WasmGraphRunner } = await import(D + 'backend/wasm/wasm-runner.js');

async function plan() {
  const graph = await loadModelFile(DEFAULT_EMBEDDER_PATH);
  const meta = await resolveModelMetadata(DEFAULT_EMBEDDER_PATH, graph, undefined);
  prepareEmbedderGraph(graph, meta);
  return planGraph(graph);
}

function profile(p, mb, samples, reps) {
  const kernels = new WasmKernels(loadWasmBuild().module);
  const r = new WasmGraphRunner(kernels, p, mb);
  const input = new Float32Array(p.inputSize * samples).map(() => Math.random());
  r.run(input, samples);
  const t = new Float64Array(p.steps.length);
  const exec = r.exec.bind(r);
  let total = 0;
  for (let rep = 0; rep < reps; rep++) {
    const t0 = performance.now();
    for (let s0 = 0; s0 < samples; s0 += mb) {
      const m = Math.min(mb, samples - s0);
      p.steps.forEach((st, i) => { const a = performance.now(); exec(st, m); t[i] += performance.now() - a; });
    }
    total += performance.now() - t0;
  }
  return { perSample: total / reps / samples, t: Array.from(t, (x) => x / reps / samples) };
}

if (isMainThread) {
  const p = await plan();
  const threads = +(process.argv[2] ?? 1), mb = +(process.argv[3] ?? 1), samples = +(process.argv[4] ?? 8), reps = +(process.argv[5] ?? 5);
  const res = await Promise.all(Array.from({ length: threads }, () => new Promise((res) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { p, mb, samples, reps } });
    w.on('message', res);
  })));
  const agg = new Map();
  p.steps.forEach((st, i) => {
    const key = st.op === 'gemm' ? `gemm K=${st.K} N=${st.N} P=${st.P}` : `${st.op} ${st.H ?? st.P}x${st.C ?? ''} k${st.kh ?? ''}s${st.sh ?? ''}`;
    const v = res.reduce((a, r) => a + r.t[i], 0) / threads;
    agg.set(key, (agg.get(key) ?? 0) + v);
  });
  const byOp = {};
  p.steps.forEach((st, i) => { byOp[st.op] = (byOp[st.op] ?? 0) + res.reduce((a, r) => a + r.t[i], 0) / threads; });
  console.log(`threads ${threads} mb ${mb}: ms/sample per thread`, res.map((r) => r.perSample.toFixed(2)).join(' '), ' -> faces/s total', res.reduce((a, r) => a + 1000 / r.perSample, 0).toFixed(1));
  console.log(Object.entries(byOp).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', '));
  if (process.argv[6] === 'v') for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1])) console.log(v.toFixed(3), k);
} else {
  parentPort.postMessage(profile(workerData.p, workerData.mb, workerData.samples, workerData.reps));
}
