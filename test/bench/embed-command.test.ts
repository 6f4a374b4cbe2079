// `cosface bench embed` end to end on the WebGPU backend, small: the JSON report has the row, the
// per-kernel profile covers every node, and the engine's embeddings agree with onnxruntime-node.
import { describe, expect, it } from 'vitest';
import { benchEmbedCommand } from '../../src/bench/embed-command.js';
import type { EmbedBenchResult } from '../../src/bench/embed-bench.js';
import { skipWebGpu } from '../helpers/webgpu.js';

describe.skipIf(skipWebGpu)('benchEmbedCommand on webgpu', () => {
  it('reports webgpu beside onnxruntime-node with a profile of every kernel, as JSON', async () => {
    let out = '';
    await benchEmbedCommand({
      batches: [2],
      runs: 1,
      warmupRuns: 1,
      backends: ['webgpu'],
      json: true,
      references: true,
      profile: true,
      write: (t) => (out += t),
    });
    const result = JSON.parse(out) as EmbedBenchResult;
    const gpu = result.rows.find((r) => r.engine === 'webgpu')!;
    expect(gpu.threads).toBeNull();
    expect(gpu.refThreads).toBe(2);
    expect(gpu.facesPerSec).toBeGreaterThan(0);
    // The WebGPU embeddings of real crops match onnxruntime-node's to the parity tolerance.
    expect(gpu.maxAbsDiff!).toBeLessThan(1e-4);
    expect(result.engines[0]!.description).toMatch(/webgpu/);
    const profile = result.kernels.find((k) => k.engine === 'webgpu')!;
    expect(profile.batch).toBe(2);
    expect(profile.timings.length).toBeGreaterThanOrEqual(50); // 32 conv + 17 depthwise + fc + l2
    expect(profile.timings.every((t) => t.ms >= 0)).toBe(true);
  });
});

describe('benchEmbedCommand --model <file.onnx>', () => {
  it('benchmarks a user ONNX model (a small IResNet) beside onnxruntime-web and -node running that same file', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { buildIResNet } = await import('../helpers/iresnet-onnx.js');
    const dir = mkdtempSync(join(tmpdir(), 'cosface-bench-onnx-'));
    try {
      const model = buildIResNet({ layers: [1, 1, 1, 1], widths: [8, 8, 16, 16], features: 32, normalise: true, seed: 3 });
      const file = join(dir, 'small-iresnet.onnx');
      writeFileSync(file, model.bytes);
      let out = '';
      await benchEmbedCommand({ batches: [2], runs: 1, warmupRuns: 0, backends: ['wasm'], wasmWorkers: [1], json: true, references: true, profile: false, modelPath: file, write: (t) => (out += t) });
      const result = JSON.parse(out) as EmbedBenchResult;
      expect(result.model).toBe('onnx:small-iresnet.onnx');
      expect(result.gflopPerFace).toBeCloseTo((2 * model.macs) / 1e9, 6);
      expect(result.rows.map((r) => r.kind).sort()).toEqual(['engine', 'onnxruntime-node', 'onnxruntime-node', 'onnxruntime-web', 'onnxruntime-web']);
      // Our unit vectors against onnxruntime-node running the user's file (NHWC and L2 wrapped around it).
      const wasm = result.rows.find((r) => r.engine === 'wasm')!;
      expect(wasm.maxAbsDiff!).toBeLessThan(1e-5);
      const web = result.rows.find((r) => r.kind === 'onnxruntime-web')!;
      expect(web.maxAbsDiff!).toBeLessThan(1e-5);
      expect(result.notes).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
