// TF.js graph model (model.json + weights .bin) -> engine Graph. Reads the GraphDef nodes, maps
// each op to a graph node (unknown ops fail here, at load time, with their name), keeps only what
// the requested outputs need and, for several outputs, returns them through one flat `concat`.
import { CosfaceError } from '../../errors.js';
import { convOutSize, noPads, numel, samePads, type Activation, type Graph, type GraphNode, type Pads } from '../../graph/ir.js';

/** The parts of model.json the importer reads. */
export interface TfjsModelJson {
  format?: string;
  modelTopology: { node: TfjsNodeDef[]; versions?: unknown; library?: unknown };
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[];
  signature?: unknown;
}

export interface TfjsNodeDef {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, TfjsAttr>;
}

interface TfjsAttr {
  s?: string;
  i?: string | number;
  f?: number;
  b?: boolean;
  list?: { s?: string[]; i?: (string | number)[] };
  shape?: { dim?: { size: string | number }[] };
  tensor?: { dtype?: string; tensorShape?: { dim?: { size: string | number }[] } };
  type?: string;
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32' | string;
  quantization?: { dtype: 'float16' | 'uint8' | 'uint16' | string; scale?: number; min?: number; original_dtype?: string };
}

/** Where one model output lies in the graph's flat output (per sample). */
export interface TfjsOutputSlice {
  /** The node name asked for (e.g. 'Identity_2'). */
  name: string;
  /** Per-sample shape of that output. */
  shape: number[];
  /** Offset (in floats) within one sample of the graph output. */
  offset: number;
  size: number;
}

export interface TfjsImport {
  graph: Graph;
  outputs: TfjsOutputSlice[];
}

export interface ReadTfjsOptions {
  /** Output node names to keep, in this order (default: every Identity node fed by no other node). */
  outputs?: string[];
  /** For messages and graph.source. */
  source?: string;
}

function bad(source: string, msg: string): never {
  throw new CosfaceError('BAD_MODEL', `TF.js model ${source}: ${msg}`);
}

function unsupported(source: string, msg: string): never {
  throw new CosfaceError('UNSUPPORTED_OP', `TF.js model ${source}: ${msg}`);
}

// atob and TextDecoder rather than Buffer: the importer also runs in browsers (src/web/).
const decodeAttrString = (s: string | undefined): string =>
  s === undefined ? '' : new TextDecoder().decode(Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0)));
const intList = (a: TfjsAttr | undefined): number[] => (a?.list?.i ?? []).map((v) => Number(v));

/** Half-precision bits -> float. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

interface ConstTensor {
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Splits the concatenated weight bytes into named tensors as the manifest describes them. */
export function decodeTfjsWeights(json: TfjsModelJson, weightData: Uint8Array, source = 'model.json'): Map<string, ConstTensor> {
  const out = new Map<string, ConstTensor>();
  const bytes = new Uint8Array(weightData); // aligned private copy
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  for (const group of json.weightsManifest ?? []) {
    for (const w of group.weights ?? []) {
      const n = numel(w.shape);
      const q = w.quantization;
      const elem = q ? (q.dtype === 'uint8' ? 1 : 2) : 4;
      if (off + n * elem > bytes.byteLength) bad(source, `weights end at byte ${bytes.byteLength} but ${w.name} needs bytes [${off}, ${off + n * elem})`);
      let data: Float32Array | Int32Array;
      if (q) {
        if (w.dtype !== 'float32') unsupported(source, `weight ${w.name}: quantised ${w.dtype} is not supported`);
        const f = new Float32Array(n);
        if (q.dtype === 'float16') for (let i = 0; i < n; i++) f[i] = halfToFloat(view.getUint16(off + 2 * i, true));
        else if (q.dtype === 'uint8') for (let i = 0; i < n; i++) f[i] = view.getUint8(off + i) * (q.scale ?? 1) + (q.min ?? 0);
        else if (q.dtype === 'uint16') for (let i = 0; i < n; i++) f[i] = view.getUint16(off + 2 * i, true) * (q.scale ?? 1) + (q.min ?? 0);
        else unsupported(source, `weight ${w.name}: quantisation dtype ${q.dtype} is not supported`);
        data = f;
      } else if (w.dtype === 'float32') {
        data = new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getFloat32(off + 4 * i, true);
      } else if (w.dtype === 'int32') {
        data = new Int32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getInt32(off + 4 * i, true);
      } else {
        unsupported(source, `weight ${w.name} has dtype ${w.dtype}; only float32 and int32 are supported`);
      }
      out.set(w.name, { shape: w.shape.slice(), data });
      off += n * elem;
    }
  }
  if (off !== bytes.byteLength) bad(source, `weights manifest describes ${off} bytes, the weights file has ${bytes.byteLength}`);
  return out;
}

