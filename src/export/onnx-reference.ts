// A user's ONNX model made into the benchmark reference of the graph we import from it: the same
// file, weights untouched, with the engine's input and output contract around it. In front, a
// Transpose takes NHWC [N, H, W, C] (what the engines are fed) to the model's NCHW input; behind,
// an LpNormalization gives the unit vectors the embedder returns. onnxruntime then runs exactly
// the model the user brought, not our re-export of it.
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { CosfaceError } from '../errors.js';
import type { Graph } from '../graph/ir.js';

const { onnx } = onnxProto;

/** Pixel preprocessing the engine applies from model metadata (mean/std in the model's channel order). */
export interface ReferenceInput {
  bgr: boolean;
  mean: number[];
  std: number[];
}

/**
 * Wraps `model` (ONNX bytes) for a graph imported from it (`graph.input.shape` is [H, W, C]).
 * `l2normalize`: append the L2 normalisation (when the graph had appendL2Normalize applied).
 * `pre`: the channel swap and normalisation the engine applies from the model's metadata.
 */
export function wrapOnnxForReference(model: Uint8Array, graph: Graph, l2normalize: boolean, pre?: ReferenceInput): Uint8Array {
  const m = onnx.ModelProto.decode(model);
  const g = m.graph;
  const inits = new Set((g?.initializer ?? []).map((t) => t.name));
  const input = (g?.input ?? []).find((i) => i.name && !inits.has(i.name));
  const output = g?.output?.[0];
  if (!g || !input?.name || !output?.name) throw new CosfaceError('BAD_MODEL', 'ONNX reference: the model has no input or output');
  const dims = input.type?.tensorType?.shape?.dim ?? [];
  const [h, w, c] = graph.input.shape as [number, number, number];
  const value = (d: (typeof dims)[number] | undefined) => (d?.dimValue === null || d?.dimValue === undefined ? undefined : Number(d.dimValue));
  const isNchw = graph.input.shape.length === 3 && dims.length === 4 && value(dims[1]) === c && value(dims[2]) === h && value(dims[3]) === w;
  const A = onnx.AttributeProto.AttributeType;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const front: OnnxTypes.INodeProto[] = [];
  const pixels = `${input.name}/pixels`;
  let t = pixels;
  const step = (op: string, extra: string[], attribute: OnnxTypes.IAttributeProto[] = []) => {
    const out = `${input.name}/${op.toLowerCase()}`;
    front.push({ opType: op, name: out, input: [t, ...extra], output: [out], attribute });
    t = out;
  };
  const constant = (name: string, values: number[], type: number) => {
    g.initializer = [...(g.initializer ?? []), onnx.TensorProto.create({ name, dataType: type, dims: [values.length], ...(type === FLOAT ? { floatData: values } : { int64Data: values }) })];
    return name;
  };
  if (pre?.bgr) step('Gather', [constant(`${input.name}/bgr`, [2, 1, 0], onnx.TensorProto.DataType.INT64)], [{ name: 'axis', type: A.INT, i: graph.input.shape.length }]);
  if (pre && pre.mean.some((v) => v !== 0)) step('Sub', [constant(`${input.name}/mean`, pre.mean, FLOAT)]);
  if (pre && pre.std.some((v) => v !== 1)) step('Div', [constant(`${input.name}/std`, pre.std, FLOAT)]);
  if (isNchw) step('Transpose', [], [{ name: 'perm', type: A.INTS, ints: [0, 3, 1, 2] }]);
  const nodes = [...(g.node ?? [])];
  if (front.length > 0) {
    front[front.length - 1]!.output = [input.name];
    nodes.unshift(...front);
    const batch = { dimParam: 'N' };
    g.input = [
      ...(g.input ?? []).filter((i) => i !== input),
      onnx.ValueInfoProto.create({ name: pixels, type: { tensorType: { elemType: FLOAT, shape: { dim: [batch, ...graph.input.shape.map((d) => ({ dimValue: d }))] } } } }),
    ];
  }
  if (l2normalize) {
    const normalised = `${output.name}/l2normalize`;
    nodes.push({ opType: 'LpNormalization', name: normalised, input: [output.name], output: [normalised], attribute: [
      { name: 'axis', type: A.INT, i: 1 },
      { name: 'p', type: A.INT, i: 2 },
    ] });
    g.output = [onnx.ValueInfoProto.create({ name: normalised, type: output.type })];
  }
  g.node = nodes.map((n) => onnx.NodeProto.create(n));
  return onnx.ModelProto.encode(m).finish();
}
