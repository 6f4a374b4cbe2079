// The whole face pipeline on WebGPU and on WASM finds the same faces (boxes IoU > 0.95) with the
// same embeddings (cosine > 0.999) on a real group photo.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBackend } from '../../src/engine.js';
import { createFacePipeline, type Face } from '../../src/pipeline/face-pipeline.js';
import { iou } from '../../src/pipeline/detect.js';
import { repoRoot } from '../helpers/fixtures.js';
import { skipWebGpu } from '../helpers/webgpu.js';

async function facesOn(backendName: 'webgpu' | 'wasm', photo: string): Promise<Face[]> {
  const backend = await createBackend(backendName, { workers: 2 });
  const pipeline = await createFacePipeline({ backend });
  try {
    return await pipeline.facesInPhoto(photo);
  } finally {
    pipeline.dispose();
    await backend.dispose();
  }
}

describe.skipIf(skipWebGpu)('WebGPU and WASM pipelines agree', () => {
  it('on t1.jpg: the same six faces, boxes IoU > 0.95, embeddings cosine > 0.999', async () => {
    const photo = path.join(repoRoot, 'test/fixtures/photos/t1.jpg');
    const gpu = await facesOn('webgpu', photo);
    const cpu = await facesOn('wasm', photo);
    expect(gpu.length).toBe(6);
    expect(cpu.length).toBe(gpu.length);
    for (const f of gpu) {
      const best = cpu.map((c) => ({ c, iou: iou(f.box, c.box) })).sort((x, y) => y.iou - x.iou)[0]!;
      expect(best.iou).toBeGreaterThan(0.95);
      let dot = 0;
      for (let i = 0; i < 128; i++) dot += f.embedding[i]! * best.c.embedding[i]!;
      expect(dot).toBeGreaterThan(0.999);
    }
  }, 300_000);
});
