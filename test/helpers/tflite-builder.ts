// Writes small TFLite models for tests with the FlatBuffers builder and our generated schema
// accessors (src/import/tflite/generated): tensors (float32, float16, int32 constants), operators
// with their builtin options, one subgraph.
import * as flatbuffers from 'flatbuffers';
import {
  Buffer as TfBuffer, BuiltinOptions, Model, Operator, OperatorCode, SubGraph, Tensor, TensorType,
} from '../../src/import/tflite/generated/tflite_generated.js';

export type OptionsWriter = (b: flatbuffers.Builder) => flatbuffers.Offset;

interface TensorSpec {
  name: string;
  shape: number[];
  type: TensorType;
  data?: Uint8Array;
}

interface OpSpec {
  code: number;
  inputs: number[];
  outputs: number[];
  optionsType: BuiltinOptions;
  options?: OptionsWriter;
}

/** float -> IEEE half bits (round to nearest; enough for test weights of moderate size). */
export function floatToHalf(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  let e = Math.floor(Math.log2(a));
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  return sign | ((e + 15) << 10) | m;
}

export class TfliteBuilder {
  private readonly tensors: TensorSpec[] = [];
  private readonly ops: OpSpec[] = [];

  /** A computed tensor. */
  tensor(name: string, shape: number[]): number {
    this.tensors.push({ name, shape, type: TensorType.FLOAT32 });
    return this.tensors.length - 1;
  }

  float32(name: string, shape: number[], data: Float32Array): number {
    this.tensors.push({ name, shape, type: TensorType.FLOAT32, data: new Uint8Array(new Float32Array(data).buffer) });
    return this.tensors.length - 1;
  }

  /** Stores float16 halves of `data` (the values read back are the rounded ones). */
  float16(name: string, shape: number[], data: Float32Array): number {
    const h = Uint16Array.from(data, floatToHalf);
    this.tensors.push({ name, shape, type: TensorType.FLOAT16, data: new Uint8Array(h.buffer) });
    return this.tensors.length - 1;
  }

  /** A constant of any type from its little-endian bytes. */
  raw(name: string, shape: number[], type: TensorType, data: Uint8Array): number {
    this.tensors.push({ name, shape, type, data });
    return this.tensors.length - 1;
  }

  int32(name: string, shape: number[], data: number[]): number {
    this.tensors.push({ name, shape, type: TensorType.INT32, data: new Uint8Array(Int32Array.from(data).buffer) });
    return this.tensors.length - 1;
  }

  op(code: number, inputs: number[], outputs: number[], optionsType = BuiltinOptions.NONE, options?: OptionsWriter): void {
    this.ops.push({ code, inputs, outputs, optionsType, options });
  }

  build(input: number, output: number): Uint8Array {
    const b = new flatbuffers.Builder(1024);
    const codes = [...new Set(this.ops.map((o) => o.code))];
    // Buffer 0 is the empty buffer by convention; constants get their own.
    const bufferOffsets: flatbuffers.Offset[] = [TfBuffer.createBuffer(b, 0, 0n, 0n)];
    const tensorBuffer: number[] = [];
    for (const t of this.tensors) {
      if (!t.data) {
        tensorBuffer.push(0);
        continue;
      }
      b.startVector(1, t.data.length, 16);
      for (let i = t.data.length - 1; i >= 0; i--) b.addInt8(t.data[i]!);
      const vec = b.endVector();
      bufferOffsets.push(TfBuffer.createBuffer(b, vec, 0n, 0n));
      tensorBuffer.push(bufferOffsets.length - 1);
    }
    const tensorOffsets = this.tensors.map((t, i) => {
      const name = b.createString(t.name);
      const shape = Tensor.createShapeVector(b, t.shape);
      Tensor.startTensor(b);
      Tensor.addShape(b, shape);
      Tensor.addType(b, t.type);
      Tensor.addBuffer(b, tensorBuffer[i]!);
      Tensor.addName(b, name);
      return Tensor.endTensor(b);
    });
    const opOffsets = this.ops.map((o) => {
      const options = o.options ? o.options(b) : 0;
      const ins = Operator.createInputsVector(b, o.inputs);
      const outs = Operator.createOutputsVector(b, o.outputs);
      return Operator.createOperator(b, codes.indexOf(o.code), ins, outs, o.optionsType, options);
    });
    const codeOffsets = codes.map((c) => OperatorCode.createOperatorCode(b, Math.min(c, 127), 0, 1, c));
    const sg = SubGraph.createSubGraph(
      b, SubGraph.createTensorsVector(b, tensorOffsets), SubGraph.createInputsVector(b, [input]), SubGraph.createOutputsVector(b, [output]),
      SubGraph.createOperatorsVector(b, opOffsets), b.createString('main'),
    );
    const model = Model.createModel(b, 3, Model.createOperatorCodesVector(b, codeOffsets), Model.createSubgraphsVector(b, [sg]), b.createString('cosface test'), Model.createBuffersVector(b, bufferOffsets));
    Model.finishModelBuffer(b, model);
    return b.asUint8Array().slice();
  }
}
