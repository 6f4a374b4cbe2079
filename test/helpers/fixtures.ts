// Loads the committed aligned-crop fixtures: 16 crops (8 people x 2) and reference embeddings.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { mulberry32 } from '../../src/random.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const alignedDir = path.join(repoRoot, 'test/fixtures/aligned');
export const modelPath = path.join(repoRoot, 'models/mobilefacenet-arcface.tflite');

export interface AlignedFixtures {
  files: string[];
  /** n x 112 x 112 x 3 float RGB 0..255, in file order. */
  crops: Float32Array;
  /** n x 128, L2-normalised reference embeddings. */
  reference: Float32Array;
}

export function normalizeRows(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += x[r * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i]! * inv;
  }
  return out;
}

export async function loadAlignedFixtures(): Promise<AlignedFixtures> {
  const meta = JSON.parse(readFileSync(path.join(alignedDir, 'embeddings.json'), 'utf8')) as { files: string[]; embeddings: Record<string, number[]> };
  const files = meta.files;
  const crops = new Float32Array(files.length * 112 * 112 * 3);
  const raw = new Float32Array(files.length * 128);
  for (let i = 0; i < files.length; i++) {
    const { data, info } = await sharp(path.join(alignedDir, files[i]!)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.width !== 112 || info.height !== 112 || info.channels !== 3) throw new Error(`fixture ${files[i]} is not 112x112 RGB`);
    crops.set(Float32Array.from(data), i * 112 * 112 * 3);
    raw.set(meta.embeddings[files[i]!]!, i * 128);
  }
  return { files, crops, reference: normalizeRows(raw, 128) };
}

/** Max |a - b| over all elements. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Max difference between the pairwise cosine similarity matrices of two row sets. */
export function maxPairwiseSimDiff(a: Float32Array, b: Float32Array, dim: number): number {
  const n = a.length / dim;
  let m = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let sa = 0;
      let sb = 0;
      for (let k = 0; k < dim; k++) {
        sa += a[i * dim + k]! * a[j * dim + k]!;
        sb += b[i * dim + k]! * b[j * dim + k]!;
      }
      m = Math.max(m, Math.abs(sa - sb));
    }
  }
  return m;
}

export { mulberry32 };

/** Deterministic pseudo-random floats in [-scale, scale) (mulberry32). */
export function randomTensor(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}
