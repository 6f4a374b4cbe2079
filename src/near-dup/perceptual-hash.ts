// 64-bit perceptual hashes of a photo and of a few crops of it (pHash: the signs of the lowest 8x8 DCT frequencies of a
// 32x32 grey thumbnail against their median), through sharp. Signs against a median do not change
// when the brightness or contrast of the whole picture does, so a photo made 15% darker or brighter
// hashes (nearly) the same; a thumbnail with almost no contrast (a flat, black or white picture)
// gets no hash at all, because its bits would be noise and every such picture would look alike
// (czkawka's known false positives): those photos are grouped only by identical content.
import sharp from 'sharp';
import { CosfaceError } from '../errors.js';

/** A 64-bit hash as two unsigned 32-bit halves (faster than BigInt for Hamming distances). */
export interface Hash64 {
  hi: number;
  lo: number;
}

export interface PhotoSignature {
  /** The upright size of the photo (EXIF orientation applied). */
  width: number;
  height: number;
  /** Of the whole photo; null: too flat to hash (standard deviation of the grey thumbnail below FLAT_STDDEV). */
  hash: Hash64 | null;
  /** Of the CROP_REGIONS (empty when flat). */
  crops: Hash64[];
  /** Standard deviation of the 32x32 grey thumbnail, 0..127.5. */
  contrast: number;
}

const N = 32;
const LOW = 8;
/**
 * Grey levels (of 255). A uniform colour or a black frame with sensor noise sits below 2; the
 * darkest real photos among the LFW variants (brightness -15%) stay above 20.
 */
export const FLAT_STDDEV = 4;

const COS: Float64Array = (() => {
  const c = new Float64Array(LOW * N);
  for (let u = 0; u < LOW; u++) for (let x = 0; x < N; x++) c[u * N + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N));
  return c;
})();

/** The pHash of a 32x32 grey thumbnail (row-major), or null when it is flat. */
export function hashThumbnail(grey: ArrayLike<number>): { hash: Hash64 | null; contrast: number } {
  if (grey.length !== N * N) throw new CosfaceError('BAD_INPUT', `hashThumbnail: expected ${N * N} grey values, got ${grey.length}`);
  let mean = 0;
  for (let i = 0; i < N * N; i++) mean += grey[i]!;
  mean /= N * N;
  let varSum = 0;
  for (let i = 0; i < N * N; i++) varSum += (grey[i]! - mean) ** 2;
  const contrast = Math.sqrt(varSum / (N * N));
  if (contrast < FLAT_STDDEV) return { hash: null, contrast };
  // Separable DCT-II of the lowest LOW x LOW frequencies (scale factors do not change the signs).
  const rows = new Float64Array(N * LOW); // rows[y * LOW + u] = sum_x g[y][x] cos(u, x)
  for (let y = 0; y < N; y++) {
    for (let u = 0; u < LOW; u++) {
      let s = 0;
      for (let x = 0; x < N; x++) s += (grey[y * N + x]! - mean) * COS[u * N + x]!;
      rows[y * LOW + u] = s;
    }
  }
  const coef = new Float64Array(LOW * LOW); // coef[v * LOW + u]
  for (let v = 0; v < LOW; v++) {
    for (let u = 0; u < LOW; u++) {
      let s = 0;
      for (let y = 0; y < N; y++) s += rows[y * LOW + u]! * COS[v * N + y]!;
      coef[v * LOW + u] = s;
    }
  }
  // The median of the 63 AC coefficients (the DC term is the mean, always ~0 here).
  const ac = Array.from(coef.subarray(1)).sort((a, b) => a - b);
  const median = ac[ac.length >> 1]!;
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < 64; i++) {
    const bit = i === 0 ? 0 : coef[i]! > median ? 1 : 0;
    if (i < 32) hi = (hi | (bit << (31 - i))) >>> 0;
    else lo = (lo | (bit << (63 - i))) >>> 0;
  }
  return { hash: { hi, lo }, contrast };
}

/**
 * The regions of the photo hashed besides the whole: its four corners at 95% of the width and
 * height, and its centre at 90% (5% off every side). A copy cropped like that hashes, as a whole,
 * like the original's matching region, so small crops are found at the distance of a re-encode.
 * Fractions of the photo: [left, top, width, height].
 */
export const CROP_REGIONS: readonly [number, number, number, number][] = [
  [0, 0, 0.95, 0.95],
  [0.05, 0, 0.95, 0.95],
  [0, 0.05, 0.95, 0.95],
  [0.05, 0.05, 0.95, 0.95],
  [0.05, 0.05, 0.9, 0.9],
];

const THUMB = 128;

