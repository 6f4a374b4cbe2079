// TFLite FlatBuffer -> engine Graph. Reads through the generated accessors in ./generated and maps
// each builtin op to a graph node; unknown ops fail here, at load time, with their name.
import * as flatbuffers from 'flatbuffers';
import { CosfaceError } from '../../errors.js';
import {
  ActivationFunctionType,
  BuiltinOptions,
  ConcatenationOptions,
  ReducerOptions,
  Conv2DOptions,
  DepthwiseConv2DOptions,
  FullyConnectedOptions,
  AddOptions,
  MulOptions,
  SubOptions,
  ReshapeOptions,
  Model,
  Padding,
  TensorType,
  type SubGraph,
  type Tensor,
} from './generated/tflite_generated.js';
import { convOutSize, noPads, numel, samePads, spatialMeanNodes, type Activation, type Graph, type GraphNode, type Pads } from '../../graph/ir.js';

/** TFLite builtin operator codes the importer knows by name (for messages) and by handling. */
const BUILTIN_NAMES: Record<number, string> = {
  0: 'ADD', 1: 'AVERAGE_POOL_2D', 2: 'CONCATENATION', 3: 'CONV_2D', 4: 'DEPTHWISE_CONV_2D', 6: 'DEQUANTIZE',
  9: 'FULLY_CONNECTED', 11: 'L2_NORMALIZATION', 14: 'LOGISTIC', 17: 'MAX_POOL_2D', 18: 'MUL', 19: 'RELU',
  21: 'RELU6', 22: 'RESHAPE', 23: 'RESIZE_BILINEAR', 25: 'SOFTMAX', 28: 'TANH', 32: 'CUSTOM', 34: 'PAD',
  39: 'TRANSPOSE', 40: 'MEAN', 41: 'SUB', 42: 'DIV', 45: 'STRIDED_SLICE', 54: 'PRELU', 55: 'MAXIMUM', 57: 'MINIMUM',
  59: 'NEG', 60: 'PADV2', 77: 'SHAPE', 83: 'PACK', 98: 'LEAKY_RELU', 101: 'ABS', 114: 'QUANTIZE',
};

export function builtinName(code: number): string {
  return BUILTIN_NAMES[code] ?? `BUILTIN_${code}`;
}

interface TensorView {
  name: string;
  shape: number[];
  type: TensorType;
  data: Float32Array | Int32Array | null;
  /** Scale and zero point of an int8/uint8 tensor (per tensor: the first of them). */
  quant?: { scale: number; zeroPoint: number };
  /** Computed only from shapes (SHAPE, STRIDED_SLICE, PACK): feeds RESHAPE's shape input, never data. */
  shapeOnly?: boolean;
}

/** IEEE half -> float. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24;
  if (e === 31) return f ? NaN : sign * Infinity;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

function bad(msg: string): never {
  throw new CosfaceError('BAD_MODEL', `TFLite model: ${msg}`);
}

/**
 * A ByteBuffer whose reads fail past the end of the file. FlatBuffers accessors trust offsets,
 * and plain typed-array reads past the end give undefined (read as 0), so a truncated file would
 * otherwise parse into an empty or wrong model instead of failing.
 */
class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  private check(offset: number, size: number): void {
    if (!(offset >= 0 && offset + size <= this.capacity())) throw new RangeError(`read of ${size} bytes at ${offset} is past the end (${this.capacity()} bytes)`);
  }
  override readInt8(o: number): number { this.check(o, 1); return super.readInt8(o); }
  override readUint8(o: number): number { this.check(o, 1); return super.readUint8(o); }
  override readInt16(o: number): number { this.check(o, 2); return super.readInt16(o); }
  override readUint16(o: number): number { this.check(o, 2); return super.readUint16(o); }
  override readInt32(o: number): number { this.check(o, 4); return super.readInt32(o); }
  override readUint32(o: number): number { this.check(o, 4); return super.readUint32(o); }
  override readInt64(o: number): bigint { this.check(o, 8); return super.readInt64(o); }
  override readUint64(o: number): bigint { this.check(o, 8); return super.readUint64(o); }
  override readFloat32(o: number): number { this.check(o, 4); return super.readFloat32(o); }
  override readFloat64(o: number): number { this.check(o, 8); return super.readFloat64(o); }
  override __vector_len(o: number): number {
    const len = super.__vector_len(o);
    const start = super.__vector(o);
    // The element size is not known here; at least one byte per element must fit.
    if (start + len > this.capacity()) throw new RangeError(`vector at ${start} of ${len} elements runs past the end`);
    return len;
  }
}

