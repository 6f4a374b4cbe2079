// The embedding benchmark, run for real at a tiny size: the scalar reference as our engine, beside
// onnxruntime-web (1 and 2 threads, in worker threads) and onnxruntime-node (1 and 2 threads).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { benchEmbed, formatEmbedBench, loadBenchCrops, type BenchEngine } from '../../src/bench/embed-bench.js';
import { graphMacs } from '../../src/graph/ir.js';
import { appendL2Normalize, optimizeGraph } from '../../src/graph/passes.js';
import { runReference } from '../../src/graph/reference.js';
import { readTflite } from '../../src/import/tflite/read-tflite.js';
import { isCosfaceError } from '../../src/errors.js';

const MODEL = 'models/mobilefacenet-arcface.tflite';

function mobileFaceNet() {
  const graph = readTflite(readFileSync(MODEL), MODEL);
  optimizeGraph(graph);
  appendL2Normalize(graph);
  return graph;
}

describe('benchEmbed', () => {
  it('measures an engine and all four references on real crops, with consistent ratios and matching outputs', async () => {
    const graph = mobileFaceNet();
    const engine: BenchEngine = { label: 'scalar reference', threads: 1, run: async (input, n) => runReference(graph, input, n) };
    const result = await benchEmbed({ graph, engines: [engine], batches: [2], runs: 2, warmupRuns: 0 });

    const key = (r: { engine: string; threads: number | null }) => `${r.engine}/${r.threads}`;
    expect(result.rows.map(key).sort()).toEqual(
      ['onnxruntime-node cpu/1', 'onnxruntime-node cpu/2', 'onnxruntime-web wasm/1', 'onnxruntime-web wasm/2', 'scalar reference/1'].sort(),
    );
    expect(result.notes).toEqual([]); // onnxruntime-web really got its 2 threads
    expect(result.gflopPerFace).toBeCloseTo((2 * graphMacs(graph)) / 1e9, 12);
    expect(result.gflopPerFace).toBeCloseTo(0.442, 3);
    expect(result.distinctInputs).toBe(16);

    const find = (engine: string, threads: number) => result.rows.find((r) => r.engine === engine && r.threads === threads)!;
    for (const row of result.rows) {
      expect(row.batch).toBe(2);
      expect(row.runs).toBe(2);
      expect(row.facesPerSec).toBeGreaterThan(0);
      expect(row.facesPerSec).toBeCloseTo(2000 / row.medianMs, 6);
      expect(row.gflops).toBeCloseTo((row.facesPerSec * result.gflopPerFace), 6);
      expect(row.minMs).toBeLessThanOrEqual(row.medianMs);
      expect(row.maxMs).toBeGreaterThanOrEqual(row.medianMs);
      expect(row.refThreads).toBe(row.threads);
      expect(row.vsOrtWeb).toBeCloseTo(row.facesPerSec / find('onnxruntime-web wasm', row.threads!).facesPerSec, 9);
      expect(row.vsOrtNode).toBeCloseTo(row.facesPerSec / find('onnxruntime-node cpu', row.threads!).facesPerSec, 9);
      // Every runtime computed the same embeddings as onnxruntime-node.
      expect(row.maxAbsDiff).not.toBeNull();
      expect(row.maxAbsDiff!).toBeLessThan(1e-4);
    }
    // The scalar reference is far slower than any optimised runtime.
    expect(find('scalar reference', 1).vsOrtNode!).toBeLessThan(1);

    const table = formatEmbedBench(result);
    expect(table).toContain('| engine | threads | batch | faces/s | GFLOP/s | vs ort-web wasm | vs ort-node | max abs diff |');
    for (const row of result.rows) {
      expect(table).toContain(`| ${row.engine} | ${row.threads} | 2 | ${row.facesPerSec.toFixed(1)} | ${row.gflops.toFixed(1)} | ${row.vsOrtWeb!.toFixed(2)}x | ${row.vsOrtNode!.toFixed(2)}x |`);
    }
    // The result is plain data for --json.
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it('a GPU-style engine (no thread count) is compared with the largest reference thread count; per-kernel timings are tabulated', async () => {
    const graph = mobileFaceNet();
    const samples = (await loadBenchCrops(graph.input.shape)).slice(0, 3);
    let seen = 0;
    const engine: BenchEngine = {
      label: 'gpu-like',
      run: async (input, n) => runReference(graph, input, n),
      perKernel: async (input, n) => {
        seen = n;
        expect(input.length).toBe(n * 112 * 112 * 3);
        return [{ node: 'conv_1', op: 'conv2d', shader: 'conv2d.wgsl', ms: 2, macs: 4e6 }];
      },
    };
    const result = await benchEmbed({ graph, engines: [engine], batches: [1], runs: 1, warmupRuns: 0, samples, referenceThreads: [2] });
    const row = result.rows.find((r) => r.engine === 'gpu-like')!;
    expect(row.threads).toBeNull();
    expect(row.refThreads).toBe(2);
    const web2 = result.rows.find((r) => r.engine === 'onnxruntime-web wasm' && r.threads === 2)!;
    expect(row.vsOrtWeb).toBeCloseTo(row.facesPerSec / web2.facesPerSec, 9);
    expect(seen).toBe(1);
    expect(result.distinctInputs).toBe(3);
    const table = formatEmbedBench(result);
    expect(table).toContain('| gpu-like | gpu (vs 2t) | 1 |');
    expect(table).toContain('| conv_1 | conv2d | conv2d.wgsl | 2.000 | 100.0% | 4.0 |');
  });

  it('runs one reference alone when asked, and measures the differences from it', async () => {
    const graph = mobileFaceNet();
    const samples = (await loadBenchCrops(graph.input.shape)).slice(0, 2);
    const engine: BenchEngine = { label: 'gpu-like', run: async (input, n) => runReference(graph, input, n) };
    const result = await benchEmbed({ graph, engines: [engine], batches: [1], runs: 1, warmupRuns: 0, samples, referenceKinds: ['onnxruntime-web'], referenceThreads: [2] });
    expect(result.rows.map((r) => `${r.engine}/${r.threads}`).sort()).toEqual(['gpu-like/null', 'onnxruntime-web wasm/2']);
    expect(result.env.onnxruntimeNode).toBeNull();
    expect(result.diffFrom).toBe('onnxruntime-web');
    const row = result.rows.find((r) => r.engine === 'gpu-like')!;
    expect(row.vsOrtWeb).toBeGreaterThan(0);
    expect(row.vsOrtNode).toBeNull();
    expect(row.maxAbsDiff).toBeLessThan(1e-5); // the scalar reference against onnxruntime-web
    expect(formatEmbedBench(result)).toContain("difference from onnxruntime-web's output");
    for (const bad of [{ referenceKinds: [] }, { referenceThreads: [0] }]) {
      const err = await benchEmbed({ graph, engines: [engine], batches: [1], ...bad }).catch((e: unknown) => e);
      expect(isCosfaceError(err, 'BAD_INPUT')).toBe(true);
    }
  });

  it('rejects an empty or zero batch list before doing any work', async () => {
    const graph = mobileFaceNet();
    for (const batches of [[], [0], [2, -1]]) {
      const err = await benchEmbed({ graph, engines: [], batches, references: false }).catch((e: unknown) => e);
      expect(isCosfaceError(err, 'EMPTY_BATCH')).toBe(true);
    }
  });
});
