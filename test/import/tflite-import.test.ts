// TFLite import: the vendored MobileFaceNet reads into the graph IR and the fusion passes keep
// its function; broken files and unknown ops fail at load time with clear errors.
import { readFileSync } from 'node:fs';
import * as flatbuffers from 'flatbuffers';
import { describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { graphMacs } from '../../src/graph/ir.js';
import { appendL2Normalize, optimizeGraph } from '../../src/graph/passes.js';
import { refL2Normalize, runReference } from '../../src/graph/reference.js';
import { Buffer as TfBuffer, Model, Operator, OperatorCode, SubGraph, Tensor, TensorType } from '../../src/import/tflite/generated/tflite_generated.js';
import { readTflite } from '../../src/import/tflite/read-tflite.js';
import { loadAlignedFixtures, maxAbsDiff, modelPath } from '../helpers/fixtures.js';

const bytes = readFileSync(modelPath);

/** A one-op TFLite model built with the FlatBuffers builder: input [1,4] -> op(code) -> output. */
function oneOpModel(builtinCode: number): Uint8Array {
  const b = new flatbuffers.Builder(1024);
  const tensor = (name: string) => {
    const n = b.createString(name);
    const shape = Tensor.createShapeVector(b, [1, 4]);
    Tensor.startTensor(b);
    Tensor.addShape(b, shape);
    Tensor.addType(b, TensorType.FLOAT32);
    Tensor.addBuffer(b, 0);
    Tensor.addName(b, n);
    return Tensor.endTensor(b);
  };
  const tensors = SubGraph.createTensorsVector(b, [tensor('in'), tensor('out')]);
  const opIn = Operator.createInputsVector(b, [0]);
  const opOut = Operator.createOutputsVector(b, [1]);
  Operator.startOperator(b);
  Operator.addOpcodeIndex(b, 0);
  Operator.addInputs(b, opIn);
  Operator.addOutputs(b, opOut);
  const op = Operator.endOperator(b);
  const ops = SubGraph.createOperatorsVector(b, [op]);
  const sgIn = SubGraph.createInputsVector(b, [0]);
  const sgOut = SubGraph.createOutputsVector(b, [1]);
  const sg = SubGraph.createSubGraph(b, tensors, sgIn, sgOut, ops, 0);
  OperatorCode.startOperatorCode(b);
  OperatorCode.addDeprecatedBuiltinCode(b, builtinCode);
  OperatorCode.addBuiltinCode(b, builtinCode);
  const code = OperatorCode.endOperatorCode(b);
  TfBuffer.startBuffer(b);
  const emptyBuffer = TfBuffer.endBuffer(b);
  const model = Model.createModel(b, 3, Model.createOperatorCodesVector(b, [code]), Model.createSubgraphsVector(b, [sg]), 0, Model.createBuffersVector(b, [emptyBuffer]));
  Model.finishModelBuffer(b, model);
  return b.asUint8Array();
}

describe('TFLite import', () => {
  it('reads MobileFaceNet: 213 ops, [112,112,3] -> [128], 0.221 G multiply-adds', () => {
    const g = readTflite(bytes, 'mobilefacenet-arcface.tflite');
    expect(g.nodes.length).toBe(213);
    expect(g.input.shape).toEqual([112, 112, 3]);
    expect(g.output.shape).toEqual([128]);
    expect(graphMacs(g)).toBe(220_965_376);
  });

  it('fuses PReLU, padding, input normalisation and residual adds into 50 compute kernels', () => {
    const g = readTflite(bytes);
    const report = optimizeGraph(g);
    expect(report).toEqual({ preluFused: 33, padsFolded: 17, affinesFolded: 1, activationsFused: 33, residualsFused: 12 });
    expect(g.nodes.length).toBe(50);
    expect(new Set(g.nodes.map((n) => n.op))).toEqual(new Set(['conv2d', 'depthwiseConv2d', 'fullyConnected']));
    const first = g.nodes[0]!;
    expect(first.op === 'conv2d' && Array.from(first.padValue ?? [])).toEqual([127.5, 127.5, 127.5]);
  });

  it('the optimised graph computes what the imported one does, on a real face', async () => {
    const fx = await loadAlignedFixtures();
    const crop = fx.crops.subarray(0, 112 * 112 * 3);
    const raw = readTflite(bytes);
    const opt = readTflite(bytes);
    optimizeGraph(opt);
    appendL2Normalize(opt);
    const a = refL2Normalize(runReference(raw, crop, 1));
    const b = runReference(opt, crop, 1);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(b, fx.reference.subarray(0, 128))).toBeLessThanOrEqual(1e-5);
  });

  it('a truncated file fails with BAD_MODEL wherever it is cut', () => {
    for (const n of [0, 7, 100, 100_000, 2_000_000, bytes.length - 100, bytes.length - 1]) {
      const err = (() => { try { readTflite(bytes.subarray(0, n)); return null; } catch (e) { return e; } })();
      expect(isCosfaceError(err, 'BAD_MODEL'), `cut at ${n}: ${String(err)}`).toBe(true);
    }
  });

  it('a file that is not a model, and one with a corrupted root offset, fail with BAD_MODEL', () => {
    expect(() => readTflite(new TextEncoder().encode('{"not": "a model at all"}'))).toThrow(/TFL3/);
    const corrupt = Uint8Array.from(bytes);
    new DataView(corrupt.buffer).setUint32(0, 0x7ffffff0, true);
    const err = (() => { try { readTflite(corrupt); return null; } catch (e) { return e; } })();
    expect(isCosfaceError(err, 'BAD_MODEL')).toBe(true);
  });

  it('an unsupported op fails at load time with its name', () => {
    const softmax = 25;
    const err = (() => { try { readTflite(oneOpModel(softmax), 'softmax.tflite'); return null; } catch (e) { return e; } })();
    expect(isCosfaceError(err, 'UNSUPPORTED_OP')).toBe(true);
    expect((err as Error).message).toContain('SOFTMAX');
  });

  it('a supported one-op model built the same way loads (the builder above makes valid files)', () => {
    const relu = 19;
    const g = readTflite(oneOpModel(relu));
    expect(g.nodes.map((n) => n.op)).toEqual(['activation']);
  });
});
