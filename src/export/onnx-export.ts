// Graph IR -> ONNX ModelProto (opset 13), so that onnxruntime can run exactly our weights as the
// benchmark reference. The model keeps the engine's input contract (NHWC float [N, H, W, C] with a
// dynamic batch) and transposes to NCHW once inside; per-sample vectors are [N, F].
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { CosfaceError } from '../errors.js';
import { numel, type Activation, type Graph, type GraphNode, type Pads } from '../graph/ir.js';

const { onnx } = onnxProto;

export interface OnnxExportOptions {
  /** Written into ModelProto.producerName (default 'cosface'). */
  producerName?: string;
  /** Opset of the default domain (default 13, the lowest this exporter's op forms are valid for). */
  opset?: number;
  /** Symbolic name of the batch dimension of the input and output (default 'N'). */
  batchDim?: string;
}

/**
 * How a per-sample tensor of our graph is laid out in the ONNX model. Rank-3 image tensors
 * [H, W, C] live as NCHW [N, C, H, W]; every other rank keeps its row-major order as [N, ...shape].
 */
type Layout = 'nchw' | 'plain';

interface OnnxValue {
  name: string;
  layout: Layout;
  /** Our per-sample shape (NHWC for images). */
  shape: number[];
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const AttrType = onnx.AttributeProto.AttributeType;

function unsupported(node: GraphNode, what: string): never {
  throw new CosfaceError('UNSUPPORTED_OP', `ONNX export: ${what} (node ${node.name}, op ${node.op})`);
}

/** Collects nodes and initializers, and hands out value names that cannot collide. */
class OnnxGraphBuilder {
  readonly nodes: OnnxTypes.INodeProto[] = [];
  readonly initializers: OnnxTypes.ITensorProto[] = [];
  private readonly used = new Set<string>();

  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  reserve(name: string): void {
    this.used.add(name);
  }

  floatConst(base: string, data: Float32Array, dims: number[]): string {
    const name = this.unique(base);
    // Copy into a fresh buffer: data may be a view with an offset, and rawData is little-endian
    // float32 (the byte order of every platform Node runs on).
    const bytes = new Uint8Array(new Float32Array(data).buffer);
    this.initializers.push({ name, dataType: FLOAT, dims, rawData: bytes });
    return name;
  }

  int64Const(base: string, values: number[]): string {
    const name = this.unique(base);
    const bytes = new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer);
    this.initializers.push({ name, dataType: INT64, dims: [values.length], rawData: bytes });
    return name;
  }

  node(opType: string, inputs: string[], outputBase: string, attributes: OnnxTypes.IAttributeProto[] = [], outputName?: string): string {
    const output = outputName ?? this.unique(outputBase);
    this.nodes.push({ opType, name: this.unique(`${outputBase}#${opType}`), input: inputs, output: [output], attribute: attributes });
    return output;
  }
}

const ints = (name: string, values: number[]): OnnxTypes.IAttributeProto => ({ name, type: AttrType.INTS, ints: values });
const int = (name: string, value: number): OnnxTypes.IAttributeProto => ({ name, type: AttrType.INT, i: value });

/** Shape of a per-channel constant that broadcasts over the last axis of our layout. */
function channelDims(v: OnnxValue, c: number): number[] {
  return v.layout === 'nchw' ? [c, 1, 1] : [c];
}

function lastDim(shape: number[]): number {
  return shape[shape.length - 1]!;
}

/** ONNX shape (batch excluded) of a value in its layout. */
function onnxDims(v: { layout: Layout; shape: number[] }): number[] {
  if (v.layout === 'nchw') {
    const [h, w, c] = v.shape as [number, number, number];
    return [c, h, w];
  }
  return v.shape;
}

function layoutFor(shape: number[]): Layout {
  return shape.length === 3 ? 'nchw' : 'plain';
}

/** NCHW and NHWC hold the same memory order when one of the two groups is a single element. */
function isTrivialTranspose(shape: number[]): boolean {
  const [h, w, c] = shape as [number, number, number];
  return h * w === 1 || c === 1;
}

function emitActivation(b: OnnxGraphBuilder, x: OnnxValue, activation: Activation, alpha: Float32Array | undefined, base: string, node: GraphNode): string {
  if (activation === 'none') return x.name;
  if (activation === 'relu') return b.node('Relu', [x.name], `${base}/relu`);
  if (!alpha) unsupported(node, 'prelu without per-channel alpha');
  const c = lastDim(x.shape);
  if (alpha.length !== c) unsupported(node, `prelu alpha has ${alpha.length} values for ${c} channels`);
  const slope = b.floatConst(`${base}/prelu_slope`, alpha, channelDims(x, c));
  return b.node('PRelu', [x.name, slope], `${base}/prelu`);
}

