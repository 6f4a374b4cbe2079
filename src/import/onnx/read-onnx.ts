// ONNX ModelProto -> engine Graph. ONNX image tensors are NCHW; the engine's are NHWC per sample,
// so every 4-D value is tracked with its layout and weights are transposed once here, at load.
// The batch axis is implicit in the engine: a fixed batch of 1 in the file (PyTorch exports) is
// taken as "any batch", and shape arithmetic (Shape -> Gather -> Concat -> Reshape) is folded
// with the batch as 1. BatchNormalization, Sub/Mul/Div/Add by constants become affine nodes that
// graph/passes.ts folds into the neighbouring convolutions. Unknown ops fail here, at load time,
// naming the op and the node.
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { CosfaceError } from '../../errors.js';
import { convOutSize, numel, samePads, spatialMeanNodes, type Graph, type GraphNode, type Pads } from '../../graph/ir.js';
import { Attrs, numelOf, readTensor, toNumber, type ConstTensor } from './onnx-tensors.js';

const { onnx } = onnxProto;

export const ONNX_OPSETS = { min: 9, max: 21 } as const;

/**
 * An ONNX value that lives in the engine. `dims` are the ONNX dims without the batch.
 * - nchw: ONNX [N, C, H, W]; engine tensor [H, W, C].
 * - nhwc: ONNX [N, H, W, C] (our own export's input); engine tensor [H, W, C], same memory.
 * - plain: any other rank; engine tensor = dims, same row-major memory, except that `chw` says the
 *   vector was flattened from an NCHW image: the engine holds it in HWC order.
 */
interface TensorVal {
  kind: 'tensor';
  name: string;
  layout: 'nchw' | 'nhwc' | 'plain';
  dims: number[];
  chw?: [number, number, number];
}
interface ConstVal {
  kind: 'const';
  t: ConstTensor;
}
type Val = TensorVal | ConstVal;

/** A graph node before it gets its output name (distributes over the node union). */
type NodeSpec = GraphNode extends infer N ? (N extends GraphNode ? Omit<N, 'output' | 'name'> & { name?: string } : never) : never;

function bad(msg: string): never {
  throw new CosfaceError('BAD_MODEL', `ONNX model: ${msg}`);
}

/** Engine shape of a tensor value. */
function oursShape(v: TensorVal): number[] {
  if (v.layout === 'nchw') {
    const [c, h, w] = v.dims as [number, number, number];
    return [h, w, c];
  }
  return v.dims;
}

/** True when NCHW and NHWC order of this image are the same memory (1x1 spatial or 1 channel). */
function trivialImage(v: TensorVal): boolean {
  if (v.layout === 'plain') return !v.chw;
  const [a, b, c] = v.dims as [number, number, number];
  return v.layout === 'nchw' ? b * c === 1 || a === 1 : a * b === 1 || c === 1;
}