/** 'name:0' and '^name' (control edges) -> 'name'. */
const tensorName = (input: string): string => input.replace(/^\^/, '').replace(/:0$/, '');

/** The ops the importer understands; anything else fails at load time. */
export const TFJS_SUPPORTED_OPS: readonly string[] = [
  'Const', 'Placeholder', 'Identity', '_FusedConv2D', 'Conv2D', 'DepthwiseConv2dNative', 'AddV2', 'Add', 'BiasAdd',
  'Relu', 'Prelu', 'Pad', 'MaxPool', 'Sigmoid', 'Reshape', 'Mul',
];

/**
 * Parses a TF.js graph model. `weightData` is the concatenation of the manifest's weight files in
 * order. The graph is not optimised; run optimizeGraph on it (it fuses the activations and
 * residual adds the converter left separate).
 */
export function readTfjsGraphModel(json: TfjsModelJson, weightData: Uint8Array, opts: ReadTfjsOptions = {}): TfjsImport {
  const source = opts.source ?? 'model.json';
  if (!json || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.modelTopology.node)) {
    bad(source, 'no modelTopology.node list: not a TF.js graph model');
  }
  const defs = json.modelTopology.node;
  const byName = new Map<string, TfjsNodeDef>();
  for (const d of defs) byName.set(d.name, d);
  // Unknown ops fail before anything else, with every offending op named.
  const unknown = [...new Set(defs.map((d) => d.op).filter((op) => !TFJS_SUPPORTED_OPS.includes(op)))];
  if (unknown.length) unsupported(source, `op${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} not supported by cosface`);

  const weights = decodeTfjsWeights(json, weightData, source);
  const placeholders = defs.filter((d) => d.op === 'Placeholder');
  if (placeholders.length !== 1) unsupported(source, `expected one input (Placeholder), found ${placeholders.length}`);
  const inputDef = placeholders[0]!;
  const inDims = (inputDef.attr?.shape?.shape?.dim ?? []).map((d) => Number(d.size));
  if (inDims.length !== 4 || inDims.slice(1).some((d) => !(d > 0))) unsupported(source, `input ${inputDef.name} has shape [${inDims}]; an NHWC image input of fixed size is required`);

  let outputNames = opts.outputs;
  if (!outputNames) {
    const used = new Set(defs.flatMap((d) => (d.input ?? []).map(tensorName)));
    outputNames = defs.filter((d) => d.op === 'Identity' && !used.has(d.name)).map((d) => d.name).sort();
  }
  if (outputNames.length === 0) bad(source, 'no outputs');
  for (const o of outputNames) if (!byName.has(o)) bad(source, `output ${o} is not a node of the model`);

  // Keep only nodes the outputs depend on, in a topological order (depth-first from the outputs).
  const order: TfjsNodeDef[] = [];
  const state = new Map<string, 1 | 2>();
  const visit = (name: string): void => {
    const st = state.get(name);
    if (st === 2) return;
    if (st === 1) bad(source, `cycle through node ${name}`);
    const d = byName.get(name) ?? bad(source, `node input ${name} does not exist`);
    state.set(name, 1);
    for (const i of d.input ?? []) visit(tensorName(i));
    state.set(name, 2);
    order.push(d);
  };
  for (const o of outputNames) visit(o);

  const inputShape = inDims.slice(1);
  const shapes = new Map<string, number[]>([[inputDef.name, inputShape]]);
  const nodes: GraphNode[] = [];
  // Identity and other no-ops: a tensor name that stands for another.
  const alias = new Map<string, string>();
  const resolve = (t: string): string => {
    let n = tensorName(t);
    while (alias.has(n)) n = alias.get(n)!;
    return n;
  };
  const constOf = (t: string | undefined): ConstTensor | undefined => (t === undefined ? undefined : weights.get(resolve(t)));
  const shapeOf = (t: string, who: string): number[] => shapes.get(resolve(t)) ?? bad(source, `${who}: input ${t} has no known shape`);
  const push = (node: GraphNode, shape: number[]): void => {
    nodes.push(node);
    shapes.set(node.output, shape);
  };

  for (const d of order) {
    const ins = (d.input ?? []).filter((i) => !i.startsWith('^'));
    const who = `${d.op} ${d.name}`;
    const attr = d.attr ?? {};
    switch (d.op) {
      case 'Const':
        if (!weights.has(d.name)) unsupported(source, `constant ${d.name} is not in the weights manifest (inline constants are not supported)`);
        break;
      case 'Placeholder':
        break;
      case 'Identity':
        alias.set(d.name, resolve(ins[0] ?? bad(source, `${who}: no input`)));
        break;
      case '_FusedConv2D':
      case 'Conv2D': {
        const x = resolve(ins[0]!);
        const xs = shapeOf(x, who);
        const f = constOf(ins[1]) ?? unsupported(source, `${who}: the filter must be a constant`);
        const fusedOps = (attr.fused_ops?.list?.s ?? []).map(decodeAttrString);
        let bias: Float32Array | undefined;
        let activation: Activation = 'none';
        let alpha: Float32Array | undefined;
        let argIdx = 2;
        for (const fo of fusedOps) {
          if (fo === 'BiasAdd') {
            const b = constOf(ins[argIdx++]) ?? unsupported(source, `${who}: the bias must be a constant`);
            bias = Float32Array.from(b.data);
          } else if (fo === 'Relu') activation = 'relu';
          else if (fo === 'Prelu') {
            activation = 'prelu';
            const a = constOf(ins[argIdx++]) ?? unsupported(source, `${who}: the PReLU slope must be a constant`);
            alpha = Float32Array.from(a.data);
          } else unsupported(source, `${who}: fused op ${fo} is not supported (fused_ops: ${fusedOps.join(', ')})`);
        }
        const [kh, kw, inC, outC] = f.shape as [number, number, number, number];
        if (f.shape.length !== 4 || inC !== xs[2]) bad(source, `${who}: filter [${f.shape}] does not fit input [${xs}]`);
        checkDilations(attr, who, source);
        const [sh, sw] = strides(attr, who, source);
        const pads = paddingOf(attr, xs, kh, kw, sh, sw, who, source);
        // TF filters are HWIO; the engine's conv2d filter is OHWI.
        const filter = new Float32Array(f.data.length);
        for (let o = 0; o < outC; o++) for (let k = 0; k < kh * kw; k++) for (let c = 0; c < inC; c++) filter[(o * kh * kw + k) * inC + c] = f.data[(k * inC + c) * outC + o]!;
        if (alpha && alpha.length !== outC) alpha = broadcast(alpha, outC, `${who}: PReLU slope`, source);
        const node: GraphNode = {
          op: 'conv2d', name: d.name, inputs: [x], output: d.name, filter, bias: bias ?? new Float32Array(outC),
          kh, kw, inC, outC, strideH: sh, strideW: sw, pads, activation, ...(alpha ? { alpha } : {}),
        };
        push(node, [convOutSize(xs[0]!, kh, sh, pads.top, pads.bottom), convOutSize(xs[1]!, kw, sw, pads.left, pads.right), outC]);
        break;
      }
      case 'DepthwiseConv2dNative': {
        const x = resolve(ins[0]!);
        const xs = shapeOf(x, who);
        const f = constOf(ins[1]) ?? unsupported(source, `${who}: the filter must be a constant`);
        const [kh, kw, channels, mult] = f.shape as [number, number, number, number];
        if (mult !== 1) unsupported(source, `${who}: depth multiplier ${mult} (only 1 is supported)`);
        if (channels !== xs[2]) bad(source, `${who}: filter [${f.shape}] does not fit input [${xs}]`);
        checkDilations(attr, who, source);
        const [sh, sw] = strides(attr, who, source);
        const pads = paddingOf(attr, xs, kh, kw, sh, sw, who, source);
        // [kh, kw, C, 1] is already the engine's [kh, kw, C] layout.
        push(
          { op: 'depthwiseConv2d', name: d.name, inputs: [x], output: d.name, filter: Float32Array.from(f.data), bias: new Float32Array(channels), kh, kw, channels, strideH: sh, strideW: sw, pads, activation: 'none' },
          [convOutSize(xs[0]!, kh, sh, pads.top, pads.bottom), convOutSize(xs[1]!, kw, sw, pads.left, pads.right), channels],
        );
        break;
      }
      case 'AddV2':
      case 'Add':
      case 'BiasAdd':
      case 'Mul': {
        const [a, b] = [ins[0]!, ins[1] ?? bad(source, `${who}: missing second input`)];
        const ca = constOf(a);
        const cb = constOf(b);
        if (ca && cb) unsupported(source, `${who}: both inputs are constants`);
        if (!ca && !cb) {
          const sa = shapeOf(a, who);
          const sb = shapeOf(b, who);
          if (sa.join() !== sb.join()) unsupported(source, `${who}: broadcasting [${sa}] with [${sb}] is not supported`);
          if (d.op === 'Mul') push({ op: 'mul', name: d.name, inputs: [resolve(a), resolve(b)], output: d.name }, sa);
          else push({ op: 'add', name: d.name, inputs: [resolve(a), resolve(b)], output: d.name, activation: 'none' }, sa);
          break;
        }
        const v = resolve(ca ? b : a);
        const vs = shapeOf(v, who);
        const C = vs[vs.length - 1]!;
        const c = broadcast(Float32Array.from((ca ?? cb)!.data), C, who, source);
        if (d.op === 'Mul') push({ op: 'affine', name: d.name, inputs: [v], output: d.name, scale: c, shift: new Float32Array(C) }, vs);
        else push({ op: 'affine', name: d.name, inputs: [v], output: d.name, scale: new Float32Array(C).fill(1), shift: c }, vs);
        break;
      }
      case 'Relu': {
        const x = resolve(ins[0]!);
        push({ op: 'activation', name: d.name, inputs: [x], output: d.name, activation: 'relu' }, shapeOf(x, who));
        break;
      }
      case 'Prelu': {
        const x = resolve(ins[0]!);
        const xs = shapeOf(x, who);
        const a = constOf(ins[1]) ?? unsupported(source, `${who}: the slope must be a constant`);
        const alpha = broadcast(Float32Array.from(a.data), xs[xs.length - 1]!, who, source);
        push({ op: 'activation', name: d.name, inputs: [x], output: d.name, activation: 'prelu', alpha }, xs);
        break;
      }
      case 'Sigmoid': {
        const x = resolve(ins[0]!);
        push({ op: 'sigmoid', name: d.name, inputs: [x], output: d.name }, shapeOf(x, who));
        break;
      }
      case 'Pad': {
        const x = resolve(ins[0]!);
        const xs = shapeOf(x, who);
        const p = constOf(ins[1]);
        if (!p || !(p.data instanceof Int32Array) || p.data.length !== 8) unsupported(source, `${who}: paddings must be a constant [4, 2] int32 tensor`);
        const [nb, na, t, bo, l, r, cb, ca] = Array.from(p.data) as [number, number, number, number, number, number, number, number];
        if (nb || na) unsupported(source, `${who}: padding the batch dimension is not supported`);
        if (xs.length !== 3) unsupported(source, `${who}: only [N, H, W, C] tensors can be padded`);
        let cur = x;
        let curShape = xs;
        const spatial = t || bo || l || r;
        const channel = cb || ca;
        if (spatial) {
          const out = channel ? `${d.name}/spatial` : d.name;
          curShape = [xs[0]! + t + bo, xs[1]! + l + r, xs[2]!];
          push({ op: 'pad', name: out, inputs: [cur], output: out, pads: { top: t, bottom: bo, left: l, right: r } }, curShape);
          cur = out;
        }
        if (channel) {
          curShape = [curShape[0]!, curShape[1]!, curShape[2]! + cb + ca];
          push({ op: 'padChannels', name: d.name, inputs: [cur], output: d.name, before: cb, after: ca }, curShape);
          cur = d.name;
        }
        if (!spatial && !channel) alias.set(d.name, x);
        break;
      }
      case 'MaxPool': {
        const x = resolve(ins[0]!);
        const xs = shapeOf(x, who);
        const k = intList(attr.ksize);
        if (k.length !== 4 || k[0] !== 1 || k[3] !== 1) unsupported(source, `${who}: ksize [${k}] (pooling over batch or channels is not supported)`);
        const [sh, sw] = strides(attr, who, source);
        const kh = k[1]!;
        const kw = k[2]!;
        const pads = paddingOf(attr, xs, kh, kw, sh, sw, who, source);
        push({ op: 'maxPool2d', name: d.name, inputs: [x], output: d.name, kh, kw, strideH: sh, strideW: sw, pads },
          [convOutSize(xs[0]!, kh, sh, pads.top, pads.bottom), convOutSize(xs[1]!, kw, sw, pads.left, pads.right), xs[2]!]);
        break;
      }
      case 'Reshape': {
        const x = resolve(ins[0]!);
        const xs = shapeOf(x, who);
        const s = constOf(ins[1]);
        if (!s || !(s.data instanceof Int32Array)) unsupported(source, `${who}: the new shape must be a constant int32 tensor`);
        // The first dimension is the batch (1 or -1 in these files); the rest is per sample.
        const target = Array.from(s.data).slice(1);
        const known = numel(target.filter((v) => v > 0));
        const shape = target.map((v) => (v > 0 ? v : numel(xs) / known));
        if (numel(shape) !== numel(xs) || shape.some((v) => !Number.isInteger(v))) unsupported(source, `${who}: cannot reshape [${xs}] to [${Array.from(s.data)}] per sample`);
        push({ op: 'reshape', name: d.name, inputs: [x], output: d.name, shape }, shape);
        break;
      }
      default:
        unsupported(source, `op ${d.op} (node ${d.name}) is not supported by cosface`);
    }
  }

  const outTensors = outputNames.map((o) => resolve(o));
  for (const [i, t] of outTensors.entries()) if (!shapes.has(t)) bad(source, `output ${outputNames[i]} is not computed from the input`);
  const slices: TfjsOutputSlice[] = [];
  let offset = 0;
  for (const [i, t] of outTensors.entries()) {
    const shape = shapes.get(t)!;
    slices.push({ name: outputNames[i]!, shape, offset, size: numel(shape) });
    offset += numel(shape);
  }
  let output: { name: string; shape: number[] };
  if (outTensors.length === 1) {
    output = { name: outTensors[0]!, shape: shapes.get(outTensors[0]!)! };
  } else {
    const name = 'outputs/concat';
    nodes.push({ op: 'concat', name, inputs: outTensors, output: name });
    shapes.set(name, [offset]);
    output = { name, shape: [offset] };
  }
  return {
    graph: { source: `tfjs:${source}`, input: { name: inputDef.name, shape: inputShape }, output, nodes, shapes },
    outputs: slices,
  };
}

