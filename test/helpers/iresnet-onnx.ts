// Builds InsightFace's IResNet (iresnet.py: the CosFace/ArcFace backbones users bring) as an ONNX
// model with random weights, the way torch.onnx.export writes it: NCHW input [N, 3, 112, 112],
// stem Conv-BN-PReLU, IBasicBlocks BN-Conv-BN-PReLU-Conv-BN (+ Conv1x1-BN shortcut where the
// block downsamples), then BN2d, Dropout, Flatten, Gemm and the BatchNorm1d "features" head
// (512-d). Weights are He-initialised and the BN statistics chosen so activations stay O(1)
// through 24 blocks (the residual BN gammas are small, as after training).
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { mulberry32 } from './fixtures.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const A = onnx.AttributeProto.AttributeType;

export interface IResNetOptions {
  /** Blocks per stage: [2,2,2,2] is IResNet-18, [3,4,14,3] IResNet-50. */
  layers: [number, number, number, number];
  seed?: number;
  opset?: number;
  /** Flatten (default) or the Shape/Gather/Unsqueeze/Concat/Reshape of x.view(x.size(0), -1). */
  head?: 'flatten' | 'view';
  /** Prepend (x - 127.5) / 127.5 to the graph (Sub and Div by constants). */
  normalise?: boolean;
  /** Fixed batch of 1 in the input and output (old PyTorch exports). */
  fixedBatch?: boolean;
  /** Stage widths (default 64, 128, 256, 512) and feature size (default 512): smaller for quick tests. */
  widths?: [number, number, number, number];
  features?: number;
  inputSize?: number;
}

export interface BuiltModel {
  bytes: Uint8Array;
  /** Multiply-adds per face of the convolutions and the fc. */
  macs: number;
}