/** A 32x32 grey thumbnail of a region of a THUMB x THUMB grey image (box filter, fractional edges). */
function regionThumbnail(src: Uint8Array, region: readonly [number, number, number, number]): Float64Array {
  const out = new Float64Array(N * N);
  const [fx, fy, fw, fh] = region;
  const x0 = fx * THUMB;
  const y0 = fy * THUMB;
  const sx = (fw * THUMB) / N;
  const sy = (fh * THUMB) / N;
  // Each output pixel averages a 4x4 grid of bilinear samples over its footprint.
  const S = 4;
  for (let oy = 0; oy < N; oy++) {
    for (let ox = 0; ox < N; ox++) {
      let acc = 0;
      for (let j = 0; j < S; j++) {
        const y = Math.min(THUMB - 1, Math.max(0, y0 + (oy + (j + 0.5) / S) * sy - 0.5));
        const yi = Math.min(THUMB - 2, Math.floor(y));
        const ty = y - yi;
        for (let i = 0; i < S; i++) {
          const x = Math.min(THUMB - 1, Math.max(0, x0 + (ox + (i + 0.5) / S) * sx - 0.5));
          const xi = Math.min(THUMB - 2, Math.floor(x));
          const tx = x - xi;
          const a = src[yi * THUMB + xi]!;
          const b = src[yi * THUMB + xi + 1]!;
          const c = src[(yi + 1) * THUMB + xi]!;
          const d = src[(yi + 1) * THUMB + xi + 1]!;
          acc += (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
        }
      }
      out[oy * N + ox] = acc / (S * S);
    }
  }
  return out;
}

/** The hashes of a 128x128 grey thumbnail of a whole photo: the whole, then CROP_REGIONS. */
export function hashGreyThumbnail(grey128: Uint8Array): { hash: Hash64 | null; crops: Hash64[]; contrast: number } {
  if (grey128.length !== THUMB * THUMB) throw new CosfaceError('BAD_INPUT', `hashGreyThumbnail: expected ${THUMB * THUMB} grey values, got ${grey128.length}`);
  const whole = hashThumbnail(regionThumbnail(grey128, [0, 0, 1, 1]));
  if (!whole.hash) return { hash: null, crops: [], contrast: whole.contrast };
  const crops: Hash64[] = [];
  for (const r of CROP_REGIONS) {
    const h = hashThumbnail(regionThumbnail(grey128, r)).hash;
    if (h) crops.push(h);
  }
  return { hash: whole.hash, crops, contrast: whole.contrast };
}

/** Width, height and perceptual hashes of a JPEG, PNG or WebP. Fails with BAD_IMAGE. */
export async function photoSignature(bytes: Uint8Array): Promise<PhotoSignature> {
  try {
    const img = sharp(bytes, { failOn: 'truncated' });
    const meta = await img.metadata();
    const swap = (meta.orientation ?? 1) >= 5;
    const width = (swap ? meta.height : meta.width) ?? 0;
    const height = (swap ? meta.width : meta.height) ?? 0;
    // Squashed to a square: a resize keeps the same thumbnail.
    const grey = await img.rotate().removeAlpha().greyscale().resize(THUMB, THUMB, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer({ resolveWithObject: true });
    const ch = grey.info.channels;
    const g = ch === 1 ? new Uint8Array(grey.data.buffer, grey.data.byteOffset, grey.data.byteLength) : Uint8Array.from({ length: THUMB * THUMB }, (_, i) => grey.data[i * ch]!);
    return { width, height, ...hashGreyThumbnail(g) };
  } catch (e) {
    throw new CosfaceError('BAD_IMAGE', `not a decodable image (${(e as Error).message})`, { cause: e });
  }
}

/** The signature's hashes as text (16 hex digits each, the whole first), or null for a flat photo. */
export function hashesToText(sig: { hash: Hash64 | null; crops: readonly Hash64[] }): string | null {
  return sig.hash ? [sig.hash, ...sig.crops].map(hashToHex).join('') : null;
}

export function textToHashes(text: string | null): { hash: Hash64 | null; crops: Hash64[] } {
  if (text === null) return { hash: null, crops: [] };
  if (text.length % 16 !== 0 || text.length === 0) throw new CosfaceError('BAD_INPUT', `not a list of 64-bit hashes: ${JSON.stringify(text.slice(0, 40))}`);
  const all: Hash64[] = [];
  for (let i = 0; i < text.length; i += 16) all.push(hexToHash(text.slice(i, i + 16)));
  return { hash: all[0]!, crops: all.slice(1) };
}

export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export function hamming(a: Hash64, b: Hash64): number {
  return popcount32((a.hi ^ b.hi) >>> 0) + popcount32((a.lo ^ b.lo) >>> 0);
}

export function hashToHex(h: Hash64): string {
  return h.hi.toString(16).padStart(8, '0') + h.lo.toString(16).padStart(8, '0');
}

export function hexToHash(s: string): Hash64 {
  if (!/^[0-9a-f]{16}$/.test(s)) throw new CosfaceError('BAD_INPUT', `not a 64-bit hash in hex: ${JSON.stringify(s)}`);
  return { hi: parseInt(s.slice(0, 8), 16) >>> 0, lo: parseInt(s.slice(8), 16) >>> 0 };
}