function checkDilations(attr: Record<string, TfjsAttr>, who: string, source: string): void {
  const d = intList(attr.dilations);
  if (d.some((v) => v !== 1)) unsupported(source, `${who}: dilations [${d}] (only 1 is supported)`);
  const fmt = decodeAttrString(attr.data_format?.s);
  if (fmt && fmt !== 'NHWC') unsupported(source, `${who}: data_format ${fmt} (only NHWC is supported)`);
}

function strides(attr: Record<string, TfjsAttr>, who: string, source: string): [number, number] {
  const s = intList(attr.strides);
  if (s.length === 0) return [1, 1];
  if (s.length !== 4 || s[0] !== 1 || s[3] !== 1) unsupported(source, `${who}: strides [${s}]`);
  return [s[1]!, s[2]!];
}

function paddingOf(attr: Record<string, TfjsAttr>, xs: number[], kh: number, kw: number, sh: number, sw: number, who: string, source: string): Pads {
  const p = decodeAttrString(attr.padding?.s);
  if (p === 'SAME') return samePads(xs[0]!, xs[1]!, kh, kw, sh, sw);
  if (p === 'VALID' || p === '') return { ...noPads };
  if (p === 'EXPLICIT') {
    const e = intList(attr.explicit_paddings);
    if (e.length !== 8 || e[0] || e[1] || e[6] || e[7]) unsupported(source, `${who}: explicit paddings [${e}]`);
    return { top: e[2]!, bottom: e[3]!, left: e[4]!, right: e[5]! };
  }
  return unsupported(source, `${who}: padding ${p}`);
}

