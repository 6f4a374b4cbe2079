// One face at a time on the WASM backend with 2 workers, right after another engine's run or a
// pause: how long the pool's lone-face calls take in each case (issue 17, goal 1). Run after
// `npm run build`: node scripts/wasm-lone-face.mjs
const D = new URL('../dist/src', import.meta.url).href;
const { DEFAULT_EMBEDDER_PATH, prepareEmbedderGraph } = await import(`${D}/embedder.js`);
const { loadModelFile } = await import(`${D}/engine.js`);
const { resolveModelMetadata } = await import(`${D}/import/model-metadata.js`);
const { exportOnnx } = await import(`${D}/export/onnx-export.js`);
const { createOrtNodeReference, createOrtWebReference } = await import(`${D}/bench/ort-references.js`);
const { createWasmBackend } = await import(`${D}/backend/wasm/index.js`);
const graph = await loadModelFile(DEFAULT_EMBEDDER_PATH);
prepareEmbedderGraph(graph, await resolveModelMetadata(DEFAULT_EMBEDDER_PATH, graph));
const model = exportOnnx(graph);
const w2 = await (await createWasmBackend({ workers: 2 })).compile(graph);
const on2 = await createOrtNodeReference(model, 2);
const ow2 = await createOrtWebReference(model, 2);
const x = new Float32Array(112 * 112 * 3).map(() => Math.random() * 255);
const shape = [112, 112, 3];
const t = async (f) => { const t0 = performance.now(); await f(); return performance.now() - t0; };
for (let i = 0; i < 5; i++) await w2.run(x, 1);
for (const [bn, bf] of [['ort-node-2t', () => on2.measure(x, 1, shape, 0, 1)], ['ort-web-2t', () => ow2.measure(x, 1, shape, 0, 1)], ['sleep20', () => new Promise((r) => setTimeout(r, 20))]]) {
  const rows = [];
  for (let r = 0; r < 9; r++) { await bf(); const c = []; for (let k = 0; k < 8; k++) c.push(await t(() => w2.run(x, 1))); rows.push(c); }
  const med = rows[0].map((_, k) => rows.map((r) => r[k]).sort((a, b) => a - b)[4].toFixed(1));
  console.log('after', bn, 'calls 1..8 ms:', med.join(' '));
}
process.exit(0);
