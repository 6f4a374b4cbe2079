// ONNX import: our own export of MobileFaceNet read back gives the same embeddings on both
// backends; small graphs with the ops of PyTorch face-model exports (depthwise, pooling, padding,
// decomposed PReLU, constant normalisation, MatMul heads, a fixed batch of 1) match onnxruntime;
// broken files and unknown ops fail at load with their codes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { createWasmBackend } from '../../src/backend/wasm/index.js';
import { Embedder } from '../../src/embedder.js';
import { loadModelFile } from '../../src/engine.js';
import { isCosfaceError } from '../../src/errors.js';
import { exportOnnx } from '../../src/export/onnx-export.js';
import { appendL2Normalize, optimizeGraph } from '../../src/graph/passes.js';
import { runReference } from '../../src/graph/reference.js';
import { readOnnx } from '../../src/import/onnx/read-onnx.js';
import { readTflite } from '../../src/import/tflite/read-tflite.js';
import { loadAlignedFixtures, maxAbsDiff, modelPath, mulberry32, type AlignedFixtures } from '../helpers/fixtures.js';
import { OnnxBuilder } from '../helpers/onnx-builder.js';
import { nhwcToNchw } from '../helpers/iresnet-onnx.js';
import { skipWebGpu } from '../helpers/webgpu.js';
import { readFileSync } from 'node:fs';