function broadcast(c: Float32Array, channels: number, who: string, source: string): Float32Array {
  if (c.length === channels) return c;
  if (c.length === 1) return new Float32Array(channels).fill(c[0]!);
  return unsupported(source, `${who}: constant of ${c.length} values does not broadcast over ${channels} channels`);
}

/** Reads NAME.json and the weight files it names (next to it) from disk. */
export async function loadTfjsGraphModel(jsonPath: string, opts: ReadTfjsOptions = {}): Promise<TfjsImport> {
  const { readFile } = await import('node:fs/promises');
  const { dirname, join, basename } = await import('node:path');
  let json: TfjsModelJson;
  try {
    json = JSON.parse(await readFile(jsonPath, 'utf8')) as TfjsModelJson;
  } catch (e) {
    throw new CosfaceError('BAD_MODEL', `TF.js model ${jsonPath}: cannot read model.json (${(e as Error).message})`, { cause: e });
  }
  const parts: Uint8Array[] = [];
  for (const g of json.weightsManifest ?? []) for (const p of g.paths ?? []) parts.push(await readFile(join(dirname(jsonPath), p)));
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const weights = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    weights.set(p, off);
    off += p.byteLength;
  }
  return readTfjsGraphModel(json, weights, { source: basename(jsonPath), ...opts });
}