function padsAttr(p: Pads): OnnxTypes.IAttributeProto {
  // ONNX order: [x1_begin, x2_begin, x1_end, x2_end] over the spatial axes (H, W).
  return ints('pads', [p.top, p.left, p.bottom, p.right]);
}

/** The 8 pads of a 4-D NCHW Pad node. */
function padNodePads(p: Pads): number[] {
  return [0, 0, p.top, p.left, 0, 0, p.bottom, p.right];
}

function requireImage(node: GraphNode, x: OnnxValue): void {
  if (x.layout !== 'nchw') unsupported(node, `expects an [H, W, C] input, got [${x.shape.join(', ')}]`);
}

/**
 * Exports a graph (raw import or after optimizeGraph/appendL2Normalize) as a serialised ONNX model.
 * Input: float [N, H, W, C] (our per-sample layout with a batch axis); output: [N, ...output shape].
 * Throws CosfaceError UNSUPPORTED_OP for a node it cannot express exactly, e.g. a convolution whose
 * folded border value differs between channels.
 */
export function exportOnnx(graph: Graph, opts: OnnxExportOptions = {}): Uint8Array {
  const opset = opts.opset ?? 13;
  const batchDim = opts.batchDim ?? 'N';
  const b = new OnnxGraphBuilder();
  const values = new Map<string, OnnxValue>();
  const get = (node: GraphNode, t: string): OnnxValue => {
    const v = values.get(t);
    if (!v) throw new CosfaceError('BAD_MODEL', `ONNX export: tensor ${t} is used by ${node.name} before it is produced`);
    return v;
  };
  const shapeOf = (node: GraphNode): number[] => {
    const s = graph.shapes.get(node.output);
    if (!s) throw new CosfaceError('BAD_MODEL', `ONNX export: no shape recorded for ${node.output} (node ${node.name})`);
    return s;
  };

  const inputName = graph.input.name;
  b.reserve(inputName);
  const inShape = graph.input.shape;
  if (inShape.length === 3) {
    const nchw = b.node('Transpose', [inputName], `${inputName}/nchw`, [ints('perm', [0, 3, 1, 2])]);
    values.set(inputName, { name: nchw, layout: 'nchw', shape: inShape });
  } else {
    values.set(inputName, { name: inputName, layout: 'plain', shape: inShape });
  }

  for (const node of graph.nodes) {
    const x = get(node, node.inputs[0]!);
    const outShape = shapeOf(node);
    const base = node.output;
    let out: string;
    switch (node.op) {
      case 'conv2d':
      case 'depthwiseConv2d': {
        requireImage(node, x);
        let src = x.name;
        let pads = node.pads;
        if (node.op === 'conv2d' && node.padValue && node.padValue.some((v) => v !== 0)) {
          const v0 = node.padValue[0]!;
          if (!node.padValue.every((v) => v === v0)) {
            unsupported(node, `per-channel border values [${Array.from(node.padValue).join(', ')}] (ONNX Pad takes one constant)`);
          }
          // The border value is not zero: pad explicitly with it, then convolve without padding.
          const padsName = b.int64Const(`${base}/pad_pads`, padNodePads(pads));
          const valueName = b.floatConst(`${base}/pad_value`, new Float32Array([v0]), []);
          src = b.node('Pad', [src, padsName, valueName], `${base}/padded`, [{ name: 'mode', type: AttrType.STRING, s: new TextEncoder().encode('constant') }]);
          pads = { top: 0, left: 0, bottom: 0, right: 0 };
        }
        let w: string;
        let group = 1;
        if (node.op === 'conv2d') {
          const { outC, kh, kw, inC, filter } = node;
          // OHWI -> OIHW
          const oihw = new Float32Array(filter.length);
          for (let o = 0; o < outC; o++)
            for (let y = 0; y < kh; y++)
              for (let xk = 0; xk < kw; xk++)
                for (let c = 0; c < inC; c++) oihw[((o * inC + c) * kh + y) * kw + xk] = filter[((o * kh + y) * kw + xk) * inC + c]!;
          w = b.floatConst(`${base}/weight`, oihw, [outC, inC, kh, kw]);
        } else {
          const { channels: C, kh, kw, filter } = node;
          // [kh, kw, C] -> [C, 1, kh, kw]
          const chw = new Float32Array(filter.length);
          for (let y = 0; y < kh; y++) for (let xk = 0; xk < kw; xk++) for (let c = 0; c < C; c++) chw[(c * kh + y) * kw + xk] = filter[(y * kw + xk) * C + c]!;
          w = b.floatConst(`${base}/weight`, chw, [C, 1, kh, kw]);
          group = C;
        }
        const bias = b.floatConst(`${base}/bias`, node.bias, [node.bias.length]);
        const conv = b.node('Conv', [src, w, bias], `${base}/conv`, [
          ints('kernel_shape', [node.kh, node.kw]),
          ints('strides', [node.strideH, node.strideW]),
          ints('dilations', [1, 1]),
          padsAttr(pads),
          int('group', group),
        ]);
        out = emitActivation(b, { name: conv, layout: 'nchw', shape: outShape }, node.activation, node.alpha, base, node);
        if (node.inputs[1] !== undefined) out = b.node('Add', [out, get(node, node.inputs[1]).name], `${base}/residual`);
        values.set(node.output, { name: out, layout: 'nchw', shape: outShape });
        break;
      }
      case 'fullyConnected': {
        let flat = x.name;
        let weights = node.weights;
        if (x.layout === 'nchw') {
          const [h, w, c] = x.shape as [number, number, number];
          if (h * w > 1) {
            // Our FC reads the sample NHWC-flattened ((y*W + x)*C + c); ONNX Flatten of NCHW gives
            // (c*H + y)*W + x. Permute the weight columns instead of transposing at run time.
            weights = new Float32Array(node.weights.length);
            for (let o = 0; o < node.outF; o++)
              for (let y = 0; y < h; y++)
                for (let xx = 0; xx < w; xx++)
                  for (let ch = 0; ch < c; ch++) weights[o * node.inF + (ch * h + y) * w + xx] = node.weights[o * node.inF + (y * w + xx) * c + ch]!;
          }
        }
        if (!(x.layout === 'plain' && x.shape.length === 1)) flat = b.node('Flatten', [x.name], `${base}/flatten`, [int('axis', 1)]);
        if (numel(x.shape) !== node.inF) unsupported(node, `input has ${numel(x.shape)} features, weights expect ${node.inF}`);
        const wName = b.floatConst(`${base}/weight`, weights, [node.outF, node.inF]);
        const bias = b.floatConst(`${base}/bias`, node.bias, [node.outF]);
        const gemm = b.node('Gemm', [flat, wName, bias], `${base}/gemm`, [int('transB', 1)]);
        const fcOut: OnnxValue = { name: gemm, layout: 'plain', shape: [node.outF] };
        out = emitActivation(b, fcOut, node.activation, node.alpha, base, node);
        if (node.inputs[1] !== undefined) out = b.node('Add', [out, get(node, node.inputs[1]).name], `${base}/residual`);
        // A fully connected layer declared with an image-shaped output keeps that shape.
        out = toLayout(b, { name: out, layout: 'plain', shape: [node.outF] }, outShape, base);
        values.set(node.output, { name: out, layout: layoutFor(outShape), shape: outShape });
        break;
      }
      case 'add': {
        const y = get(node, node.inputs[1]!);
        if (y.layout !== x.layout) unsupported(node, 'operands in different layouts');
        const sum = b.node('Add', [x.name, y.name], `${base}/add`);
        out = emitActivation(b, { name: sum, layout: x.layout, shape: outShape }, node.activation, node.alpha, base, node);
        values.set(node.output, { name: out, layout: x.layout, shape: outShape });
        break;
      }
      case 'activation':
        out = emitActivation(b, x, node.activation, node.alpha, base, node);
        if (out === x.name) out = b.node('Identity', [x.name], base);
        values.set(node.output, { name: out, layout: x.layout, shape: outShape });
        break;
      case 'affine': {
        const c = lastDim(x.shape);
        const scale = b.floatConst(`${base}/scale`, node.scale, channelDims(x, c));
        const shift = b.floatConst(`${base}/shift`, node.shift, channelDims(x, c));
        const mul = b.node('Mul', [x.name, scale], `${base}/mul`);
        out = b.node('Add', [mul, shift], `${base}/add`);
        values.set(node.output, { name: out, layout: x.layout, shape: outShape });
        break;
      }
      case 'maximum':
      case 'minimum': {
        const c = lastDim(x.shape);
        const k = b.floatConst(`${base}/value`, node.value, node.value.length === 1 ? [] : channelDims(x, c));
        out = b.node(node.op === 'maximum' ? 'Max' : 'Min', [x.name, k], base);
        values.set(node.output, { name: out, layout: x.layout, shape: outShape });
        break;
      }
      case 'mul': {
        let other: string;
        if (node.value) {
          const c = lastDim(x.shape);
          other = b.floatConst(`${base}/value`, node.value, node.value.length === 1 ? [] : channelDims(x, c));
        } else {
          const y = get(node, node.inputs[1]!);
          if (y.layout !== x.layout) unsupported(node, 'operands in different layouts');
          other = y.name;
        }
        out = b.node('Mul', [x.name, other], base);
        values.set(node.output, { name: out, layout: x.layout, shape: outShape });
        break;
      }
      case 'pad': {
        requireImage(node, x);
        const padsName = b.int64Const(`${base}/pads`, padNodePads(node.pads));
        out = b.node('Pad', [x.name, padsName], base, [{ name: 'mode', type: AttrType.STRING, s: new TextEncoder().encode('constant') }]);
        values.set(node.output, { name: out, layout: 'nchw', shape: outShape });
        break;
      }
      case 'reshape': {
        const nhwc = fromLayout(b, x, base);
        out = toLayout(b, { name: nhwc, layout: 'plain', shape: x.shape }, outShape, base);
        values.set(node.output, { name: out, layout: layoutFor(outShape), shape: outShape });
        break;
      }
      case 'l2normalize': {
        // Over all elements of a sample, as the engine does: flatten, normalise, restore the shape.
        if (x.layout === 'plain' && x.shape.length === 1) {
          out = b.node('LpNormalization', [x.name], base, [int('axis', 1), int('p', 2)]);
        } else {
          const flat = b.node('Flatten', [x.name], `${base}/flatten`, [int('axis', 1)]);
          const norm = b.node('LpNormalization', [flat], `${base}/norm`, [int('axis', 1), int('p', 2)]);
          const dims = b.int64Const(`${base}/shape`, [0, ...onnxDims(x)]);
          out = b.node('Reshape', [norm, dims], base);
        }
        values.set(node.output, { name: out, layout: x.layout, shape: outShape });
        break;
      }
      default:
        // Ops of other model families (detectors) get an ONNX form when a benchmark needs one.
        unsupported(node, 'op has no ONNX form in this exporter');
    }
  }

  // Hand the output back in our per-sample layout (NHWC for images), under a stable name.
  const outV = values.get(graph.output.name);
  if (!outV) throw new CosfaceError('BAD_MODEL', `ONNX export: graph output ${graph.output.name} is never produced`);
  const outputName = b.unique(graph.output.name === inputName ? `${graph.output.name}/output` : graph.output.name);
  if (outV.layout === 'nchw') b.node('Transpose', [outV.name], outputName, [ints('perm', [0, 2, 3, 1])], outputName);
  else b.node('Identity', [outV.name], outputName, [], outputName);

  const valueInfo = (name: string, shape: number[]): OnnxTypes.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: batchDim }, ...shape.map((d) => ({ dimValue: d }))] } } },
  });
  const model: OnnxTypes.IModelProto = {
    irVersion: 7,
    opsetImport: [{ domain: '', version: opset }],
    producerName: opts.producerName ?? 'cosface',
    producerVersion: '0.1.0',
    docString: `Exported from ${graph.source}. Input is NHWC float [N, H, W, C].`,
    graph: {
      name: 'cosface',
      node: b.nodes,
      initializer: b.initializers,
      input: [valueInfo(inputName, inShape)],
      output: [valueInfo(outputName, graph.output.shape)],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish();
}

/** Value in row-major per-sample order ([N, ...shape]); transposes NCHW back to NHWC if needed. */
function fromLayout(b: OnnxGraphBuilder, v: OnnxValue, base: string): string {
  if (v.layout === 'plain') return v.name;
  if (isTrivialTranspose(v.shape)) {
    const dims = b.int64Const(`${base}/nhwc_shape`, [0, ...v.shape]);
    return b.node('Reshape', [v.name, dims], `${base}/nhwc`);
  }
  return b.node('Transpose', [v.name], `${base}/nhwc`, [ints('perm', [0, 2, 3, 1])]);
}

/** Row-major data reshaped to `shape` and put in that shape's layout. */
function toLayout(b: OnnxGraphBuilder, v: OnnxValue, shape: number[], base: string): string {
  const layout = layoutFor(shape);
  const sameShape = v.shape.length === shape.length && v.shape.every((d, i) => d === shape[i]);
  if (layout === 'plain') {
    if (sameShape) return v.name;
    return b.node('Reshape', [v.name, b.int64Const(`${base}/shape`, [0, ...shape])], `${base}/reshape`);
  }
  if (isTrivialTranspose(shape)) {
    return b.node('Reshape', [v.name, b.int64Const(`${base}/shape`, [0, ...onnxDims({ layout, shape })])], `${base}/reshape`);
  }
  const nhwc = sameShape ? v.name : b.node('Reshape', [v.name, b.int64Const(`${base}/shape`, [0, ...shape])], `${base}/reshape`);
  return b.node('Transpose', [nhwc], `${base}/nchw`, [ints('perm', [0, 3, 1, 2])]);
}
