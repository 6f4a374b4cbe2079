// ONNX TensorProto / AttributeProto -> plain JS values: float32 arrays for weights, numbers for
// integer tensors (shapes, pads, axes). Every size is checked against the declared dims, so a
// corrupt file fails here with BAD_MODEL rather than as wrong numbers later.
import type { onnx as OnnxTypes } from 'onnx-proto';
import { CosfaceError } from '../../errors.js';

/** A constant known at load time (an initializer, a Constant node, or a folded shape computation). */
export interface ConstTensor {
  dims: number[];
  /** Float data (float32, float16 and double tensors). */
  f32?: Float32Array;
  /** Integer data (int64, int32, ...): shapes, pads, axes. */
  ints?: number[];
}

export const DataType = {
  FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11,
} as const;

/** protobufjs gives int64 fields as numbers or as Long objects (when the 'long' package is there). */
export function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function numelOf(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function bad(msg: string): never {
  throw new CosfaceError('BAD_MODEL', `ONNX model: ${msg}`);
}

/** IEEE half -> float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Copies `n` little-endian elements of `size` bytes out of rawData (which may be unaligned). */
function rawView(raw: Uint8Array, n: number, size: number, name: string): DataView {
  if (raw.byteLength !== n * size) bad(`tensor ${name}: ${raw.byteLength} bytes of raw data for ${n} elements of ${size} bytes`);
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
}

export function readTensor(t: OnnxTypes.ITensorProto): ConstTensor {
  const name = t.name ?? '?';
  const dims = (t.dims ?? []).map(toNumber);
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) bad(`tensor ${name}: bad dims [${dims}]`);
  const n = numelOf(dims);
  if (t.dataLocation === 1) {
    throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX tensor ${name} keeps its data in an external file; save the model with all tensors inside (onnx.save(model, path, save_as_external_data=False))`);
  }
  const raw = t.rawData && t.rawData.byteLength > 0 ? t.rawData : null;
  const type = t.dataType ?? 0;
  const count = (len: number) => {
    if (len !== n) bad(`tensor ${name}: ${len} values for dims [${dims}]`);
  };
  switch (type) {
    case DataType.FLOAT: {
      if (raw) {
        rawView(raw, n, 4, name);
        // An aligned copy (raw may be a Buffer view); raw data is little-endian, as is every platform Node runs on.
        return { dims, f32: new Float32Array(new Uint8Array(raw).buffer) };
      }
      count(t.floatData?.length ?? 0);
      return { dims, f32: Float32Array.from(t.floatData ?? []) };
    }
    case DataType.FLOAT16: {
      const f = new Float32Array(n);
      if (raw) {
        const dv = rawView(raw, n, 2, name);
        for (let i = 0; i < n; i++) f[i] = halfToFloat(dv.getUint16(i * 2, true));
      } else {
        count(t.int32Data?.length ?? 0);
        for (let i = 0; i < n; i++) f[i] = halfToFloat(t.int32Data![i]!);
      }
      return { dims, f32: f };
    }
    case DataType.DOUBLE: {
      if (raw) {
        const dv = rawView(raw, n, 8, name);
        const f = new Float32Array(n);
        for (let i = 0; i < n; i++) f[i] = dv.getFloat64(i * 8, true);
        return { dims, f32: f };
      }
      count(t.doubleData?.length ?? 0);
      return { dims, f32: Float32Array.from(t.doubleData ?? []) };
    }
    case DataType.INT64: {
      if (raw) {
        const dv = rawView(raw, n, 8, name);
        const v: number[] = [];
        for (let i = 0; i < n; i++) v.push(Number(dv.getBigInt64(i * 8, true)));
        return { dims, ints: v };
      }
      count(t.int64Data?.length ?? 0);
      return { dims, ints: (t.int64Data ?? []).map(toNumber) };
    }
    case DataType.INT32:
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.BOOL: {
      if (raw) {
        const size = type === DataType.INT32 ? 4 : 1;
        const dv = rawView(raw, n, size, name);
        const v: number[] = [];
        for (let i = 0; i < n; i++) v.push(size === 4 ? dv.getInt32(i * 4, true) : type === DataType.INT8 ? dv.getInt8(i) : dv.getUint8(i));
        return { dims, ints: v };
      }
      count(t.int32Data?.length ?? 0);
      return { dims, ints: [...(t.int32Data ?? [])] };
    }
    default:
      throw new CosfaceError('UNSUPPORTED_MODEL', `ONNX tensor ${name} has data type ${type}; cosface runs float32/float16 weights (quantised ONNX models are not supported)`);
  }
}

/** Attribute access by name with defaults; a wrong attribute type is BAD_MODEL. */
export class Attrs {
  private readonly map = new Map<string, OnnxTypes.IAttributeProto>();
  constructor(attrs: OnnxTypes.IAttributeProto[] | null | undefined, private readonly where: string) {
    for (const a of attrs ?? []) if (a.name) this.map.set(a.name, a);
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
  int(name: string, def: number): number {
    const a = this.map.get(name);
    return a ? toNumber(a.i) : def;
  }
  float(name: string, def: number): number {
    const a = this.map.get(name);
    return a ? (a.f ?? def) : def;
  }
  ints(name: string): number[] | undefined {
    const a = this.map.get(name);
    return a ? (a.ints ?? []).map(toNumber) : undefined;
  }
  floats(name: string): number[] | undefined {
    const a = this.map.get(name);
    return a ? [...(a.floats ?? [])] : undefined;
  }
  string(name: string, def: string): string {
    const a = this.map.get(name);
    return a?.s ? new TextDecoder().decode(a.s) : def;
  }
  tensor(name: string): OnnxTypes.ITensorProto | undefined {
    const a = this.map.get(name);
    if (a && !a.t) bad(`${this.where}: attribute ${name} is not a tensor`);
    return a?.t ?? undefined;
  }
}
