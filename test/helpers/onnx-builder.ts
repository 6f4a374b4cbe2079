// A tiny ONNX graph builder for tests: nodes, float/int64 initializers, one input, one output.
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const A = onnx.AttributeProto.AttributeType;

export type Attr = number | number[] | string | { f: number };

export class OnnxBuilder {
  readonly nodes: OnnxTypes.INodeProto[] = [];
  readonly inits: OnnxTypes.ITensorProto[] = [];
  private id = 0;

  constructor(private readonly rnd: () => number = Math.random) {}

  name(base: string): string {
    return `${base}_${this.id++}`;
  }

  float(dims: number[], f?: (i: number) => number): string {
    const n = this.name('w');
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = f ? f(i) : this.rnd() * 2 - 1;
    this.inits.push({ name: n, dataType: FLOAT, dims, rawData: new Uint8Array(data.buffer) });
    return n;
  }

  int64(values: number[], dims = [values.length]): string {
    const n = this.name('i');
    this.inits.push({ name: n, dataType: INT64, dims, int64Data: values });
    return n;
  }

  node(op: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs?: string[]): string {
    const out = outputs ?? [this.name(op.toLowerCase())];
    const attribute: OnnxTypes.IAttributeProto[] = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'number') return { name, type: A.INT, i: v };
      if (typeof v === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
      return { name, type: A.FLOAT, f: v.f };
    });
    this.nodes.push({ opType: op, name: this.name(`${op}_node`), input: inputs, output: out, attribute });
    return out[0]!;
  }

  /** Serialises with input `x` of dims [batch, ...inDims] and output `out` of [batch, ...outDims]. */
  build(x: string, inDims: number[], out: string, outDims: number[], opts: { opset?: number; fixedBatch?: boolean } = {}): Uint8Array {
    const batch = opts.fixedBatch ? { dimValue: 1 } : { dimParam: 'N' };
    const vi = (name: string, dims: number[]): OnnxTypes.IValueInfoProto => ({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [batch, ...dims.map((d) => ({ dimValue: d }))] } } },
    });
    const model: OnnxTypes.IModelProto = {
      irVersion: 7,
      opsetImport: [{ domain: '', version: opts.opset ?? 13 }],
      producerName: 'cosface-test',
      graph: { name: 'test', node: this.nodes, initializer: this.inits, input: [vi(x, inDims)], output: [vi(out, outDims)] },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish();
  }
}