/** Parses an .onnx file into a Graph (no fusion: see graph/passes.ts). */
export function readOnnx(bytes: Uint8Array, source = 'model.onnx'): Graph {
  let model: OnnxTypes.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new CosfaceError('BAD_MODEL', `ONNX model ${source} is truncated or not an ONNX file (${(e as Error).message})`, { cause: e });
  }
  const irVersion = toNumber(model.irVersion);
  if (!model.graph || irVersion < 1 || !model.graph.node || model.graph.node.length === 0) {
    bad(`${source} has no ir_version or no graph nodes: not an ONNX model`);
  }
  const opsetEntry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = opsetEntry ? toNumber(opsetEntry.version) : irVersion <= 2 ? 1 : 0;
  if (opset < ONNX_OPSETS.min || opset > ONNX_OPSETS.max) {
    throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX model ${source} uses opset ${opset}; cosface reads opsets ${ONNX_OPSETS.min}-${ONNX_OPSETS.max} (convert it with onnx.version_converter)`);
  }
  try {
    return new OnnxImporter(model.graph, opset, source).run();
  } catch (e) {
    if (e instanceof CosfaceError) throw e;
    throw new CosfaceError('BAD_MODEL', `ONNX model ${source} is corrupt (${(e as Error).message})`, { cause: e });
  }
}

class OnnxImporter {
  private readonly values = new Map<string, Val>();
  private readonly nodes: GraphNode[] = [];
  private readonly shapes = new Map<string, number[]>();
  private readonly used = new Set<string>();

  constructor(private readonly g: OnnxTypes.IGraphProto, private readonly opset: number, private readonly source: string) {}

  run(): Graph {
    for (const init of this.g.initializer ?? []) {
      if (!init.name) bad('an initializer has no name');
      this.values.set(init.name, { kind: 'const', t: readTensor(init) });
    }
    const inputs = (this.g.input ?? []).filter((i) => i.name && !this.values.has(i.name));
    if (inputs.length !== 1) bad(`expected one graph input besides the weights, found ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
    const input = this.declareInput(inputs[0]!);

    for (const [i, node] of (this.g.node ?? []).entries()) this.node(node, i);

    const outInfo = (this.g.output ?? [])[0];
    if (!outInfo?.name) bad('the graph has no output');
    const out = this.values.get(outInfo.name);
    if (!out) bad(`graph output ${outInfo.name} is never produced`);
    if (out.kind !== 'tensor') throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX graph output ${outInfo.name} is a constant`);
    if (out.chw) throw new CosfaceError('UNSUPPORTED_OP', `ONNX graph output ${outInfo.name} is an NCHW image flattened without a following Gemm/MatMul; cosface emits NHWC order there`);
    return {
      source: `onnx:${this.source}`,
      input: { name: input.name, shape: oursShape(input) },
      output: { name: out.name, shape: oursShape(out) },
      sourceInputLayout: input.layout === 'nchw' ? 'nchw' : 'nhwc',
      nodes: this.nodes,
      shapes: this.shapes,
    };
  }

  private declareInput(info: OnnxTypes.IValueInfoProto): TensorVal {
    const dims = info.type?.tensorType?.shape?.dim ?? [];
    const elem = info.type?.tensorType?.elemType ?? 1;
    if (elem !== 1) throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX input ${info.name} has element type ${elem}; cosface feeds float32`);
    if (dims.length < 2) throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX input ${info.name} has rank ${dims.length}; expected a batch axis and a sample shape`);
    const rest = dims.slice(1).map((d) => (d.dimValue !== null && d.dimValue !== undefined ? toNumber(d.dimValue) : -1));
    if (rest.some((d) => d <= 0)) {
      throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX input ${info.name} has symbolic sample dims [${dims.slice(1).map((d) => d.dimParam || d.dimValue)}]; the input size must be fixed in the model`);
    }
    const b = dims[0]!;
    const batch = b.dimValue !== null && b.dimValue !== undefined ? toNumber(b.dimValue) : -1;
    if (batch > 1) throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX input ${info.name} has a fixed batch of ${batch}; cosface generalises a batch of 1 or a symbolic batch`);
    const name = this.unique(info.name!);
    let layout: TensorVal['layout'] = 'plain';
    if (rest.length === 3) {
      // Our own export takes NHWC and transposes once; everything else is NCHW.
      const users = (this.g.node ?? []).filter((n) => (n.input ?? []).includes(info.name!));
      const nhwc = users.length > 0 && users.every((n) => n.opType === 'Transpose' && sameInts(new Attrs(n.attribute, '').ints('perm'), [0, 3, 1, 2]));
      layout = nhwc ? 'nhwc' : 'nchw';
    }
    const v: TensorVal = { kind: 'tensor', name, layout, dims: rest };
    this.values.set(info.name!, v);
    this.shapes.set(name, oursShape(v));
    return v;
  }

  private unique(base: string): string {
    let name = base || 't';
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  private get(name: string | undefined, where: string): Val {
    if (!name) bad(`${where}: missing input`);
    const v = this.values.get(name);
    if (!v) bad(`${where}: input ${name} is used before it is produced (nodes must be in topological order)`);
    return v;
  }

  private tensor(name: string | undefined, where: string): TensorVal {
    const v = this.get(name, where);
    if (v.kind !== 'tensor') throw new CosfaceError('UNSUPPORTED_OP', `${where}: input ${name} is a constant where a tensor is expected`);
    return v;
  }

  private constant(name: string | undefined, where: string, what: string): ConstTensor {
    const v = name ? this.values.get(name) : undefined;
    if (!v || v.kind !== 'const') throw new CosfaceError('UNSUPPORTED_OP', `${where}: ${what} must be a constant`);
    return v.t;
  }

  private floats(name: string | undefined, where: string, what: string): Float32Array {
    const t = this.constant(name, where, what);
    if (t.f32) return t.f32;
    return Float32Array.from(t.ints ?? []);
  }

  private ints(name: string | undefined, where: string, what: string): number[] {
    const t = this.constant(name, where, what);
    if (t.ints) return t.ints;
    return Array.from(t.f32 ?? []);
  }

  /** Adds an engine node producing ONNX value `onnxName` with the given ONNX dims/layout. */
  private emit(onnxName: string, node: NodeSpec, val: Omit<TensorVal, 'kind' | 'name'>): TensorVal {
    const out = this.unique(onnxName);
    const full = { ...node, name: node.name ?? out, output: out } as GraphNode;
    this.nodes.push(full);
    const v: TensorVal = { ...val, kind: 'tensor', name: out };
    this.values.set(onnxName, v);
    this.shapes.set(out, oursShape(v));
    return v;
  }

  private alias(onnxName: string, v: TensorVal): void {
    this.values.set(onnxName, v);
  }

  /** A per-channel constant (1 or C values, in any broadcastable shape) for value x. */
  private perChannel(c: Float32Array, dims: number[], x: TensorVal, where: string): Float32Array {
    const channels = x.layout === 'nchw' ? x.dims[0]! : x.dims[x.dims.length - 1]!;
    if (c.length === 1) return new Float32Array(channels).fill(c[0]!);
    if (c.length === channels) {
      // The non-unit axis must be the channel axis: [C,1,1] / [1,C,1,1] for NCHW, [C] / [1,C] else.
      const nonUnit = dims.map((d, i) => [d, i] as const).filter(([d]) => d !== 1);
      const axisFromEnd = dims.length - nonUnit[0]![1];
      const want = x.layout === 'nchw' ? 3 : 1;
      if (nonUnit.length === 1 && axisFromEnd === want && !x.chw) return c;
    }
    throw new CosfaceError('UNSUPPORTED_OP', `${where}: constant of shape [${dims}] does not broadcast per channel over [${x.dims}]`);
  }

  private node(n: OnnxTypes.INodeProto, index: number): void {
    const op = n.opType ?? '';
    const label = n.name || n.output?.[0] || `#${index}`;
    const where = `${op} node '${label}'`;
    if (n.domain && n.domain !== 'ai.onnx') throw new CosfaceError('UNSUPPORTED_OP', `ONNX op ${n.domain}.${op} (node '${label}') is not supported by cosface`);
    const a = new Attrs(n.attribute, where);
    const ins = n.input ?? [];
    const out0 = n.output?.[0] ?? bad(`${where}: no output`);
    const allConst = ins.filter((i) => i).every((i) => this.values.get(i)?.kind === 'const');

    switch (op) {
      case 'Constant': {
        const t = a.tensor('value');
        if (t) this.values.set(out0, { kind: 'const', t: readTensor(t) });
        else if (a.has('value_float')) this.values.set(out0, { kind: 'const', t: { dims: [], f32: new Float32Array([a.float('value_float', 0)]) } });
        else if (a.has('value_floats')) { const f = a.floats('value_floats')!; this.values.set(out0, { kind: 'const', t: { dims: [f.length], f32: Float32Array.from(f) } }); }
        else if (a.has('value_int')) this.values.set(out0, { kind: 'const', t: { dims: [], ints: [a.int('value_int', 0)] } });
        else if (a.has('value_ints')) { const v = a.ints('value_ints')!; this.values.set(out0, { kind: 'const', t: { dims: [v.length], ints: v } }); }
        else throw new CosfaceError('UNSUPPORTED_OP', `${where}: only tensor, float(s) and int(s) constants are supported`);
        return;
      }
      case 'Identity':
      case 'Dropout': {
        if (op === 'Dropout' && n.output!.length > 1 && n.output![1]) {
          const maskUsed = (this.g.node ?? []).some((m) => (m.input ?? []).includes(n.output![1]!));
          if (maskUsed) throw new CosfaceError('UNSUPPORTED_OP', `${where}: the dropout mask is used`);
        }
        this.values.set(out0, this.get(ins[0], where));
        return;
      }
      case 'Cast': {
        const v = this.get(ins[0], where);
        if (v.kind !== 'const') {
          const to = a.int('to', 1);
          if (to !== 1) throw new CosfaceError('UNSUPPORTED_OP', `${where}: cast of a tensor to type ${to}`);
        }
        this.values.set(out0, v);
        return;
      }
      case 'Shape': {
        const x = this.tensor(ins[0], where);
        const full = [1, ...x.dims]; // the batch folds as 1
        const start = a.int('start', 0);
        const end = a.int('end', full.length);
        const norm = (i: number) => Math.max(0, Math.min(full.length, i < 0 ? i + full.length : i));
        const v = full.slice(norm(start), norm(end));
        this.values.set(out0, { kind: 'const', t: { dims: [v.length], ints: v } });
        return;
      }
    }

    if (allConst && ins.length > 0 && ['Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Reshape', 'Flatten', 'Mul', 'Add', 'Sub', 'Div', 'Slice', 'Sqrt'].includes(op)) {
      this.values.set(out0, { kind: 'const', t: this.foldConst(op, n, a, where) });
      return;
    }

    switch (op) {
      case 'Conv':
        return this.conv(n, a, where, out0);
      case 'BatchNormalization': {
        const x = this.tensor(ins[0], where);
        if (a.int('training_mode', 0) !== 0) throw new CosfaceError('UNSUPPORTED_OP', `${where}: training mode`);
        const eps = a.float('epsilon', 1e-5);
        const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => this.floats(ins[i], where, `input ${i}`));
        const C = scale!.length;
        const s = new Float32Array(C);
        const t = new Float32Array(C);
        for (let c = 0; c < C; c++) {
          s[c] = scale![c]! / Math.sqrt(variance![c]! + eps);
          t[c] = bias![c]! - mean![c]! * s[c]!;
        }
        if (x.dims[0] !== C || (x.layout === 'plain' && (x.dims.length !== 1 || x.chw))) {
          throw new CosfaceError('UNSUPPORTED_OP', `${where}: normalisation over axis 1 of [${x.dims}] (${C} channels) is not a per-channel op in NHWC`);
        }
        this.emit(out0, { op: 'affine', inputs: [x.name], scale: s, shift: t }, { layout: x.layout, dims: x.dims });
        return;
      }
      case 'Relu': {
        const x = this.tensor(ins[0], where);
        this.emit(out0, { op: 'activation', inputs: [x.name], activation: 'relu' }, { ...x });
        return;
      }
      case 'Clip': {
        const x = this.tensor(ins[0], where);
        const lo = this.opset < 11 ? a.float('min', -Infinity) : ins[1] ? this.floats(ins[1], where, 'min')[0]! : -Infinity;
        const hi = this.opset < 11 ? a.float('max', Infinity) : ins[2] ? this.floats(ins[2], where, 'max')[0]! : Infinity;
        if (lo !== 0 || hi < 3.4e38) throw new CosfaceError('UNSUPPORTED_OP', `${where}: Clip(${lo}, ${hi}) (only Clip(0, inf) = Relu is supported)`);
        this.emit(out0, { op: 'activation', inputs: [x.name], activation: 'relu' }, { ...x });
        return;
      }
      case 'PRelu':
      case 'LeakyRelu': {
        const x = this.tensor(ins[0], where);
        let alpha: Float32Array;
        if (op === 'LeakyRelu') alpha = this.perChannel(new Float32Array([a.float('alpha', 0.01)]), [], x, where);
        else {
          const t = this.constant(ins[1], where, 'slope');
          alpha = this.perChannel(t.f32 ?? new Float32Array(0), t.dims, x, where);
        }
        this.emit(out0, { op: 'activation', inputs: [x.name], activation: 'prelu', alpha }, { ...x });
        return;
      }
      case 'Sigmoid': {
        const x = this.tensor(ins[0], where);
        this.emit(out0, { op: 'sigmoid', inputs: [x.name] }, { ...x });
        return;
      }
      case 'Abs': {
        const x = this.tensor(ins[0], where);
        this.emit(out0, { op: 'abs', inputs: [x.name] }, { ...x });
        return;
      }
      case 'Neg': {
        const x = this.tensor(ins[0], where);
        const C = oursShape(x).at(-1)!;
        this.emit(out0, { op: 'affine', inputs: [x.name], scale: new Float32Array(C).fill(-1), shift: new Float32Array(C) }, { ...x });
        return;
      }
      case 'Add':
      case 'Sub':
      case 'Mul':
      case 'Div':
      case 'Max':
      case 'Min':
        return this.binary(op, n, where, out0);
      case 'Flatten': {
        const x = this.tensor(ins[0], where);
        const axis = a.int('axis', 1);
        if (axis !== 1) throw new CosfaceError('UNSUPPORTED_OP', `${where}: flatten at axis ${axis} (only axis 1 keeps the batch apart)`);
        this.reshapeTo(out0, x, [numelOf(x.dims)], where);
        return;
      }
      case 'Reshape': {
        const x = this.tensor(ins[0], where);
        const shape = this.opset < 5 ? a.ints('shape') ?? [] : this.ints(ins[1], where, 'shape');
        const full = [1, ...x.dims];
        const allowZero = a.int('allowzero', 0) === 1;
        const target = shape.map((d, i) => (d === 0 && !allowZero ? full[i] ?? bad(`${where}: 0 at axis ${i} beyond the input rank`) : d));
        const known = target.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
        const resolved = target.map((d) => (d === -1 ? numelOf(full) / known : d));
        if (resolved[0] !== 1 || numelOf(resolved) !== numelOf(full)) {
          throw new CosfaceError('UNSUPPORTED_OP', `${where}: reshape of [N, ${x.dims}] to [${shape}] moves data across the batch axis`);
        }
        this.reshapeTo(out0, x, resolved.slice(1), where);
        return;
      }
      case 'Squeeze':
      case 'Unsqueeze': {
        const x = this.tensor(ins[0], where);
        const axes = (this.opset >= 13 && ins[1] ? this.ints(ins[1], where, 'axes') : a.ints('axes')) ?? [];
        const full = [1, ...x.dims];
        let dims: number[];
        if (op === 'Squeeze') {
          const r = full.length;
          const drop = new Set(axes.length ? axes.map((ax) => (ax < 0 ? ax + r : ax)) : full.map((d, i) => (d === 1 && i > 0 ? i : -1)));
          if (drop.has(0)) throw new CosfaceError('UNSUPPORTED_OP', `${where}: squeezes the batch axis`);
          dims = full.filter((_, i) => !drop.has(i));
        } else {
          const r = full.length + axes.length;
          const add = new Set(axes.map((ax) => (ax < 0 ? ax + r : ax)));
          if (add.has(0)) throw new CosfaceError('UNSUPPORTED_OP', `${where}: adds an axis before the batch`);
          dims = [];
          let j = 0;
          for (let i = 0; i < r; i++) dims.push(add.has(i) ? 1 : full[j++]!);
        }
        this.reshapeTo(out0, x, dims.slice(1), where);
        return;
      }
      case 'Transpose': {
        const x = this.tensor(ins[0], where);
        const perm = a.ints('perm') ?? [...Array(x.dims.length + 1).keys()].reverse();
        if (sameInts(perm, [...Array(x.dims.length + 1).keys()])) return this.alias(out0, x);
        if (x.dims.length === 3 && sameInts(perm, [0, 3, 1, 2]) && (x.layout === 'nhwc' || (x.layout === 'plain' && !x.chw))) {
          return this.alias(out0, { ...x, layout: 'nchw', dims: [x.dims[2]!, x.dims[0]!, x.dims[1]!] });
        }
        if (x.dims.length === 3 && sameInts(perm, [0, 2, 3, 1]) && x.layout === 'nchw') {
          return this.alias(out0, { ...x, layout: 'nhwc', dims: [x.dims[1]!, x.dims[2]!, x.dims[0]!] });
        }
        throw new CosfaceError('UNSUPPORTED_OP', `${where}: transpose [${perm}] of a ${x.layout} tensor [N, ${x.dims}] (only NCHW <-> NHWC)`);
      }
      case 'Gemm':
      case 'MatMul':
        return this.gemm(op, n, a, where, out0);
      case 'Pad': {
        const x = this.tensor(ins[0], where);
        const mode = a.string('mode', 'constant');
        if (mode !== 'constant') throw new CosfaceError('UNSUPPORTED_OP', `${where}: pad mode '${mode}' (only constant)`);
        let pads: number[];
        let value = 0;
        if (this.opset < 11) {
          pads = a.ints('pads') ?? [];
          value = a.float('value', 0);
        } else {
          pads = this.ints(ins[1], where, 'pads');
          if (ins[2]) value = this.floats(ins[2], where, 'constant_value')[0] ?? 0;
          if (ins[3]) {
            const axes = this.ints(ins[3], where, 'axes').map((ax) => (ax < 0 ? ax + 4 : ax));
            const full = new Array(8).fill(0);
            axes.forEach((ax, i) => {
              full[ax] = pads[i];
              full[ax + 4] = pads[i + axes.length];
            });
            pads = full;
          }
        }
        if (x.layout !== 'nchw' || pads.length !== 8 || pads[0] || pads[1] || pads[4] || pads[5]) {
          throw new CosfaceError('UNSUPPORTED_OP', `${where}: only spatial padding of an NCHW image is supported (pads [${pads}])`);
        }
        if (pads.some((p) => p < 0)) throw new CosfaceError('UNSUPPORTED_OP', `${where}: negative pads (cropping)`);
        const p: Pads = { top: pads[2]!, left: pads[3]!, bottom: pads[6]!, right: pads[7]! };
        const [c, h, w] = x.dims as [number, number, number];
        this.emit(out0, { op: 'pad', inputs: [x.name], pads: p, ...(value !== 0 ? { value } : {}) }, { layout: 'nchw', dims: [c, h + p.top + p.bottom, w + p.left + p.right] });
        return;
      }
      case 'MaxPool':
      case 'AveragePool': {
        const x = this.image(ins[0], where);
        if (n.output!.length > 1 && n.output![1]) throw new CosfaceError('UNSUPPORTED_OP', `${where}: pooling indices output`);
        if (a.int('ceil_mode', 0) !== 0) throw new CosfaceError('UNSUPPORTED_OP', `${where}: ceil_mode`);
        if ((a.ints('dilations') ?? [1, 1]).some((d) => d !== 1)) throw new CosfaceError('UNSUPPORTED_OP', `${where}: dilation`);
        const [kh, kw] = a.ints('kernel_shape') ?? bad(`${where}: no kernel_shape`);
        const [sh, sw] = a.ints('strides') ?? [1, 1];
        const pads = this.padsOf(a, x, kh!, kw!, sh!, sw!, where);
        const [c, h, w] = x.dims as [number, number, number];
        const dims = [c, convOutSize(h, kh!, sh!, pads.top, pads.bottom), convOutSize(w, kw!, sw!, pads.left, pads.right)];
        if (op === 'MaxPool') {
          this.emit(out0, { op: 'maxPool2d', inputs: [x.name], kh: kh!, kw: kw!, strideH: sh!, strideW: sw!, pads }, { layout: 'nchw', dims });
        } else {
          if (pads.top + pads.left + pads.bottom + pads.right > 0 && a.int('count_include_pad', 0) === 0) {
            throw new CosfaceError('UNSUPPORTED_OP', `${where}: padded average pooling that excludes the pad from the count`);
          }
          this.averagePool(out0, x, kh!, kw!, sh!, sw!, pads, dims);
        }
        return;
      }
      case 'GlobalAveragePool': {
        this.spatialMean(out0, this.image(ins[0], where));
        return;
      }
      case 'ReduceMean': {
        const x = this.image(ins[0], where);
        const axes = (this.opset >= 18 && ins[1] ? this.ints(ins[1], where, 'axes') : a.ints('axes')) ?? [];
        const norm = axes.map((ax) => (ax < 0 ? ax + 4 : ax)).sort();
        if (!sameInts(norm, [2, 3])) throw new CosfaceError('UNSUPPORTED_OP', `${where}: mean over axes [${axes}] (only the spatial axes 2, 3)`);
        const pooled = this.spatialMean(`${out0}/pooled`, x);
        if (a.int('keepdims', 1) === 1) this.alias(out0, pooled);
        else this.reshapeTo(out0, pooled, [x.dims[0]!], where);
        return;
      }
      case 'LpNormalization': {
        const x = this.tensor(ins[0], where);
        const axis = a.int('axis', -1);
        if (a.int('p', 2) !== 2 || x.layout !== 'plain' || x.dims.length !== 1 || (axis !== 1 && axis !== -1)) {
          throw new CosfaceError('UNSUPPORTED_OP', `${where}: only L2 normalisation of [N, F] vectors over F`);
        }
        this.emit(out0, { op: 'l2normalize', inputs: [x.name] }, { ...x });
        return;
      }
      case 'Concat': {
        const xs = ins.map((i) => this.tensor(i, where));
        const axis = a.int('axis', 1);
        const rank = xs[0]!.dims.length + 1;
        const ax = axis < 0 ? axis + rank : axis;
        // Concatenating along the first per-sample axis is a flat concatenation of the samples.
        const flat = xs.every((x) => x.layout === 'plain' && !x.chw) && ax === 1;
        if (!flat) throw new CosfaceError('UNSUPPORTED_OP', `${where}: concatenation along axis ${axis} of ${xs[0]!.layout} tensors (only of [N, F] vectors)`);
        const total = xs.reduce((s, x) => s + numel(x.dims), 0);
        const rest = xs[0]!.dims.slice(1);
        this.emit(out0, { op: 'concat', inputs: xs.map((x) => x.name) }, { layout: 'plain', dims: [total / Math.max(1, numel(rest)), ...rest] });
        return;
      }
      default:
        throw new CosfaceError('UNSUPPORTED_OP', `ONNX op ${op} (node '${label}') is not supported by cosface`);
    }
  }

  private image(name: string | undefined, where: string): TensorVal {
    const x = this.tensor(name, where);
    if (x.layout !== 'nchw') throw new CosfaceError('UNSUPPORTED_OP', `${where}: expects an NCHW image, got [N, ${x.dims}]`);
    return x;
  }

  /** Global average pooling of an NCHW image -> [C, 1, 1] (see spatialMeanNodes). */
  private spatialMean(onnxName: string, x: TensorVal): TensorVal {
    const [c, h, w] = x.dims as [number, number, number];
    const out = this.unique(onnxName);
    const { nodes, shapes } = spatialMeanNodes(out, x.name, out, h, w, c);
    nodes.forEach((n, i) => {
      this.nodes.push(n);
      this.shapes.set(n.output, shapes[i]!);
    });
    const v: TensorVal = { kind: 'tensor', name: out, layout: 'nchw', dims: [c, 1, 1] };
    this.values.set(onnxName, v);
    return v;
  }

  /** Average pooling without padding as a depthwise convolution with weights 1/(kh*kw). */
  private averagePool(onnxName: string, x: TensorVal, kh: number, kw: number, sh: number, sw: number, pads: Pads, dims: number[]): TensorVal {
    const C = x.dims[0]!;
    const filter = new Float32Array(kh * kw * C).fill(1 / (kh * kw));
    return this.emit(onnxName, { op: 'depthwiseConv2d', inputs: [x.name], filter, bias: new Float32Array(C), kh, kw, channels: C, strideH: sh, strideW: sw, pads, activation: 'none' }, { layout: 'nchw', dims });
  }

  private padsOf(a: Attrs, x: TensorVal, kh: number, kw: number, sh: number, sw: number, where: string): Pads {
    const autoPad = a.string('auto_pad', 'NOTSET');
    const [, h, w] = x.dims as [number, number, number];
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      const p = samePads(h, w, kh, kw, sh, sw);
      return autoPad === 'SAME_UPPER' ? p : { top: p.bottom, bottom: p.top, left: p.right, right: p.left };
    }
    if (autoPad === 'VALID') return { top: 0, left: 0, bottom: 0, right: 0 };
    if (autoPad !== 'NOTSET') bad(`${where}: auto_pad '${autoPad}'`);
    const p = a.ints('pads') ?? [0, 0, 0, 0];
    if (p.length !== 4) throw new CosfaceError('UNSUPPORTED_OP', `${where}: pads [${p}] (2-D only)`);
    return { top: p[0]!, left: p[1]!, bottom: p[2]!, right: p[3]! };
  }

  private conv(n: OnnxTypes.INodeProto, a: Attrs, where: string, out0: string): void {
    const ins = n.input ?? [];
    const x = this.image(ins[0], where);
    const wt = this.constant(ins[1], where, 'weight');
    const W = wt.f32 ?? bad(`${where}: integer weights`);
    if (wt.dims.length !== 4) throw new CosfaceError('UNSUPPORTED_OP', `${where}: ${wt.dims.length - 2}-D convolution (only 2-D)`);
    const [O, Ig, kh, kw] = wt.dims as [number, number, number, number];
    if ((a.ints('dilations') ?? [1, 1]).some((d) => d !== 1)) throw new CosfaceError('UNSUPPORTED_OP', `${where}: dilation is not supported`);
    const [sh, sw] = a.ints('strides') ?? [1, 1];
    const group = a.int('group', 1);
    const inC = x.dims[0]!;
    const bias = ins[2] ? this.floats(ins[2], where, 'bias') : new Float32Array(O);
    if (bias.length !== O) bad(`${where}: bias of ${bias.length} for ${O} outputs`);
    const pads = this.padsOf(a, x, kh, kw, sh!, sw!, where);
    const [, h, w] = x.dims as [number, number, number];
    const dims = [O, convOutSize(h, kh, sh!, pads.top, pads.bottom), convOutSize(w, kw, sw!, pads.left, pads.right)];
    if (group === 1) {
      if (Ig !== inC) bad(`${where}: weight expects ${Ig} input channels, input has ${inC}`);
      // OIHW -> OHWI, once.
      const filter = new Float32Array(W.length);
      for (let o = 0; o < O; o++)
        for (let c = 0; c < inC; c++)
          for (let y = 0; y < kh; y++) for (let xk = 0; xk < kw; xk++) filter[((o * kh + y) * kw + xk) * inC + c] = W[((o * inC + c) * kh + y) * kw + xk]!;
      this.emit(out0, { op: 'conv2d', inputs: [x.name], filter, bias, kh, kw, inC, outC: O, strideH: sh!, strideW: sw!, pads, activation: 'none' }, { layout: 'nchw', dims });
      return;
    }
    if (group === inC && O === inC && Ig === 1) {
      // [C, 1, kh, kw] -> [kh, kw, C]
      const filter = new Float32Array(W.length);
      for (let c = 0; c < O; c++) for (let y = 0; y < kh; y++) for (let xk = 0; xk < kw; xk++) filter[(y * kw + xk) * O + c] = W[(c * kh + y) * kw + xk]!;
      this.emit(out0, { op: 'depthwiseConv2d', inputs: [x.name], filter, bias, kh, kw, channels: O, strideH: sh!, strideW: sw!, pads, activation: 'none' }, { layout: 'nchw', dims });
      return;
    }
    throw new CosfaceError('UNSUPPORTED_OP', `${where}: grouped convolution (group ${group}, ${inC} -> ${O} channels); only dense and depthwise (multiplier 1)`);
  }

  private binary(op: string, n: OnnxTypes.INodeProto, where: string, out0: string): void {
    const ins = n.input ?? [];
    const A = this.get(ins[0], where);
    const B = this.get(ins[1], where);
    if (A.kind === 'tensor' && B.kind === 'tensor') {
      if (A.layout !== B.layout || !sameInts(A.dims, B.dims) || A.chw || B.chw) {
        throw new CosfaceError('UNSUPPORTED_OP', `${where}: operands [N, ${A.dims}] and [N, ${B.dims}] must have the same shape (no broadcasting of tensors)`);
      }
      const val = { layout: A.layout, dims: A.dims };
      if (op === 'Add') this.emit(out0, { op: 'add', inputs: [A.name, B.name], activation: 'none' }, val);
      else if (op === 'Sub') this.emit(out0, { op: 'sub', inputs: [A.name, B.name] }, val);
      else if (op === 'Mul') this.emit(out0, { op: 'mul', inputs: [A.name, B.name] }, val);
      else throw new CosfaceError('UNSUPPORTED_OP', `${where}: ${op} of two tensors`);
      return;
    }
    const x = (A.kind === 'tensor' ? A : B) as TensorVal;
    const k = (A.kind === 'const' ? A : B) as ConstVal;
    const constFirst = A.kind === 'const';
    const c = this.perChannel(k.t.f32 ?? Float32Array.from(k.t.ints ?? []), k.t.dims, x, where);
    const C = c.length;
    const ones = new Float32Array(C).fill(1);
    const val = { layout: x.layout, dims: x.dims, ...(x.chw ? { chw: x.chw } : {}) };
    switch (op) {
      case 'Add':
        this.emit(out0, { op: 'affine', inputs: [x.name], scale: ones, shift: c }, val);
        return;
      case 'Sub':
        if (constFirst) this.emit(out0, { op: 'affine', inputs: [x.name], scale: new Float32Array(C).fill(-1), shift: c }, val);
        else this.emit(out0, { op: 'affine', inputs: [x.name], scale: ones, shift: c.map((v) => -v) }, val);
        return;
      case 'Mul':
        this.emit(out0, { op: 'mul', inputs: [x.name], value: c }, val);
        return;
      case 'Div':
        if (constFirst) throw new CosfaceError('UNSUPPORTED_OP', `${where}: a constant divided by a tensor`);
        this.emit(out0, { op: 'mul', inputs: [x.name], value: c.map((v) => 1 / v) }, val);
        return;
      case 'Max':
      case 'Min':
        this.emit(out0, { op: op === 'Max' ? 'maximum' : 'minimum', inputs: [x.name], value: c }, val);
        return;
    }
  }

  private gemm(op: 'Gemm' | 'MatMul', n: OnnxTypes.INodeProto, a: Attrs, where: string, out0: string): void {
    const ins = n.input ?? [];
    const x = this.tensor(ins[0], where);
    if (x.layout !== 'plain' || x.dims.length !== 1) {
      throw new CosfaceError('UNSUPPORTED_OP', `${where}: input [N, ${x.dims}] must be a batch of vectors [N, F]`);
    }
    const inF = x.dims[0]!;
    const wt = this.constant(ins[1], where, 'weight');
    const Wd = wt.f32 ?? bad(`${where}: integer weights`);
    if (wt.dims.length !== 2) throw new CosfaceError('UNSUPPORTED_OP', `${where}: weight of rank ${wt.dims.length}`);
    if (op === 'Gemm' && a.int('transA', 0) !== 0) throw new CosfaceError('UNSUPPORTED_OP', `${where}: transA`);
    const transB = op === 'Gemm' && a.int('transB', 0) === 1;
    const outF = transB ? wt.dims[0]! : wt.dims[1]!;
    const k = transB ? wt.dims[1]! : wt.dims[0]!;
    if (k !== inF) bad(`${where}: weight [${wt.dims}] does not take ${inF} inputs`);
    const alpha = op === 'Gemm' ? a.float('alpha', 1) : 1;
    const beta = op === 'Gemm' ? a.float('beta', 1) : 1;
    // Engine column j of the input holds ONNX column src(j) (they differ after an NCHW flatten).
    const src = (j: number): number => {
      if (!x.chw) return j;
      const [h, w, c] = x.chw;
      const ch = j % c;
      const pix = (j - ch) / c;
      return ch * h * w + pix;
    };
    const weights = new Float32Array(outF * inF);
    for (let o = 0; o < outF; o++)
      for (let j = 0; j < inF; j++) {
        const s = src(j);
        weights[o * inF + j] = alpha * (transB ? Wd[o * inF + s]! : Wd[s * outF + o]!);
      }
    let bias = new Float32Array(outF);
    if (op === 'Gemm' && ins[2]) {
      const c = this.floats(ins[2], where, 'bias C');
      if (c.length !== outF && c.length !== 1) throw new CosfaceError('UNSUPPORTED_OP', `${where}: bias of ${c.length} values for ${outF} outputs`);
      bias = bias.map((_, o) => beta * c[c.length === 1 ? 0 : o]!);
    }
    this.emit(out0, { op: 'fullyConnected', inputs: [x.name], weights, bias, inF, outF, activation: 'none' }, { layout: 'plain', dims: [outF] });
  }

  /** Reshape to ONNX dims `dims` (batch excluded), keeping track of layouts. */
  private reshapeTo(onnxName: string, x: TensorVal, dims: number[], where: string): void {
    if (numelOf(dims) !== numelOf(x.dims)) bad(`${where}: reshape of [${x.dims}] to [${dims}]`);
    if (sameInts(dims, x.dims)) return this.alias(onnxName, x);
    // natural: the engine holds the value in ONNX's row-major order.
    const natural = x.layout === 'nhwc' || (x.layout === 'plain' && !x.chw) || (x.layout === 'nchw' && trivialImage(x));
    let val: Omit<TensorVal, 'kind' | 'name'>;
    if (dims.length === 3) {
      // A 4-D result is an NCHW image to the ops after it: the engine must hold it as HWC.
      const result: TensorVal = { kind: 'tensor', name: '', layout: 'nchw', dims };
      if (natural && trivialImage(result)) val = { layout: 'nchw', dims };
      else if (x.chw && sameInts(dims, [x.chw[2], x.chw[0], x.chw[1]])) val = { layout: 'nchw', dims }; // un-flatten
      else throw new CosfaceError('UNSUPPORTED_OP', `${where}: reshape of [N, ${x.dims}] into the image [N, ${dims}] reorders channels`);
    } else if (natural) {
      val = { layout: 'plain', dims };
    } else if (dims.length === 1) {
      // Flattening an NCHW image: the engine keeps HWC order and remembers it for the next Gemm.
      val = { layout: 'plain', dims, chw: x.chw ?? [x.dims[1]!, x.dims[2]!, x.dims[0]!] };
    } else {
      throw new CosfaceError('UNSUPPORTED_OP', `${where}: reshape of the NCHW image [N, ${x.dims}] to [N, ${dims}]`);
    }
    const target = oursShape({ kind: 'tensor', name: '', ...val });
    if (sameInts(target, oursShape(x))) return this.alias(onnxName, { ...val, kind: 'tensor', name: x.name });
    this.emit(onnxName, { op: 'reshape', inputs: [x.name], shape: target }, val);
  }

  /** Shape arithmetic and other all-constant nodes, evaluated at load time. */
  private foldConst(op: string, n: OnnxTypes.INodeProto, a: Attrs, where: string): ConstTensor {
    const ins = (n.input ?? []).map((i) => (i ? this.constant(i, where, 'input') : undefined));
    const x = ins[0]!;
    const vals = (t: ConstTensor): number[] => (t.ints ? t.ints : Array.from(t.f32!));
    const make = (dims: number[], v: number[], like: ConstTensor): ConstTensor => (like.ints ? { dims, ints: v } : { dims, f32: Float32Array.from(v) });
    switch (op) {
      case 'Gather': {
        const axis = a.int('axis', 0);
        const idx = ins[1]!;
        if (axis !== 0 || x.dims.length !== 1) throw new CosfaceError('UNSUPPORTED_OP', `${where}: constant gather other than from a 1-D tensor`);
        const v = vals(x);
        const picked = vals(idx).map((i) => v[i < 0 ? i + v.length : i]!);
        return make(idx.dims, picked, x);
      }
      case 'Unsqueeze':
      case 'Squeeze':
      case 'Reshape':
      case 'Flatten': {
        let dims: number[];
        if (op === 'Reshape') {
          const s = vals(ins[1]!);
          const known = s.filter((d) => d > 0).reduce((p, d) => p * d, 1);
          dims = s.map((d, i) => (d === 0 ? x.dims[i]! : d === -1 ? numelOf(x.dims) / known : d));
        } else if (op === 'Flatten') dims = [1, numelOf(x.dims)];
        else {
          const axes = (this.opset >= 13 && ins[1] ? vals(ins[1]) : a.ints('axes')) ?? [];
          if (op === 'Squeeze') dims = x.dims.filter((d, i) => (axes.length ? !axes.includes(i) && !axes.includes(i - x.dims.length) : d !== 1));
          else {
            dims = [...x.dims];
            const r = x.dims.length + axes.length;
            for (const ax of axes.map((v) => (v < 0 ? v + r : v)).sort((p, q) => p - q)) dims.splice(ax, 0, 1);
          }
        }
        return make(dims, vals(x), x);
      }
      case 'Concat': {
        const parts = ins.filter((t): t is ConstTensor => !!t);
        if (parts.some((p) => p.dims.length > 1)) throw new CosfaceError('UNSUPPORTED_OP', `${where}: constant concat of rank > 1`);
        const v = parts.flatMap(vals);
        return make([v.length], v, parts[0]!);
      }
      case 'Slice': {
        if (x.dims.length !== 1) throw new CosfaceError('UNSUPPORTED_OP', `${where}: constant slice of rank > 1`);
        const v = vals(x);
        const starts = this.opset >= 10 ? vals(ins[1]!) : a.ints('starts')!;
        const ends = this.opset >= 10 ? vals(ins[2]!) : a.ints('ends')!;
        const norm = (i: number) => Math.max(0, Math.min(v.length, i < 0 ? i + v.length : i));
        const r = v.slice(norm(starts[0]!), norm(ends[0]!));
        return make([r.length], r, x);
      }
      case 'Sqrt':
        return make(x.dims, vals(x).map(Math.sqrt), x);
      default: {
        // Elementwise arithmetic of two constants (same shape or one scalar).
        const y = ins[1]!;
        const va = vals(x);
        const vb = vals(y);
        const len = Math.max(va.length, vb.length);
        if (va.length !== len && va.length !== 1) throw new CosfaceError('UNSUPPORTED_OP', `${where}: constant broadcasting`);
        if (vb.length !== len && vb.length !== 1) throw new CosfaceError('UNSUPPORTED_OP', `${where}: constant broadcasting`);
        const f = { Add: (p: number, q: number) => p + q, Sub: (p: number, q: number) => p - q, Mul: (p: number, q: number) => p * q, Div: (p: number, q: number) => (x.ints && y.ints ? Math.trunc(p / q) : p / q) }[op as 'Add']!;
        const v = Array.from({ length: len }, (_, i) => f(va[va.length === 1 ? 0 : i]!, vb[vb.length === 1 ? 0 : i]!));
        return make(va.length >= vb.length ? x.dims : y.dims, v, x.ints && y.ints ? x : { dims: [], f32: new Float32Array(0) });
      }
    }
  }
}

function sameInts(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return !!a && a.length === b.length && a.every((v, i) => v === b[i]);
}