/** Parses a .tflite file into a Graph (no fusion: see graph/passes.ts). */
export function readTflite(input: Uint8Array, source = 'model.tflite'): Graph {
  if (input.byteLength < 8) bad(`file is ${input.byteLength} bytes, too short to be a TFLite model`);
  // An exact-size copy: typed-array views past its end throw instead of reading a pooled buffer.
  const bytes = input.slice();
  const bb = new CheckedByteBuffer(bytes);
  if (!Model.bufferHasIdentifier(bb)) bad(`missing the 'TFL3' identifier at byte 4: not a TFLite file`);
  try {
    return readModel(Model.getRootAsModel(bb), bytes, source);
  } catch (e) {
    if (e instanceof CosfaceError) throw e;
    // The FlatBuffers accessors throw RangeError/TypeError when offsets point outside the file.
    throw new CosfaceError('BAD_MODEL', `TFLite model ${source} is truncated or corrupt (${(e as Error).message})`, { cause: e });
  }
}

function readModel(model: Model, bytes: Uint8Array, source: string): Graph {
  if (model.subgraphsLength() < 1) bad('no subgraph');
  const sg = model.subgraphs(0)!;
  if (sg.operatorsLength() === 0 || sg.tensorsLength() === 0) bad('the subgraph has no operators or no tensors');
  const tensors: TensorView[] = [];
  for (let i = 0; i < sg.tensorsLength(); i++) tensors.push(readTensor(model, sg.tensors(i)!, bytes));

  if (sg.inputsLength() !== 1 || sg.outputsLength() !== 1) {
    bad(`expected one input and one output, found ${sg.inputsLength()} and ${sg.outputsLength()}`);
  }
  const inIdx = sg.inputs(0)!;
  const inT = tensors[inIdx];
  if (!inT || !tensors[sg.outputs(0)!]) bad('input or output index out of range');
  const perSample = (s: number[]) => (s.length > 1 ? s.slice(1) : s);

  const shapes = new Map<string, number[]>();
  shapes.set(inT.name, perSample(inT.shape));
  const nodes: GraphNode[] = [];
  if (inT.type !== TensorType.FLOAT32) {
    // A quantised model takes integers: real = scale * (q - zero point). The engine is fed the
    // real values' source (pixels 0..255), so map them once at the input.
    if (!inT.quant) throw new CosfaceError('UNSUPPORTED_MODEL', `TFLite input ${inT.name} is ${TensorType[inT.type]} without quantisation parameters`);
    const { scale, zeroPoint } = inT.quant;
    if (scale !== 1 || zeroPoint !== 0) {
      const C = inT.shape[inT.shape.length - 1] ?? 1;
      const real = `${inT.name}/real`;
      nodes.push({ op: 'affine', name: real, inputs: [inT.name], output: real, scale: new Float32Array(C).fill(scale), shift: new Float32Array(C).fill(-scale * zeroPoint) });
      shapes.set(real, perSample(inT.shape));
      tensors[inIdx] = { ...inT, name: real };
    }
  }
  for (let i = 0; i < sg.operatorsLength(); i++) {
    const read = readOperator(model, sg, i, tensors);
    for (const node of read === null ? [] : Array.isArray(read) ? read : [read]) {
      nodes.push(node);
      shapes.set(node.output, inferShape(node, shapes, tensors, sg, i));
    }
  }
  // Read after the operators: QUANTIZE/DEQUANTIZE make their output another name for their input.
  const outT = tensors[sg.outputs(0)!]!;
  return {
    source: `tflite:${source}`,
    input: { name: inT.name, shape: perSample(inT.shape) },
    output: { name: outT.name, shape: shapes.get(outT.name) ?? perSample(outT.shape) },
    nodes,
    shapes,
  };
}

