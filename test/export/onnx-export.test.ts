// The ONNX export runs in onnxruntime-node and computes what our graph computes: MobileFaceNet
// against the fixture embeddings and the scalar reference, and small random graphs that exercise
// stride 2, asymmetric padding, a border value, residuals, reshapes and flatten order.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { exportOnnx } from '../../src/export/onnx-export.js';
import { convOutSize, type Graph, type GraphNode, type Pads } from '../../src/graph/ir.js';
import { appendL2Normalize, optimizeGraph } from '../../src/graph/passes.js';
import { runReference } from '../../src/graph/reference.js';
import { readTflite } from '../../src/import/tflite/read-tflite.js';
import { isCosfaceError } from '../../src/errors.js';
import { mulberry32 } from '../helpers/fixtures.js';

const MODEL = 'models/mobilefacenet-arcface.tflite';
const FIXTURES = 'test/fixtures/aligned';
const fixture = JSON.parse(readFileSync(join(FIXTURES, 'embeddings.json'), 'utf8')) as { files: string[]; embeddings: Record<string, number[]> };

async function loadCrops(files: string[]): Promise<Float32Array> {
  const size = 112 * 112 * 3;
  const input = new Float32Array(files.length * size);
  for (const [i, f] of files.entries()) {
    const { data, info } = await sharp(join(FIXTURES, f)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([112, 112, 3]);
    input.set(Float32Array.from(data), i * size);
  }
  return input;
}

async function runOnnx(model: Uint8Array, input: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = await ort.InferenceSession.create(model);
  try {
    const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, dims) });
    const t = out[session.outputNames[0]!]!;
    return { data: t.data as Float32Array, dims: t.dims };
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function normalised(v: number[]): number[] {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

describe('ONNX export of MobileFaceNet', () => {
  it('optimised + L2: all 16 fixture crops in one batch match the fixture embeddings to 1e-4', async () => {
    const graph = readTflite(readFileSync(MODEL), MODEL);
    optimizeGraph(graph);
    appendL2Normalize(graph);
    // The first convolution carries the folded input normalisation as a uniform border value.
    const first = graph.nodes[0]!;
    expect(first.op === 'conv2d' && first.padValue && first.padValue.some((v) => v !== 0)).toBe(true);

    const model = exportOnnx(graph);
    const files = fixture.files;
    const input = await loadCrops(files);
    const { data, dims } = await runOnnx(model, input, [files.length, 112, 112, 3]);
    expect(dims).toEqual([files.length, 128]);
    const expected = files.flatMap((f) => normalised(fixture.embeddings[f]!));
    expect(maxAbsDiff(data, expected)).toBeLessThan(1e-4);

    // And against the scalar reference on the same graph, for two of the crops (it is slow).
    const ref = runReference(graph, input.subarray(0, 2 * 112 * 112 * 3), 2);
    expect(maxAbsDiff(data.subarray(0, 256), ref)).toBeLessThan(1e-4);
  });

  it('un-optimised import (explicit pads, decomposed PReLU, input affine) matches the raw fixture embeddings', async () => {
    const graph = readTflite(readFileSync(MODEL), MODEL);
    expect(graph.nodes.some((n) => n.op === 'maximum')).toBe(true);
    const model = exportOnnx(graph);
    const files = fixture.files.slice(0, 4);
    const { data, dims } = await runOnnx(model, await loadCrops(files), [files.length, 112, 112, 3]);
    expect(dims).toEqual([files.length, 128]);
    const expected = files.flatMap((f) => fixture.embeddings[f]!);
    expect(maxAbsDiff(data, expected)).toBeLessThan(1e-4);
  });
});

// ---- Small random graphs -------------------------------------------------------------------

const rng = (seed: number): (() => number) => {
  const r = mulberry32(seed);
  return () => r() - 0.5;
};

/** Builds a graph node by node, tracking per-sample shapes as the importers do. */
class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly shapes = new Map<string, number[]>();
  private readonly rand: () => number;
  constructor(readonly inputName: string, readonly inputShape: number[], seed: number) {
    this.shapes.set(inputName, inputShape);
    this.rand = rng(seed);
  }
  values(n: number, scale = 1): Float32Array {
    return Float32Array.from({ length: n }, () => this.rand() * scale);
  }
  add(node: GraphNode, shape: number[]): string {
    this.nodes.push(node);
    this.shapes.set(node.output, shape);
    return node.output;
  }
  conv(x: string, name: string, outC: number, k: [number, number], stride: [number, number], pads: Pads, extra: Partial<GraphNode> = {}): string {
    const [h, w, inC] = this.shapes.get(x)! as [number, number, number];
    const oh = convOutSize(h, k[0], stride[0], pads.top, pads.bottom);
    const ow = convOutSize(w, k[1], stride[1], pads.left, pads.right);
    const node = {
      op: 'conv2d', name, inputs: [x], output: name, activation: 'none',
      filter: this.values(outC * k[0] * k[1] * inC, 0.5), bias: this.values(outC, 0.2),
      kh: k[0], kw: k[1], inC, outC, strideH: stride[0], strideW: stride[1], pads, ...extra,
    } as GraphNode;
    return this.add(node, [oh, ow, outC]);
  }
  depthwise(x: string, name: string, k: [number, number], stride: [number, number], pads: Pads, extra: Partial<GraphNode> = {}): string {
    const [h, w, c] = this.shapes.get(x)! as [number, number, number];
    const oh = convOutSize(h, k[0], stride[0], pads.top, pads.bottom);
    const ow = convOutSize(w, k[1], stride[1], pads.left, pads.right);
    const node = {
      op: 'depthwiseConv2d', name, inputs: [x], output: name, activation: 'none',
      filter: this.values(k[0] * k[1] * c, 0.5), bias: this.values(c, 0.2),
      kh: k[0], kw: k[1], channels: c, strideH: stride[0], strideW: stride[1], pads, ...extra,
    } as GraphNode;
    return this.add(node, [oh, ow, c]);
  }
  graph(output: string): Graph {
    return { source: 'test:random', input: { name: this.inputName, shape: this.inputShape }, output: { name: output, shape: this.shapes.get(output)! }, nodes: this.nodes, shapes: this.shapes };
  }
}

