// TF.js graph-model import checked against @tensorflow/tfjs-backend-wasm: single-op models built
// here on random data, then BlazeFace and FaceMesh on a real photo (boxes, keypoints, mesh points).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import * as tfc from '@tensorflow/tfjs-converter';
import '@tensorflow/tfjs-backend-wasm';
import { isCosfaceError } from '../../src/errors.js';
import { numel } from '../../src/graph/ir.js';
import { optimizeGraph } from '../../src/graph/passes.js';
import { runReference } from '../../src/graph/reference.js';
import { readTfjsGraphModel, type TfjsModelJson, type TfjsNodeDef, type TfjsWeightSpec } from '../../src/import/tfjs/read-tfjs.js';
import { iou, decodeDetections, detectorInput, planDetectorViews, DETECTOR_OUTPUTS, DETECTOR_ANCHORS, weightedNms } from '../../src/pipeline/detect.js';
import { decodeImage } from '../../src/pipeline/decode.js';
import { MESH_OUTPUTS, MESH_SIZE, meshCropTransform } from '../../src/pipeline/landmarks.js';
import { applySimilarity, warpToCrop } from '../../src/pipeline/align.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const ilist = (v: number[]) => ({ list: { i: v.map(String) } });

/** A one-op (plus constants) TF.js model: its JSON, weights and a tfjs GraphModel of it. */
function singleOpModel(inShape: number[], op: TfjsNodeDef, consts: { name: string; shape: number[]; data: Float32Array | Int32Array }[]) {
  const weights: TfjsWeightSpec[] = consts.map((c) => ({ name: c.name, shape: c.shape, dtype: c.data instanceof Int32Array ? 'int32' : 'float32' }));
  const bytes = new Uint8Array(consts.reduce((s, c) => s + c.data.byteLength, 0));
  let off = 0;
  for (const c of consts) {
    bytes.set(new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength), off);
    off += c.data.byteLength;
  }
  const nodes: TfjsNodeDef[] = [
    { name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [-1, ...inShape].map((size) => ({ size: String(size) })) } } } },
    ...consts.map((c) => ({ name: c.name, op: 'Const', attr: { dtype: { type: c.data instanceof Int32Array ? 'DT_INT32' : 'DT_FLOAT' } } })),
    op,
    { name: 'Identity', op: 'Identity', input: [op.name], attr: { T: { type: 'DT_FLOAT' } } },
  ];
  const json: TfjsModelJson = { format: 'graph-model', modelTopology: { node: nodes, versions: { producer: 440 }, library: {} }, weightsManifest: [{ paths: ['w.bin'], weights }] };
  return { json, bytes };
}

async function tfjsRun(json: TfjsModelJson, bytes: Uint8Array, outputs: string[], input: Float32Array, shape: number[]): Promise<Float32Array[]> {
  const model = await tfc.loadGraphModel({
    load: async () => ({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0]!.weights, weightData: bytes.slice().buffer }),
  } as unknown as Parameters<typeof tfc.loadGraphModel>[0]);
  const res = model.execute(tf.tensor(input, shape), outputs.map((o) => `${o}:0`)) as tf.Tensor | tf.Tensor[];
  const list = Array.isArray(res) ? res : [res];
  const out = await Promise.all(list.map(async (t) => Float32Array.from(await t.data())));
  list.forEach((t) => t.dispose());
  model.dispose();
  return out;
}

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 * 2 - 1;
  });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