function readTensor(model: Model, t: Tensor, bytes: Uint8Array): TensorView {
  const shape = Array.from(t.shapeArray() ?? []);
  const name = t.name() ?? `t${t.buffer()}`;
  let data: Float32Array | Int32Array | null = null;
  const bi = t.buffer();
  if (bi > 0) {
    if (bi >= model.buffersLength()) bad(`tensor ${name} refers to buffer ${bi} of ${model.buffersLength()}`);
    const buf = model.buffers(bi)!;
    let raw: Uint8Array | null = buf.dataArray();
    const off = Number(buf.offset());
    if ((!raw || raw.length === 0) && off > 1) {
      const size = Number(buf.size());
      if (off + size > bytes.byteLength) bad(`tensor ${name}: external buffer [${off}, ${off + size}) beyond the end of the file`);
      raw = bytes.subarray(off, off + size);
    }
    if (raw && raw.length > 0) {
      const copy = new Uint8Array(raw); // aligned copy (raw may be a Buffer view)
      const type = t.type();
      const q = t.quantization();
      const scales = q?.scaleArray();
      if (type === TensorType.FLOAT32) data = new Float32Array(copy.buffer, 0, copy.byteLength >> 2);
      else if (type === TensorType.FLOAT16) {
        const h = new Uint16Array(copy.buffer, 0, copy.byteLength >> 1);
        data = Float32Array.from(h, halfToFloat);
      } else if ((type === TensorType.INT8 || type === TensorType.UINT8 || type === TensorType.INT32) && scales && scales.length > 0) {
        // Quantised weights and biases: real = scale * (q - zero point), per tensor or per channel.
        const ints = type === TensorType.INT8 ? new Int8Array(copy.buffer) : type === TensorType.UINT8 ? copy : new Int32Array(copy.buffer, 0, copy.byteLength >> 2);
        data = dequantize(ints, shape, Array.from(scales), Array.from({ length: q!.zeroPointLength() }, (_, i) => Number(q!.zeroPoint(i) ?? 0n)), q!.quantizedDimension(), name);
      } else if (type === TensorType.INT32) data = new Int32Array(copy.buffer, 0, copy.byteLength >> 2);
      else if (type === TensorType.INT64) {
        const v = new BigInt64Array(copy.buffer, 0, copy.byteLength >> 3);
        data = Int32Array.from(v, (x) => Number(x));
      } else {
        throw new CosfaceError('UNSUPPORTED_MODEL', `TFLite tensor ${name} has type ${TensorType[type] ?? type}${type === TensorType.INT8 || type === TensorType.UINT8 ? ' without quantisation parameters' : ''}; cosface runs float32 and float16 weights, and int8/uint8 weights with their scales`);
      }
      const expected = numel(shape);
      if (data.length !== expected) bad(`tensor ${name}: ${data.length} values for shape [${shape}]`);
    }
  }
  const q = t.quantization();
  const quant = q && q.scaleLength() > 0 && (t.type() === TensorType.INT8 || t.type() === TensorType.UINT8) ? { scale: q.scale(0)!, zeroPoint: Number(q.zeroPoint(0) ?? 0n) } : undefined;
  return { name, shape, type: t.type(), data, ...(quant ? { quant } : {}) };
}

function dequantize(q: ArrayLike<number>, shape: number[], scales: number[], zeros: number[], axis: number, name: string): Float32Array {
  const out = new Float32Array(q.length);
  if (scales.length === 1) {
    const s = scales[0]!;
    const z = zeros[0] ?? 0;
    for (let i = 0; i < q.length; i++) out[i] = s * (q[i]! - z);
    return out;
  }
  if (shape[axis] !== scales.length) bad(`tensor ${name}: ${scales.length} scales for axis ${axis} of [${shape}]`);
  const inner = numel(shape.slice(axis + 1));
  const n = scales.length;
  for (let i = 0; i < q.length; i++) {
    const c = Math.floor(i / inner) % n;
    out[i] = scales[c]! * (q[i]! - (zeros[c] ?? zeros[0] ?? 0));
  }
  return out;
}

function activationOf(f: ActivationFunctionType, opName: string): Activation {
  if (f === ActivationFunctionType.NONE) return 'none';
  if (f === ActivationFunctionType.RELU) return 'relu';
  throw new CosfaceError('UNSUPPORTED_OP', `${opName}: fused activation ${ActivationFunctionType[f] ?? f} is not supported`);
}

function padsOf(padding: Padding, inShape: number[], kh: number, kw: number, sh: number, sw: number): Pads {
  return padding === Padding.SAME ? samePads(inShape[0]!, inShape[1]!, kh, kw, sh, sw) : { ...noPads };
}

/**
 * One operator -> one graph node, or null for ops that only rename or compute constants
 * (QUANTIZE/DEQUANTIZE, shape arithmetic): those update `tensors` instead.
 */
