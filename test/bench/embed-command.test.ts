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