async function expectOnnxMatchesReference(graph: Graph, n: number, seed: number, tol: number): Promise<void> {
  const rand = rng(seed);
  const size = graph.input.shape.reduce((a, b) => a * b, 1);
  const input = Float32Array.from({ length: n * size }, () => rand() * 4);
  const { data, dims } = await runOnnx(exportOnnx(graph), input, [n, ...graph.input.shape]);
  expect(dims).toEqual([n, ...graph.output.shape]);
  const ref = runReference(graph, input, n);
  expect(maxAbsDiff(data, ref)).toBeLessThan(tol);
}

describe('ONNX export of small random graphs', () => {
  it('stride 2, asymmetric pads, border value, residuals, PReLU/ReLU, affine, pad, and an FC over 3x2 spatial positions', async () => {
    const b = new GraphBuilder('image', [11, 9, 3], 1);
    const c1 = b.conv('image', 'c1', 8, [3, 3], [2, 2], { top: 0, left: 1, bottom: 1, right: 2 }, {
      activation: 'prelu', alpha: b.values(8), padValue: new Float32Array([0.75, 0.75, 0.75]),
    } as Partial<GraphNode>);
    expect(b.shapes.get(c1)).toEqual([5, 5, 8]);
    const d1 = b.depthwise(c1, 'd1', [3, 3], [1, 1], { top: 1, left: 1, bottom: 1, right: 1 }, { activation: 'relu' } as Partial<GraphNode>);
    const c2 = b.conv(d1, 'c2', 8, [1, 1], [1, 1], { top: 0, left: 0, bottom: 0, right: 0 });
    // residual fused into the convolution: c3 = conv(c2) + d1
    const c3 = b.conv(c2, 'c3', 8, [1, 1], [1, 1], { top: 0, left: 0, bottom: 0, right: 0 });
    (b.nodes[b.nodes.length - 1]!.inputs as string[]).push(d1);
    const sum = b.add({ op: 'add', name: 'sum', inputs: [c3, c1], output: 'sum', activation: 'prelu', alpha: b.values(8) }, [5, 5, 8]);
    const aff = b.add({ op: 'affine', name: 'aff', inputs: [sum], output: 'aff', scale: b.values(8), shift: b.values(8) }, [5, 5, 8]);
    const pad = b.add({ op: 'pad', name: 'pad', inputs: [aff], output: 'pad', pads: { top: 1, left: 0, bottom: 0, right: 2 } }, [6, 7, 8]);
    const d2 = b.depthwise(pad, 'd2', [3, 2], [2, 2], { top: 0, left: 0, bottom: 1, right: 0 }, { activation: 'prelu', alpha: b.values(8) } as Partial<GraphNode>);
    expect(b.shapes.get(d2)).toEqual([3, 3, 8]);
    const c4 = b.conv(d2, 'c4', 5, [1, 2], [1, 1], { top: 0, left: 0, bottom: 0, right: 0 }, { activation: 'relu' } as Partial<GraphNode>);
    expect(b.shapes.get(c4)).toEqual([3, 2, 5]);
    // FC straight on an image tensor: it reads the sample NHWC-flattened.
    const fc = b.add({ op: 'fullyConnected', name: 'fc', inputs: [c4], output: 'fc', activation: 'prelu', alpha: b.values(7), weights: b.values(7 * 30), bias: b.values(7), inF: 30, outF: 7 }, [7]);
    const act = b.add({ op: 'activation', name: 'act', inputs: [fc], output: 'act', activation: 'relu' }, [7]);
    const l2 = b.add({ op: 'l2normalize', name: 'l2', inputs: [act], output: 'l2' }, [7]);
    await expectOnnxMatchesReference(b.graph(l2), 3, 11, 1e-5);
  });

  it('reshapes between image and vector layouts, and an image-shaped output comes back NHWC', async () => {
    const b = new GraphBuilder('x', [6, 5, 4], 2);
    const c1 = b.conv('x', 'c1', 6, [3, 3], [2, 1], { top: 1, left: 0, bottom: 0, right: 2 }, { activation: 'relu' } as Partial<GraphNode>);
    const [h, w, c] = b.shapes.get(c1)! as [number, number, number];
    const flat = b.add({ op: 'reshape', name: 'flat', inputs: [c1], output: 'flat', shape: [h * w * c] }, [h * w * c]);
    const fc = b.add({ op: 'fullyConnected', name: 'fc', inputs: [flat], output: 'fc', activation: 'none', weights: b.values(24 * h * w * c, 0.3), bias: b.values(24), inF: h * w * c, outF: 24 }, [24]);
    const img = b.add({ op: 'reshape', name: 'img', inputs: [fc], output: 'img', shape: [2, 3, 4] }, [2, 3, 4]);
    const d = b.depthwise(img, 'd', [2, 2], [1, 1], { top: 1, left: 1, bottom: 0, right: 0 }, { activation: 'prelu', alpha: b.values(4) } as Partial<GraphNode>);
    const l2 = b.add({ op: 'l2normalize', name: 'l2', inputs: [d], output: 'l2' }, b.shapes.get(d)!);
    await expectOnnxMatchesReference(b.graph(l2), 4, 12, 1e-5);
    await expectOnnxMatchesReference(b.graph(d), 2, 13, 1e-4);
  });

  it('a border value that differs between channels is refused with UNSUPPORTED_OP', () => {
    const b = new GraphBuilder('image', [5, 5, 3], 3);
    const c1 = b.conv('image', 'c1', 4, [3, 3], [1, 1], { top: 1, left: 1, bottom: 1, right: 1 }, {
      padValue: new Float32Array([1, 2, 3]),
    } as Partial<GraphNode>);
    let err: unknown;
    try {
      exportOnnx(b.graph(c1));
    } catch (e) {
      err = e;
    }
    expect(isCosfaceError(err, 'UNSUPPORTED_OP')).toBe(true);
    expect((err as Error).message).toContain('c1');
  });
});