export function buildIResNet(opts: IResNetOptions): BuiltModel {
  const rnd = mulberry32(opts.seed ?? 1);
  const normal = () => {
    const u = Math.max(rnd(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
  };
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * rnd();
  const nodes: OnnxTypes.INodeProto[] = [];
  const inits: OnnxTypes.ITensorProto[] = [];
  let id = 0;
  let macs = 0;
  const name = (base: string) => `${base}_${id++}`;
  const floatInit = (base: string, dims: number[], f: (i: number) => number): string => {
    const n = name(base);
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = f(i);
    inits.push({ name: n, dataType: FLOAT, dims, rawData: new Uint8Array(data.buffer) });
    return n;
  };
  const intInit = (base: string, values: number[], dims = [values.length]): string => {
    const n = name(base);
    inits.push({ name: n, dataType: INT64, dims, int64Data: values });
    return n;
  };
  const node = (op: string, inputs: string[], attrs: OnnxTypes.IAttributeProto[] = [], outputs?: string[]): string => {
    const out = outputs ?? [name(op.toLowerCase())];
    nodes.push({ opType: op, name: name(`${op}_node`), input: inputs, output: out, attribute: attrs });
    return out[0]!;
  };
  const ints = (n: string, v: number[]): OnnxTypes.IAttributeProto => ({ name: n, type: A.INTS, ints: v });
  const int = (n: string, v: number): OnnxTypes.IAttributeProto => ({ name: n, type: A.INT, i: v });
  const float = (n: string, v: number): OnnxTypes.IAttributeProto => ({ name: n, type: A.FLOAT, f: v });

  let hw = opts.inputSize ?? 112;
  const conv = (x: string, inC: number, outC: number, k: number, stride: number): string => {
    // He init, uniform with the normal's variance (one random number per weight: 44M for R50).
    const a = Math.sqrt(3 * 2 / (inC * k * k));
    const w = floatInit('conv.weight', [outC, inC, k, k], () => uniform(-a, a));
    const pad = (k - 1) / 2;
    hw = Math.floor((hw + 2 * pad - k) / stride) + 1;
    macs += hw * hw * outC * inC * k * k;
    return node('Conv', [x, w], [ints('kernel_shape', [k, k]), ints('strides', [stride, stride]), ints('pads', [pad, pad, pad, pad]), ints('dilations', [1, 1]), int('group', 1)]);
  };
  const bn = (x: string, c: number, gamma: [number, number] = [0.8, 1.2]): string => {
    const scale = floatInit('bn.weight', [c], () => uniform(...gamma));
    const bias = floatInit('bn.bias', [c], () => normal() * 0.1);
    const mean = floatInit('bn.running_mean', [c], () => normal() * 0.1);
    const variance = floatInit('bn.running_var', [c], () => uniform(0.8, 1.5));
    return node('BatchNormalization', [x, scale, bias, mean, variance], [float('epsilon', 1e-5)]);
  };
  const prelu = (x: string, c: number): string => node('PRelu', [x, floatInit('prelu.weight', [c, 1, 1], () => uniform(0.1, 0.3))]);

  const input = 'input.1';
  let x = input;
  if (opts.normalise) {
    x = node('Sub', [x, floatInit('mean', [], () => 127.5)]);
    x = node('Div', [x, floatInit('std', [], () => 127.5)]);
  }
  const widths = opts.widths ?? [64, 128, 256, 512];
  x = prelu(bn(conv(x, 3, widths[0], 3, 1), widths[0]), widths[0]);
  let inplanes = widths[0];
  for (let stage = 0; stage < 4; stage++) {
    const planes = widths[stage]!;
    for (let b = 0; b < opts.layers[stage]!; b++) {
      const stride = b === 0 ? 2 : 1;
      const hwIn = hw;
      let out = bn(x, inplanes);
      out = conv(out, inplanes, planes, 3, 1);
      out = prelu(bn(out, planes), planes);
      out = bn(conv(out, planes, planes, 3, stride), planes, [0.2, 0.4]);
      let identity = x;
      if (stride !== 1 || inplanes !== planes) {
        const hwOut = hw;
        hw = hwIn;
        identity = bn(conv(x, inplanes, planes, 1, stride), planes);
        hw = hwOut;
      }
      x = node('Add', [out, identity]);
      inplanes = planes;
    }
  }
  const C = inplanes;
  x = bn(x, C);
  if ((opts.head ?? 'flatten') === 'flatten') x = node('Flatten', [x], [int('axis', 1)]);
  else {
    // torch: x.view(x.size(0), -1) as exported at opset 9-12
    const shape = node('Shape', [x]);
    const n = node('Gather', [shape, intInit('zero', [0], [])], [int('axis', 0)]);
    const opset = opts.opset ?? 13;
    const un = opset >= 13 ? node('Unsqueeze', [n, intInit('axes', [0])]) : node('Unsqueeze', [n], [ints('axes', [0])]);
    const minus1 = intInit('minus1', [-1]);
    const target = node('Concat', [un, minus1], [int('axis', 0)]);
    x = node('Reshape', [x, target]);
  }
  x = node('Dropout', [x]);
  const F = opts.features ?? 512;
  const inF = C * hw * hw;
  const fa = Math.sqrt(3 / inF);
  const fcW = floatInit('fc.weight', [F, inF], () => uniform(-fa, fa));
  const fcB = floatInit('fc.bias', [F], () => normal() * 0.01);
  macs += F * inF;
  x = node('Gemm', [x, fcW, fcB], [float('alpha', 1), float('beta', 1), int('transB', 1)]);
  const out = 'features';
  const scale = floatInit('features.weight', [F], () => uniform(0.8, 1.2));
  const bias = floatInit('features.bias', [F], () => normal() * 0.1);
  const mean = floatInit('features.running_mean', [F], () => normal() * 0.1);
  const variance = floatInit('features.running_var', [F], () => uniform(0.8, 1.5));
  node('BatchNormalization', [x, scale, bias, mean, variance], [float('epsilon', 1e-5)], [out]);

  const batch = opts.fixedBatch ? { dimValue: 1 } : { dimParam: 'N' };
  const size = opts.inputSize ?? 112;
  const model: OnnxTypes.IModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: '', version: opts.opset ?? 13 }],
    producerName: 'pytorch',
    graph: {
      name: 'iresnet',
      node: nodes,
      initializer: inits,
      input: [{ name: input, type: { tensorType: { elemType: FLOAT, shape: { dim: [batch, { dimValue: 3 }, { dimValue: size }, { dimValue: size }] } } } }],
      output: [{ name: out, type: { tensorType: { elemType: FLOAT, shape: { dim: [batch, { dimValue: F }] } } } }],
    },
  };
  return { bytes: onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish(), macs };
}

/** n NHWC samples -> NCHW (what an ONNX model of InsightFace takes). */
export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let s = 0; s < n; s++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let ch = 0; ch < c; ch++) out[((s * c + ch) * h + y) * w + xx] = x[((s * h + y) * w + xx) * c + ch]!;
  return out;
}
