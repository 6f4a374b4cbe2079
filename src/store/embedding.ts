// Checks and normalises embeddings at the store boundary, and converts them to and from DB blobs.
import { CosfaceError } from '../errors.js';

/** Below this norm a vector carries no direction worth trusting (real embeddings have norms ~1-30). */
const MIN_NORM = 1e-6;

/**
 * Returns a unit-length copy of `v`, or throws. Policy: any finite, non-zero vector of the right
 * length is accepted and L2-normalised, because cosine similarity ignores scale and models differ in
 * whether their graph ends in a normalisation (the raw MobileFaceNet output does not). Rejected:
 * wrong length (DIMENSION_MISMATCH), NaN/Infinity or a (near-)zero vector (BAD_INPUT).
 */
export function toUnitVector(v: ArrayLike<number>, dimension: number, what = 'embedding'): Float32Array {
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<number>).length !== 'number') {
    throw new CosfaceError('BAD_INPUT', `${what} must be a Float32Array or number[]`);
  }
  if (v.length !== dimension) {
    throw new CosfaceError(
      'DIMENSION_MISMATCH',
      `${what} has ${v.length} values, the gallery expects ${dimension}`,
    );
  }
  let sq = 0;
  for (let i = 0; i < dimension; i++) {
    const x = v[i]!;
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new CosfaceError('BAD_INPUT', `${what}[${i}] is ${String(x)}, not a finite number`);
    }
    sq += x * x;
  }
  const norm = Math.sqrt(sq);
  if (!(norm >= MIN_NORM)) {
    throw new CosfaceError('BAD_INPUT', `${what} has norm ${norm}: a zero vector has no direction`);
  }
  const out = new Float32Array(dimension);
  for (let i = 0; i < dimension; i++) out[i] = v[i]! / norm;
  return out;
}

/** Float32 little-endian bytes, the faces.embedding column format. */
export function embeddingToBlob(v: Float32Array): Buffer {
  const b = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) b.writeFloatLE(v[i]!, i * 4);
  return b;
}

export function blobToEmbedding(b: Uint8Array, into?: Float32Array, offset = 0): Float32Array {
  const n = b.byteLength >>> 2;
  const out = into ?? new Float32Array(n);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < n; i++) out[offset + i] = view.getFloat32(i * 4, true);
  return out;
}

export function dot(a: Float32Array, b: Float32Array, bOffset = 0): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[bOffset + i]!;
  return s;
}