describe('TF.js import, op by op against tfjs-wasm (random data, 2 samples)', () => {
  const H = 9, W = 7, C = 4;
  const cases: [string, () => ReturnType<typeof singleOpModel>][] = [
    ['_FusedConv2D SAME stride 2 + BiasAdd + Relu', () => singleOpModel([H, W, C], {
      name: 'conv', op: '_FusedConv2D', input: ['x', 'f', 'b'],
      attr: { strides: ilist([1, 2, 2, 1]), padding: { s: b64('SAME') }, fused_ops: { list: { s: [b64('BiasAdd'), b64('Relu')] } }, num_args: { i: '1' }, dilations: ilist([1, 1, 1, 1]), data_format: { s: b64('NHWC') } },
    }, [{ name: 'f', shape: [3, 3, C, 6], data: rand(3 * 3 * C * 6, 1) }, { name: 'b', shape: [6], data: rand(6, 2) }])],
    ['_FusedConv2D VALID + BiasAdd + Prelu', () => singleOpModel([H, W, C], {
      name: 'conv', op: '_FusedConv2D', input: ['x', 'f', 'b', 'a'],
      attr: { strides: ilist([1, 1, 1, 1]), padding: { s: b64('VALID') }, fused_ops: { list: { s: [b64('BiasAdd'), b64('Prelu')] } }, num_args: { i: '2' } },
    }, [{ name: 'f', shape: [2, 3, C, 5], data: rand(2 * 3 * C * 5, 3) }, { name: 'b', shape: [5], data: rand(5, 4) }, { name: 'a', shape: [1, 1, 5], data: rand(5, 5) }])],
    ['_FusedConv2D EXPLICIT padding', () => singleOpModel([H, W, C], {
      name: 'conv', op: '_FusedConv2D', input: ['x', 'f', 'b'],
      attr: { strides: ilist([1, 2, 1, 1]), padding: { s: b64('EXPLICIT') }, explicit_paddings: ilist([0, 0, 1, 2, 0, 1, 0, 0]), fused_ops: { list: { s: [b64('BiasAdd')] } }, num_args: { i: '1' } },
    }, [{ name: 'f', shape: [3, 3, C, 3], data: rand(3 * 3 * C * 3, 6) }, { name: 'b', shape: [3], data: rand(3, 7) }])],
    ['DepthwiseConv2dNative SAME stride 2', () => singleOpModel([H, W, C], {
      name: 'dw', op: 'DepthwiseConv2dNative', input: ['x', 'f'], attr: { strides: ilist([1, 2, 2, 1]), padding: { s: b64('SAME') }, dilations: ilist([1, 1, 1, 1]) },
    }, [{ name: 'f', shape: [5, 5, C, 1], data: rand(5 * 5 * C, 8) }])],
    ['MaxPool SAME on odd sizes', () => singleOpModel([H, W, C], {
      name: 'mp', op: 'MaxPool', input: ['x'], attr: { ksize: ilist([1, 2, 2, 1]), strides: ilist([1, 2, 2, 1]), padding: { s: b64('SAME') } },
    }, [])],
    ['MaxPool VALID 3x3 stride 2', () => singleOpModel([H, W, C], {
      name: 'mp', op: 'MaxPool', input: ['x'], attr: { ksize: ilist([1, 3, 3, 1]), strides: ilist([1, 2, 2, 1]), padding: { s: b64('VALID') } },
    }, [])],
    ['Pad spatial and channels', () => singleOpModel([H, W, C], { name: 'pad', op: 'Pad', input: ['x', 'p'] }, [{ name: 'p', shape: [4, 2], data: Int32Array.from([0, 0, 1, 2, 0, 3, 2, 5]) }])],
    ['Prelu', () => singleOpModel([H, W, C], { name: 'pr', op: 'Prelu', input: ['x', 'a'] }, [{ name: 'a', shape: [1, 1, C], data: rand(C, 9) }])],
    ['Relu', () => singleOpModel([H, W, C], { name: 'r', op: 'Relu', input: ['x'] }, [])],
    ['Sigmoid', () => singleOpModel([H, W, C], { name: 's', op: 'Sigmoid', input: ['x'] }, [])],
    ['AddV2 with a constant', () => singleOpModel([H, W, C], { name: 'add', op: 'AddV2', input: ['x', 'c'] }, [{ name: 'c', shape: [C], data: rand(C, 10) }])],
    ['Reshape', () => singleOpModel([H, W, C], { name: 'rs', op: 'Reshape', input: ['x', 's'] }, [{ name: 's', shape: [3], data: Int32Array.from([-1, H * W, C]) }])],
  ];
  for (const [label, make] of cases) {
    it(label, async () => {
      const { json, bytes } = make();
      const { graph } = readTfjsGraphModel(json, bytes, { source: label });
      optimizeGraph(graph);
      const n = 2;
      const x = rand(n * H * W * C, 42).map((v) => v * 3);
      const ours = runReference(graph, x, n);
      const [theirs] = await tfjsRun(json, bytes, ['Identity'], x, [n, H, W, C]);
      expect(ours.length).toBe(n * numel(graph.output.shape));
      expect(maxAbsDiff(ours, theirs!)).toBeLessThan(1e-5);
    });
  }

  it('fails at load time on an unknown op, naming it', () => {
    const { json, bytes } = singleOpModel([H, W, C], { name: 's', op: 'Softplus', input: ['x'] }, []);
    let err: unknown;
    try {
      readTfjsGraphModel(json, bytes, { source: 'x.json' });
    } catch (e) {
      err = e;
    }
    expect(isCosfaceError(err, 'UNSUPPORTED_OP')).toBe(true);
    expect((err as Error).message).toContain('Softplus');
  });

  it('rejects weights that do not match the manifest', () => {
    const { json, bytes } = singleOpModel([H, W, C], { name: 'pr', op: 'Prelu', input: ['x', 'a'] }, [{ name: 'a', shape: [1, 1, C], data: rand(C, 9) }]);
    expect(() => readTfjsGraphModel(json, bytes.subarray(0, 8))).toThrow(/weights/);
  });
});