const CROP = 112 * 112 * 3;
let dir: string;
let fx: AlignedFixtures;
const backends: Array<{ name: string; backend: Backend }> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cosface-onnx-'));
  fx = await loadAlignedFixtures();
  backends.push({ name: 'wasm', backend: await createWasmBackend({ workers: 2 }) });
  if (!skipWebGpu) {
    const { createWebGpuBackend } = await import('../../src/backend/webgpu/webgpu-backend.js');
    backends.push({ name: 'webgpu', backend: await createWebGpuBackend() });
  }
});
afterAll(async () => {
  for (const b of backends) await b.backend.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function runOrt(model: Uint8Array, input: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, dims) });
    return new Float32Array(out[session.outputNames[0]!]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

/** max |a - b| relative to the largest |b| (at least 1). */
function relDiff(a: Float32Array, b: Float32Array): number {
  let m = 1;
  for (const v of b) m = Math.max(m, Math.abs(v));
  return maxAbsDiff(a, b) / m;
}

describe('ONNX round trip of MobileFaceNet', () => {
  it('our export (optimised + L2) read back by loadModelFile embeds the 16 fixtures as the TFLite model does, on every backend', async () => {
    const graph = readTflite(readFileSync(modelPath), 'mobilefacenet-arcface.tflite');
    optimizeGraph(graph);
    appendL2Normalize(graph);
    const file = join(dir, 'mobilefacenet.onnx');
    writeFileSync(file, exportOnnx(graph));
    const g = await loadModelFile(file);
    expect(g.source).toBe('onnx:mobilefacenet.onnx');
    expect(g.input.shape).toEqual([112, 112, 3]);
    expect(g.output.shape).toEqual([128]);
    for (const { name, backend } of backends) {
      // The fixture embeddings are what the TFLite model gives (an independent float32 run).
      const fromOnnx = await Embedder.create({ backendInstance: backend, modelPath: file });
      try {
        expect(maxAbsDiff(await fromOnnx.embed(fx.crops, 16), fx.reference), name).toBeLessThanOrEqual(1e-4);
      } finally {
        await fromOnnx.dispose();
      }
    }
  }, 600_000);

  it('the un-optimised export (explicit pads, Max/Min/Mul PReLU, input Mul/Add) reads back into the same 50 kernels', () => {
    const raw = readTflite(readFileSync(modelPath));
    const g = readOnnx(exportOnnx(raw), 'raw.onnx');
    const report = optimizeGraph(g);
    expect(report.preluFused).toBe(33);
    expect(g.nodes.filter((n) => n.op !== 'reshape').length).toBe(50);
    const ref = readTflite(readFileSync(modelPath));
    optimizeGraph(ref);
    const crop = fx.crops.subarray(0, CROP);
    expect(maxAbsDiff(runReference(g, crop, 1), runReference(ref, crop, 1))).toBeLessThanOrEqual(1e-5);
  }, 600_000);
});

describe('ONNX ops of PyTorch face-model exports against onnxruntime', () => {
  it('depthwise/SAME/MaxPool/Pad/decomposed PReLU/GlobalAveragePool/MatMul head, fixed batch 1, opset 11: any batch matches', async () => {
    const rnd = mulberry32(7);
    const b = new OnnxBuilder(rnd);
    const x = 'input';
    let t = b.node('Sub', [x, b.float([], () => 127.5)]);
    t = b.node('Mul', [t, b.float([], () => 1 / 128)]);
    t = b.node('Conv', [t, b.float([8, 3, 3, 3], () => (rnd() - 0.5) * 0.5), b.float([8])], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' });
    t = b.node('BatchNormalization', [t, b.float([8], () => 0.5 + rnd()), b.float([8]), b.float([8], () => rnd() * 0.2), b.float([8], () => 0.5 + rnd())], { epsilon: { f: 1e-3 } });
    t = b.node('LeakyRelu', [t], { alpha: { f: 0.1 } });
    t = b.node('Conv', [t, b.float([8, 1, 3, 3], () => rnd() - 0.5), b.float([8])], { kernel_shape: [3, 3], pads: [1, 0, 1, 2], group: 8 });
    t = b.node('MaxPool', [t], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
    t = b.node('Conv', [t, b.float([16, 8, 1, 1], () => rnd() - 0.5)], { kernel_shape: [1, 1] });
    t = b.node('Clip', [t, b.float([], () => 0)]);
    t = b.node('Pad', [t, b.int64([0, 0, 1, 1, 0, 0, 1, 1])], { mode: 'constant' });
    t = b.node('Conv', [t, b.float([16, 16, 3, 3], () => (rnd() - 0.5) * 0.3), b.float([16])], { kernel_shape: [3, 3] });
    // max(x, 0) + slope * min(x, 0)
    const pos = b.node('Max', [t, b.float([], () => 0)]);
    const neg = b.node('Mul', [b.node('Min', [t, b.float([], () => 0)]), b.float([16, 1, 1], () => rnd() * 0.3)]);
    t = b.node('Add', [pos, neg]);
    t = b.node('GlobalAveragePool', [t]);
    t = b.node('Reshape', [t, b.int64([1, -1])]);
    t = b.node('MatMul', [t, b.float([16, 10], () => rnd() - 0.5)]);
    t = b.node('Add', [t, b.float([10])], {}, ['out']);
    const model = b.build(x, [3, 20, 20], t, [10], { opset: 11, fixedBatch: true });

    const g = readOnnx(model, 'small.onnx');
    const report = optimizeGraph(g);
    expect(report.preluFused).toBe(1);
    expect(g.nodes.map((n) => n.op)).toEqual(['conv2d', 'depthwiseConv2d', 'maxPool2d', 'conv2d', 'conv2d', 'depthwiseConv2d', 'reshape', 'fullyConnected']);
    expect(g.output.shape).toEqual([10]);

    const n = 3;
    const input = new Float32Array(n * 20 * 20 * 3).map(() => Math.floor(rnd() * 256));
    const expected = new Float32Array(n * 10);
    for (let s = 0; s < n; s++) {
      // The model's batch is fixed at 1: onnxruntime runs one sample at a time.
      expected.set(await runOrt(model, nhwcToNchw(input.subarray(s * 1200, (s + 1) * 1200), 1, 20, 20, 3), [1, 3, 20, 20]), s * 10);
    }
    expect(relDiff(runReference(g, input, n), expected)).toBeLessThanOrEqual(1e-5);
    for (const { name, backend } of backends) {
      const compiled = await backend.compile(g);
      try {
        expect(relDiff(await compiled.run(input, n), expected), name).toBeLessThanOrEqual(1e-4);
      } finally {
        compiled.dispose();
      }
    }
  }, 600_000);
});

describe('ONNX files that do not load', () => {
  const tiny = () => {
    const b = new OnnxBuilder(mulberry32(1));
    const t = b.node('Conv', ['x', b.float([4, 3, 1, 1])], { kernel_shape: [1, 1] });
    return { b, t };
  };

  it('a truncated file and a file that is not ONNX give BAD_MODEL', async () => {
    const { b, t } = tiny();
    const model = b.build('x', [3, 8, 8], b.node('Relu', [t]), [4, 8, 8]);
    expect(() => readOnnx(model.subarray(0, model.length - 7))).toThrow(expect.objectContaining({ code: 'BAD_MODEL' }));
    const truncated = join(dir, 'truncated.onnx');
    writeFileSync(truncated, model.subarray(0, 100));
    await expect(loadModelFile(truncated)).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_MODEL'));
    const png = join(dir, 'photo.onnx');
    writeFileSync(png, readFileSync('test/fixtures/Tom_Hanks_54745.png'));
    await expect(loadModelFile(png)).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_MODEL'));
    const text = join(dir, 'notes.bin');
    writeFileSync(text, 'hello, this is not a model');
    await expect(loadModelFile(text)).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_MODEL'));
  });

  it('an unknown op fails at load naming the op and the node', () => {
    const { b, t } = tiny();
    const model = b.build('x', [3, 8, 8], b.node('Softplus', [t], {}, ['soft']), [4, 8, 8]);
    let err: unknown;
    try {
      readOnnx(model);
    } catch (e) {
      err = e;
    }
    expect(isCosfaceError(err, 'UNSUPPORTED_OP')).toBe(true);
    expect((err as Error).message).toMatch(/Softplus.*Softplus_node_\d+/);
  });

  it('an opset outside 9-21 gives UNSUPPORTED_MODEL', () => {
    const { b, t } = tiny();
    const model = b.build('x', [3, 8, 8], b.node('Relu', [t]), [4, 8, 8], { opset: 7 });
    expect(() => readOnnx(model)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_MODEL', message: expect.stringMatching(/opset 7/) }));
  });
});
