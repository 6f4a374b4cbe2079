// A user's ONNX model made into the benchmark reference of the graph we import from it: the same
// file, weights untouched, with the engine's input and output contract around it. In front, a
// Transpose takes NHWC [N, H, W, C] (what the engines are fed) to the model's NCHW input; behind,
// an LpNormalization gives the unit vectors the embedder returns. onnxruntime then runs exactly
// the model the user brought, not our re-export of it.
import onnxProto from 'onnx-proto';
import { CosfaceError } from '../errors.js';
import type { Graph } from '../graph/ir.js';

const { onnx } = onnxProto;

/**
 * Wraps `model` (ONNX bytes) for a graph imported from it (`graph.input.shape` is [H, W, C]).
 * `l2normalize`: append the L2 normalisation (when the graph had appendL2Normalize applied).
 */
export function wrapOnnxForReference(model: Uint8Array, graph: Graph, l2normalize: boolean): Uint8Array {
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
  const nodes = [...(g.node ?? [])];
  const batch = { dimParam: 'N' };
  if (isNchw) {
    const nhwc = `${input.name}/nhwc`;
    nodes.unshift({ opType: 'Transpose', name: `${input.name}/to_nchw`, input: [nhwc], output: [input.name], attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [0, 3, 1, 2] }] });
    g.input = [
      ...(g.input ?? []).filter((i) => i !== input),
      onnx.ValueInfoProto.create({ name: nhwc, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [batch, { dimValue: h }, { dimValue: w }, { dimValue: c }] } } } }),
    ];
  }
  if (l2normalize) {
    const normalised = `${output.name}/l2normalize`;
    nodes.push({ opType: 'LpNormalization', name: normalised, input: [output.name], output: [normalised], attribute: [
      { name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 },
      { name: 'p', type: onnx.AttributeProto.AttributeType.INT, i: 2 },
    ] });
    g.output = [onnx.ValueInfoProto.create({ name: normalised, type: output.type })];
  }
  g.node = nodes.map((n) => onnx.NodeProto.create(n));
  return onnx.ModelProto.encode(m).finish();
}