describe('BlazeFace and FaceMesh against tfjs-wasm on a real photo (t1.jpg)', () => {
  const load = (m: string) => ({ json: JSON.parse(readFileSync(`models/${m}.json`, 'utf8')) as TfjsModelJson, bytes: new Uint8Array(readFileSync(`models/${m}.bin`)) });

  it('detections: boxes IoU > 0.99, keypoints within 0.5 px; mesh points within 0.5 px', async () => {
    const img = await decodeImage('test/fixtures/photos/t1.jpg');
    // The whole-photo view only (the reference is slow); it finds all six people at the table.
    const views = planDetectorViews(img.width, img.height, { tiling: 'off' });
    const input = await detectorInput(img, views);
    const bf = load('blazeface-back');
    const { graph: det } = readTfjsGraphModel(bf.json, bf.bytes, { outputs: DETECTOR_OUTPUTS });
    optimizeGraph(det);
    const ours = runReference(det, input, 1);
    const theirsParts = await tfjsRun(bf.json, bf.bytes, DETECTOR_OUTPUTS, input, [1, 256, 256, 3]);
    const theirs = new Float32Array(ours.length);
    let off = 0;
    for (const p of theirsParts) {
      theirs.set(p, off);
      off += p.length;
    }
    expect(off).toBe(DETECTOR_ANCHORS * 17);
    const a = weightedNms(decodeDetections(ours, views[0]!, 0.5), 0.3);
    const b = weightedNms(decodeDetections(theirs, views[0]!, 0.5), 0.3);
    expect(a.length).toBe(6);
    expect(b.length).toBe(a.length);
    for (const da of a) {
      const db = b.reduce((best, d) => (iou(d.box, da.box) > iou(best.box, da.box) ? d : best));
      expect(iou(da.box, db.box)).toBeGreaterThan(0.99);
      da.keypoints.forEach((p, k) => expect(Math.hypot(p[0] - db.keypoints[k]![0], p[1] - db.keypoints[k]![1])).toBeLessThan(0.5));
    }

    // FaceMesh on the six face crops, as one batch.
    const fm = load('facemesh');
    const { graph: mesh } = readTfjsGraphModel(fm.json, fm.bytes, { outputs: MESH_OUTPUTS });
    optimizeGraph(mesh);
    const per = MESH_SIZE * MESH_SIZE * 3;
    const crops = a.map((d) => meshCropTransform(d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2, d.box[2] * 1.5, 0));
    const mIn = new Float32Array(crops.length * per);
    crops.forEach((c, i) => warpToCrop(img, c, MESH_SIZE, MESH_SIZE, {}, mIn, i * per));
    for (let i = 0; i < mIn.length; i++) mIn[i] = mIn[i]! / 255;
    const mOurs = runReference(mesh, mIn, crops.length);
    const [mTheirs, flags] = await tfjsRun(fm.json, fm.bytes, MESH_OUTPUTS, mIn, [crops.length, MESH_SIZE, MESH_SIZE, 3]);
    let worst = 0;
    crops.forEach((c, i) => {
      expect(flags![i]!).toBeGreaterThan(0.5);
      expect(Math.abs(mOurs[i * 1405 + 1404]! - flags![i]!)).toBeLessThan(1e-4);
      for (let k = 0; k < 468; k++) {
        const p = applySimilarity(c, [mOurs[i * 1405 + 3 * k]!, mOurs[i * 1405 + 3 * k + 1]!]);
        const q = applySimilarity(c, [mTheirs![i * 1404 + 3 * k]!, mTheirs![i * 1404 + 3 * k + 1]!]);
        worst = Math.max(worst, Math.hypot(p[0] - q[0], p[1] - q[1]));
      }
    });
    expect(worst).toBeLessThan(0.5);
  });
});