function readOperator(model: Model, sg: SubGraph, index: number, tensors: TensorView[]): GraphNode | GraphNode[] | null {
  const op = sg.operators(index)!;
  const codeIdx = op.opcodeIndex();
  if (codeIdx >= model.operatorCodesLength()) bad(`operator ${index} refers to opcode ${codeIdx} of ${model.operatorCodesLength()}`);
  const oc = model.operatorCodes(codeIdx)!;
  const code = Math.max(oc.deprecatedBuiltinCode(), oc.builtinCode());
  const opName = code === 32 ? `CUSTOM(${oc.customCode() ?? '?'})` : builtinName(code);
  const ins = Array.from(op.inputsArray() ?? []).map((i) => (i < 0 ? null : tensors[i] ?? bad(`operator ${index} input ${i} out of range`)));
  const outIdx = op.outputs(0);
  const out = outIdx === null ? bad(`operator ${index} has no output`) : tensors[outIdx] ?? bad(`operator ${index} output out of range`);
  const name = out.name;
  const x = ins[0] ?? bad(`${opName} ${name}: missing input`);
  if (code === 77 || code === 45 || code === 83) {
    // SHAPE, STRIDED_SLICE, PACK: shape arithmetic (x.shape[0], -1) that only a RESHAPE reads; the
    // RESHAPE takes its static output shape instead.
    tensors[outIdx!] = { ...out, data: null, shapeOnly: true };
    return null;
  }
  if (code === 114 || code === 6) {
    // QUANTIZE / DEQUANTIZE: the engine computes in float, so both are the identity on real values.
    // Of a constant (float16 or int8 weights), the output is the dequantised constant.
    tensors[outIdx!] = x.data ? { ...out, type: TensorType.FLOAT32, data: x.data } : { ...x, shape: out.shape };
    return null;
  }
  for (const i of ins) {
    if (i?.shapeOnly && i !== ins[1]) throw new CosfaceError('UNSUPPORTED_OP', `${opName} ${name}: reads ${i.name}, computed from shapes at run time`);
  }
  const constOf = (t: TensorView | null | undefined, what: string): Float32Array => {
    if (!t || !(t.data instanceof Float32Array)) {
      throw new CosfaceError('UNSUPPORTED_OP', `${opName} ${name}: ${what} must be a float32 constant`);
    }
    return t.data;
  };
  const optType = op.builtinOptionsType();

  switch (code) {
    case 3: {
      // CONV_2D: filter [outC, kh, kw, inC]
      const o = op.builtinOptions(new Conv2DOptions()) as Conv2DOptions | null;
      if (!o || optType !== BuiltinOptions.Conv2DOptions) bad(`${name}: CONV_2D without options`);
      if (o.dilationHFactor() !== 1 || o.dilationWFactor() !== 1) throw new CosfaceError('UNSUPPORTED_OP', `CONV_2D ${name}: dilation is not supported`);
      const w = ins[1];
      const filter = constOf(w, 'filter');
      const [outC, kh, kw, inC] = w!.shape as [number, number, number, number];
      const bias = ins[2] ? constOf(ins[2], 'bias') : new Float32Array(outC);
      const xs = x.shape.slice(1);
      return {
        op: 'conv2d', name, inputs: [x.name], output: name, filter, bias, kh, kw, inC, outC,
        strideH: o.strideH(), strideW: o.strideW(), pads: padsOf(o.padding(), xs, kh, kw, o.strideH(), o.strideW()),
        activation: activationOf(o.fusedActivationFunction(), `CONV_2D ${name}`),
      };
    }
    case 4: {
      // DEPTHWISE_CONV_2D: filter [1, kh, kw, C]
      const o = op.builtinOptions(new DepthwiseConv2DOptions()) as DepthwiseConv2DOptions | null;
      if (!o || optType !== BuiltinOptions.DepthwiseConv2DOptions) bad(`${name}: DEPTHWISE_CONV_2D without options`);
      if (o.dilationHFactor() !== 1 || o.dilationWFactor() !== 1) throw new CosfaceError('UNSUPPORTED_OP', `DEPTHWISE_CONV_2D ${name}: dilation is not supported`);
      const w = ins[1];
      const filter = constOf(w, 'filter');
      const [, kh, kw, channels] = w!.shape as [number, number, number, number];
      const inC = x.shape[3];
      if (inC !== channels) throw new CosfaceError('UNSUPPORTED_OP', `DEPTHWISE_CONV_2D ${name}: depth multiplier ${channels / (inC ?? 1)} (only 1 is supported)`);
      const bias = ins[2] ? constOf(ins[2], 'bias') : new Float32Array(channels);
      const xs = x.shape.slice(1);
      return {
        op: 'depthwiseConv2d', name, inputs: [x.name], output: name, filter, bias, kh, kw, channels,
        strideH: o.strideH(), strideW: o.strideW(), pads: padsOf(o.padding(), xs, kh, kw, o.strideH(), o.strideW()),
        activation: activationOf(o.fusedActivationFunction(), `DEPTHWISE_CONV_2D ${name}`),
      };
    }
    case 9: {
      // FULLY_CONNECTED: weights [outF, inF]
      const o = op.builtinOptions(new FullyConnectedOptions()) as FullyConnectedOptions | null;
      if (o && o.weightsFormat() !== 0) throw new CosfaceError('UNSUPPORTED_OP', `FULLY_CONNECTED ${name}: shuffled weights format ${o.weightsFormat()}`);
      const w = ins[1];
      const weights = constOf(w, 'weights');
      const [outF, inF] = w!.shape as [number, number];
      const bias = ins[2] ? constOf(ins[2], 'bias') : new Float32Array(outF);
      // Any input layout: [1, F], [1, 1, 1, F] or [1, H, W, C] all read the sample's values in
      // row-major order, which is the engine's too. A keep_num_dims output ([1, 1, 1, outF]) is
      // the same values reshaped.
      const fc: GraphNode = {
        op: 'fullyConnected', name, inputs: [x.name], output: name, weights, bias, inF, outF,
        activation: o ? activationOf(o.fusedActivationFunction(), `FULLY_CONNECTED ${name}`) : 'none',
      };
      const outShape = out.shape.slice(1);
      if (outShape.length <= 1) return fc;
      return [{ ...fc, name: `${name}/fc`, output: `${name}/fc` }, { op: 'reshape', name, inputs: [`${name}/fc`], output: name, shape: outShape }];
    }
    case 0: // ADD
    case 41: // SUB
    case 18: {
      // MUL
      let act: ActivationFunctionType = ActivationFunctionType.NONE;
      if (code === 0) act = (op.builtinOptions(new AddOptions()) as AddOptions | null)?.fusedActivationFunction() ?? 0;
      if (code === 41) act = (op.builtinOptions(new SubOptions()) as SubOptions | null)?.fusedActivationFunction() ?? 0;
      if (code === 18) act = (op.builtinOptions(new MulOptions()) as MulOptions | null)?.fusedActivationFunction() ?? 0;
      const activation = activationOf(act, `${opName} ${name}`);
      const y = ins[1] ?? bad(`${opName} ${name}: missing second input`);
      const xConst = x.data instanceof Float32Array;
      const yConst = y.data instanceof Float32Array;
      if (!xConst && !yConst) {
        if (code === 0) return { op: 'add', name, inputs: [x.name, y.name], output: name, activation };
        if (code === 18 && activation === 'none') return { op: 'mul', name, inputs: [x.name, y.name], output: name };
        if (code === 41 && activation === 'none') return { op: 'sub', name, inputs: [x.name, y.name], output: name };
        throw new CosfaceError('UNSUPPORTED_OP', `${opName} ${name}: of two variable tensors is not supported`);
      }
      if (activation !== 'none') throw new CosfaceError('UNSUPPORTED_OP', `${opName} ${name}: with a constant and a fused activation is not supported`);
      const variable = xConst ? y : x;
      const c = (xConst ? x : y).data as Float32Array;
      const channels = variable.shape[variable.shape.length - 1] ?? 1;
      const perChannel = broadcastChannel(c, channels, `${opName} ${name}`);
      if (code === 18) {
        return { op: 'mul', name, inputs: [variable.name], output: name, value: perChannel };
      }
      if (code === 41 && xConst) {
        // c - x = x * -1 + c
        return { op: 'affine', name, inputs: [variable.name], output: name, scale: new Float32Array(channels).fill(-1), shift: perChannel };
      }
      const shift = code === 41 ? perChannel.map((v) => -v) : perChannel;
      return { op: 'affine', name, inputs: [variable.name], output: name, scale: new Float32Array(channels).fill(1), shift };
    }
    case 55: // MAXIMUM
    case 57: {
      // MINIMUM
      const y = ins[1] ?? bad(`${opName} ${name}: missing second input`);
      const xConst = x.data instanceof Float32Array;
      const variable = xConst ? y : x;
      const c = (xConst ? x : y).data;
      if (!(c instanceof Float32Array)) throw new CosfaceError('UNSUPPORTED_OP', `${opName} ${name}: of two variable tensors is not supported`);
      const channels = variable.shape[variable.shape.length - 1] ?? 1;
      return { op: code === 55 ? 'maximum' : 'minimum', name, inputs: [variable.name], output: name, value: broadcastChannel(c, channels, `${opName} ${name}`) };
    }
    case 34: {
      // PAD: paddings [[0,0],[top,bottom],[left,right],[0,0]]
      const p = ins[1];
      if (!p || !(p.data instanceof Int32Array)) throw new CosfaceError('UNSUPPORTED_OP', `PAD ${name}: paddings must be a constant`);
      const d = p.data;
      if (d.length !== 8 || d[0] !== 0 || d[1] !== 0 || d[6] !== 0 || d[7] !== 0) {
        throw new CosfaceError('UNSUPPORTED_OP', `PAD ${name}: only spatial padding of NHWC tensors is supported`);
      }
      return { op: 'pad', name, inputs: [x.name], output: name, pads: { top: d[2]!, bottom: d[3]!, left: d[4]!, right: d[5]! } };
    }
    case 19: // RELU
      return { op: 'activation', name, inputs: [x.name], output: name, activation: 'relu' };
    case 54: {
      // PRELU
      const alpha = constOf(ins[1], 'alpha');
      const channels = x.shape[x.shape.length - 1] ?? 1;
      return { op: 'activation', name, inputs: [x.name], output: name, activation: 'prelu', alpha: broadcastChannel(alpha, channels, `PRELU ${name}`) };
    }
    case 22: {
      // RESHAPE
      const o = op.builtinOptions(new ReshapeOptions()) as ReshapeOptions | null;
      // The output tensor's static shape, else the options' new_shape, else (a shape computed at
      // run time, e.g. Flatten's (x.shape[0], -1), which some converters record as [1, 1]) a flatten.
      const total = numel(x.shape);
      const resolve = (t: number[]) => {
        const known = t.filter((d) => d > 0).reduce((p, d) => p * d, 1);
        return t.map((d) => (d > 0 ? d : total / known));
      };
      const candidates = [out.shape, Array.from(o?.newShapeArray() ?? []), ...(ins[1]?.shapeOnly ? [[1, -1]] : [])];
      const target = candidates.map(resolve).find((t) => t.length > 0 && numel(t) === total && t[0] === x.shape[0]);
      if (!target) throw new CosfaceError('UNSUPPORTED_OP', `RESHAPE ${name}: no shape of [${x.shape}]'s ${total} values among [${candidates.map((c) => `[${c}]`).join(', ')}]`);
      return { op: 'reshape', name, inputs: [x.name], output: name, shape: target.slice(1) };
    }
    case 11: // L2_NORMALIZATION
      return { op: 'l2normalize', name, inputs: [x.name], output: name };
    case 101: // ABS
      return { op: 'abs', name, inputs: [x.name], output: name };
    case 59: {
      // NEG
      const C = x.shape[x.shape.length - 1] ?? 1;
      return { op: 'affine', name, inputs: [x.name], output: name, scale: new Float32Array(C).fill(-1), shift: new Float32Array(C) };
    }
    case 60: {
      // PADV2: PAD with a constant border value
      const p = ins[1];
      if (!p || !(p.data instanceof Int32Array)) throw new CosfaceError('UNSUPPORTED_OP', `PADV2 ${name}: paddings must be a constant`);
      const d = p.data;
      if (d.length !== 8 || d[0] !== 0 || d[1] !== 0 || d[6] !== 0 || d[7] !== 0) throw new CosfaceError('UNSUPPORTED_OP', `PADV2 ${name}: only spatial padding of NHWC tensors is supported`);
      const value = ins[2] ? constOf(ins[2], 'constant value')[0]! : 0;
      return { op: 'pad', name, inputs: [x.name], output: name, pads: { top: d[2]!, bottom: d[3]!, left: d[4]!, right: d[5]! }, ...(value !== 0 ? { value } : {}) };
    }
    case 40: {
      // MEAN over the spatial axes (global average pooling): a depthwise convolution of weight 1/(H*W).
      const axesT = ins[1];
      const axes = axesT?.data instanceof Int32Array ? Array.from(axesT.data).map((a) => (a < 0 ? a + x.shape.length : a)).sort() : [];
      if (x.shape.length !== 4 || axes.length !== 2 || axes[0] !== 1 || axes[1] !== 2) {
        throw new CosfaceError('UNSUPPORTED_OP', `MEAN ${name}: only over the spatial axes [1, 2] of an NHWC tensor (axes [${axes}] of [${x.shape}])`);
      }
      const [, h, w, C] = x.shape as [number, number, number, number];
      const keep = (op.builtinOptions(new ReducerOptions()) as ReducerOptions | null)?.keepDims() ?? false;
      if (keep) return spatialMeanNodes(name, x.name, name, h, w, C).nodes;
      // [1, 1, C] -> [C]: the same values; the mean writes to a private name and a reshape renames it.
      return [...spatialMeanNodes(name + '/mean', x.name, `${name}/mean`, h, w, C).nodes, { op: 'reshape', name, inputs: [`${name}/mean`], output: name, shape: [C] }];
    }
    case 2: {
      // CONCATENATION: along the first per-sample axis (or of vectors) it is a flat concatenation.
      const o = op.builtinOptions(new ConcatenationOptions()) as ConcatenationOptions | null;
      if (o && o.fusedActivationFunction() !== ActivationFunctionType.NONE) throw new CosfaceError('UNSUPPORTED_OP', `CONCATENATION ${name}: fused activation`);
      const rank = x.shape.length;
      const axis = (o?.axis() ?? 0) < 0 ? (o?.axis() ?? 0) + rank : (o?.axis() ?? 0);
      const parts = ins.filter((t): t is TensorView => !!t);
      const flat = axis === 1 || parts.every((t) => numel(t.shape.slice(1, -1)) === 1 && axis === rank - 1);
      if (!flat || parts.some((t) => t.data)) {
        throw new CosfaceError('UNSUPPORTED_OP', `CONCATENATION ${name}: along axis ${axis} of [${x.shape}] (only along the first per-sample axis, or of vectors, of computed tensors)`);
      }
      return { op: 'concat', name, inputs: parts.map((t) => t.name), output: name };
    }
    default:
      throw new CosfaceError('UNSUPPORTED_OP', `TFLite op ${opName} (operator ${index}, output ${name}) is not supported by cosface`);
  }
}

