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

/**
 * Float32 little-endian bytes, the faces.embedding column format. A Buffer where the runtime has one
 * (better-sqlite3 binds nothing else); elsewhere a Uint8Array, which those drivers bind (typed as
 * Buffer for drizzle's blob column either way).
 */
export function embeddingToBlob(v: Float32Array): Buffer {
  const out = new Uint8Array(v.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) view.setFloat32(i * 4, v[i]!, true);
  const B = (globalThis as { Buffer?: { from(b: ArrayBuffer): Buffer } }).Buffer;
  return B ? B.from(out.buffer) : (out as Buffer);
}

/** A blob as any SQLite driver returns it: Buffer or Uint8Array (better-sqlite3, bun, node:sqlite), ArrayBuffer (Durable Objects), number[]. */
export function blobBytes(b: unknown): Uint8Array {
  if (b instanceof Uint8Array) return b;
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (Array.isArray(b)) return Uint8Array.from(b as number[]);
  throw new Error(`embedding column holds ${typeof b}, not a blob`);
}

/** A faces.embedding blob (any driver's form, blobBytes) -> floats, into `into` at `offset` when given. */
export function blobToEmbedding(b: unknown, into?: Float32Array, offset = 0): Float32Array {
  const bytes = blobBytes(b);
  const n = bytes.byteLength >>> 2;
  const out = into ?? new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) out[offset + i] = view.getFloat32(i * 4, true);
  return out;
}

export function dot(a: Float32Array, b: Float32Array, bOffset = 0): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[bOffset + i]!;
  return s;
}
