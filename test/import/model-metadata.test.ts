// Model metadata: a user's ONNX model (a small IResNet without normalisation in its graph, trained
// "on BGR in [-1, 1]") embeds the same as onnxruntime fed what the model expects, whether the
// values come from a sidecar <model>.json or from flags (flags win); `cosface info --model` prints
// the values in use with their origin and the op counts; bad metadata fails clearly.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWasmBackend } from '../../src/backend/wasm/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { Embedder } from '../../src/embedder.js';
import { isCosfaceError } from '../../src/errors.js';
import { parseTriple, resolveModelMetadata, type MetadataOverrides } from '../../src/import/model-metadata.js';
import { loadModelFile } from '../../src/engine.js';
import { maxAbsDiff, mulberry32, normalizeRows, repoRoot } from '../helpers/fixtures.js';
import { buildIResNet, nhwcToNchw } from '../helpers/iresnet-onnx.js';

const run = promisify(execFile);
const CROP = 112 * 112 * 3;
const N = 4;
const DIM = 32;
let dir: string;
let model: string;
let backend: Backend;
let crops: Float32Array;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'cosface-meta-'));
  model = path.join(dir, 'bgr-net.onnx');
  writeFileSync(model, buildIResNet({ layers: [1, 1, 1, 1], widths: [8, 8, 16, 16], features: DIM, seed: 9 }).bytes);
  // Colourful pixels: the aligned fixtures are grey LFW photos, where channel order cannot matter.
  const rnd = mulberry32(4);
  crops = Float32Array.from({ length: N * CROP }, () => Math.floor(rnd() * 256));
  backend = await createWasmBackend({ workers: 2 });
});
afterAll(async () => {
  await backend?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** onnxruntime on what the model expects: channels reordered, (x - mean) / std, NCHW; then L2. */
async function expected(bgr: boolean, mean: number, std: number): Promise<Float32Array> {
  const x = crops.slice();
  for (let p = 0; p < x.length; p += 3) {
    const px = [x[p]!, x[p + 1]!, x[p + 2]!];
    const ordered = bgr ? [px[2]!, px[1]!, px[0]!] : px;
    for (let c = 0; c < 3; c++) x[p + c] = (ordered[c]! - mean) / std;
  }
  const session = await ort.InferenceSession.create(model);
  const r = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', nhwcToNchw(x, N, 112, 112, 3), [N, 3, 112, 112]) });
  await session.release();
  return normalizeRows(new Float32Array(r[session.outputNames[0]!]!.data as Float32Array), DIM);
}

async function embedWith(metadata?: MetadataOverrides): Promise<Float32Array> {
  const e = await Embedder.create({ backendInstance: backend, modelPath: model, metadata });
  try {
    return await e.embed(crops, N);
  } finally {
    await e.dispose();
  }
}

describe('model metadata', () => {
  it('a sidecar <model>.json sets normalisation and channel order; flags win over it', async () => {
    writeFileSync(`${model}.json`, JSON.stringify({ inputMean: 127.5, inputStd: [127.5, 127.5, 127.5], channels: 'bgr' }));
    try {
      const bgr = await expected(true, 127.5, 127.5);
      expect(maxAbsDiff(await embedWith(), bgr)).toBeLessThanOrEqual(1e-5);
      // The flag overrides the sidecar's channel order only.
      const rgb = await expected(false, 127.5, 127.5);
      expect(maxAbsDiff(bgr, rgb)).toBeGreaterThan(1e-3); // the channel order matters to this model
      expect(maxAbsDiff(await embedWith({ channels: 'rgb' }), rgb)).toBeLessThanOrEqual(1e-5);
    } finally {
      rmSync(`${model}.json`);
    }
    // No sidecar: the defaults feed raw pixels.
    expect(maxAbsDiff(await embedWith(), await expected(false, 0, 1))).toBeLessThanOrEqual(1e-5);
  });

  it('`cosface info --model` prints the metadata in use, where it came from, and the op counts', async () => {
    writeFileSync(path.join(dir, 'bgr-net.json'), JSON.stringify({ inputStd: 128 }));
    try {
      const r = await run(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'src/cli.ts'), 'info', '--model', model, '--input-mean', '127.5,127,126', '--json'], { cwd: repoRoot });
      const info = JSON.parse(r.stdout);
      expect(info.metadata.inputMean).toEqual([127.5, 127, 126]);
      expect(info.metadata.origin.inputMean).toBe('flag');
      expect(info.metadata.inputStd).toEqual([128, 128, 128]);
      expect(info.metadata.origin.inputStd).toBe(`sidecar ${path.join(dir, 'bgr-net.json')}`);
      expect(info.metadata).toMatchObject({ channels: 'rgb', inputShape: [112, 112, 3], outputDim: DIM, sourceLayout: 'nchw' });
      // The stem conv and three per block (two + the downsampling shortcut); every BatchNormalization folded away.
      expect(info.importedOps.affine).toBeGreaterThan(0);
      expect(info.kernels.affine).toBeUndefined();
      expect(info.kernels).toMatchObject({ conv2d: 1 + 4 * 3, fullyConnected: 1, l2normalize: 1 });
    } finally {
      rmSync(path.join(dir, 'bgr-net.json'));
    }
  });

  it('bad metadata fails with a code and says what is wrong', async () => {
    expect(() => parseTriple('1,2', '--input-mean')).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringMatching(/--input-mean takes one number or three/) }));
    const graph = await loadModelFile(model);
    writeFileSync(`${model}.json`, '{"channels": "grb"}');
    try {
      await expect(resolveModelMetadata(model, graph)).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_MODEL') && /channels/.test((e as Error).message));
      writeFileSync(`${model}.json`, '{not json');
      await expect(resolveModelMetadata(model, graph)).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_MODEL'));
    } finally {
      rmSync(`${model}.json`);
    }
    await expect(resolveModelMetadata(model, graph, { inputStd: [0] })).rejects.toSatisfy((e) => isCosfaceError(e, 'BAD_INPUT'));
  });
});