/** A constant of 1 or C values (any leading 1-dims) as a per-channel vector of length C. */
function broadcastChannel(c: Float32Array, channels: number, what: string): Float32Array {
  if (c.length === channels) return c;
  if (c.length === 1) return new Float32Array(channels).fill(c[0]!);
  throw new CosfaceError('UNSUPPORTED_OP', `${what}: constant of ${c.length} values does not broadcast over ${channels} channels`);
}

function inferShape(node: GraphNode, shapes: Map<string, number[]>, tensors: TensorView[], sg: SubGraph, index: number): number[] {
  const x = shapes.get(node.inputs[0]!);
  if (!x) bad(`${node.name}: input ${node.inputs[0]} is not produced before it is used`);
  switch (node.op) {
    case 'conv2d':
    case 'depthwiseConv2d': {
      const [h, w] = x as [number, number, number];
      const p = node.pads;
      const c = node.op === 'conv2d' ? node.outC : node.channels;
      return [convOutSize(h, node.kh, node.strideH, p.top, p.bottom), convOutSize(w, node.kw, node.strideW, p.left, p.right), c];
    }
    case 'fullyConnected':
      if (numel(x) !== node.inF) bad(`${node.name}: FULLY_CONNECTED expects ${node.inF} inputs, got shape [${x}]`);
      return [node.outF];
    case 'pad': {
      const [h, w, c] = x as [number, number, number];
      return [h + node.pads.top + node.pads.bottom, w + node.pads.left + node.pads.right, c];
    }
    case 'reshape': {
      if (numel(node.shape) !== numel(x)) {
        // -1 in the new shape: infer it.
        const known = node.shape.filter((d) => d > 0);
        const inferred = node.shape.map((d) => (d > 0 ? d : numel(x) / numel(known)));
        return inferred;
      }
      return node.shape;
    }
    case 'concat':
      return [node.inputs.reduce((sum, t) => sum + numel(shapes.get(t) ?? bad(`${node.name}: input ${t} is not produced before it is used`)), 0)];
    default: {
      void tensors;
      void sg;
      void index;
      return x;
    }
  }
}
