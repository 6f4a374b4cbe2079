// The data side of `cosface eval cluster`: a labelled folder (one sub-folder per person, e.g.
// lfw-dev/lfw/<Name>/<Name>_NNNN.jpg or orl/att_faces/sN/K.pgm) -> every face of every image through the pipeline, with the
// face nearest the image centre marked as the one that is scored. Images without a detected face
// get LFW's fallback (a crop on the mean landmarks, as `eval lfw` does) so every image is scored.
// The result can be cached in a JSON file so clustering experiments need not re-embed.
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { CosfaceError } from '../errors.js';
import type { FacePipeline } from '../pipeline/face-pipeline.js';
import { decodeImage, type RgbImage } from '../pipeline/decode.js';
import { centralFace } from './lfw.js';
import { decodePgm, greyToRgb } from './orl.js';
import { alignFace } from '../pipeline/align.js';
import type { Point } from '../pipeline/align.js';

export interface LabelledImage {
  /** Path relative to the data folder. */
  rel: string;
  /** Ground-truth person (the image's folder name). */
  person: string;
}

export interface EmbeddedImage extends LabelledImage {
  /** Every face of the image (unit vectors), left to right; a fallback image has one. */
  faces: { box: [number, number, number, number]; embedding: Float32Array }[];
  /** Index into faces of the scored face (nearest the image centre). */
  central: number;
  source: 'face' | 'fallback';
}

const IMAGE_EXT = /\.(jpe?g|png|webp|pgm)$/i;

/**
 * Lists the labelled images (.jpg, .png, .webp, binary .pgm): `<data>/<person>/*`, or
 * `<data>/<only sub-folder>/<person>/*`. Sorted by path so runs are reproducible.
 */
export async function listLabelledImages(data: string): Promise<LabelledImage[]> {
  if (!existsSync(data) || !(await stat(data)).isDirectory()) throw new CosfaceError('BAD_INPUT', `eval cluster: --data ${data} is not a folder`);
  // The person folders are in <data>, or in its only sub-folder (lfw-dev/lfw, orl/att_faces).
  const subdirs = (await readdir(data, { withFileTypes: true })).filter((d) => d.isDirectory());
  const only = subdirs.length === 1 ? join(data, subdirs[0]!.name) : null;
  const root = only && (await readdir(only, { withFileTypes: true })).some((d) => d.isDirectory()) ? only : data;
  const out: LabelledImage[] = [];
  for (const person of (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
    for (const f of (await readdir(join(root, person))).sort()) {
      if (IMAGE_EXT.test(f)) out.push({ rel: relative(data, join(root, person, f)).split(sep).join('/'), person });
    }
  }
  if (out.length === 0) throw new CosfaceError('BAD_INPUT', `eval cluster: no images in ${root} (expected one folder per person)`);
  return out;
}

interface CacheFile {
  format: 'cosface-cluster-cache-1';
  images: { rel: string; person: string; central: number; source: 'face' | 'fallback'; faces: { box: [number, number, number, number]; embedding: number[] }[] }[];
}

/** Reads a cache written by embedLabelledImages; entries not in `images` are ignored. */
async function readCache(file: string): Promise<Map<string, EmbeddedImage>> {
  const out = new Map<string, EmbeddedImage>();
  if (!existsSync(file)) return out;
  let parsed: CacheFile;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as CacheFile;
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `eval cluster: cache ${file} is not valid JSON (${(e as Error).message}); delete it to re-embed`);
  }
  if (parsed.format !== 'cosface-cluster-cache-1') throw new CosfaceError('BAD_INPUT', `eval cluster: ${file} is not a cluster embedding cache`);
  for (const im of parsed.images) {
    out.set(im.rel, { rel: im.rel, person: im.person, central: im.central, source: im.source, faces: im.faces.map((f) => ({ box: f.box, embedding: Float32Array.from(f.embedding) })) });
  }
  return out;
}

async function writeCache(file: string, images: EmbeddedImage[]): Promise<void> {
  const body: CacheFile = {
    format: 'cosface-cluster-cache-1',
    images: images.map((im) => ({ rel: im.rel, person: im.person, central: im.central, source: im.source, faces: im.faces.map((f) => ({ box: f.box, embedding: Array.from(f.embedding, (v) => Math.round(v * 1e6) / 1e6) })) })),
  };
  await writeFile(file, JSON.stringify(body));
}

/** Decodes an image file; binary PGM (ORL) through the project's reader, centred on a 2x canvas as `eval orl` does. */
async function decodeLabelled(file: string): Promise<RgbImage> {
  if (/\.pgm$/i.test(file)) return greyToRgb(decodePgm(await readFile(file), file), 2);
  return decodeImage(file);
}

/**
 * Embeds every face of every image (pipeline needed only for images missing from the cache).
 * An image without a detected face gets one embedding from a crop on the mean landmarks of the
 * faces found in images of the same size (of all images when none has that size), as `eval lfw`
 * does. With `cache`, reads what is there and writes the complete result back.
 */
export async function embedLabelledImages(opts: {
  data: string;
  images: LabelledImage[];
  pipeline?: () => Promise<FacePipeline>;
  cache?: string;
  onProgress?: (done: number, total: number) => void;
}): Promise<EmbeddedImage[]> {
  const cached = opts.cache ? await readCache(opts.cache) : new Map<string, EmbeddedImage>();
  const missing = opts.images.filter((im) => !cached.has(im.rel));
  if (missing.length > 0) {
    if (!opts.pipeline) throw new CosfaceError('BAD_INPUT', `eval cluster: ${missing.length} images are not in the cache and no pipeline was given`);
    const pipeline = await opts.pipeline();
    const noFace: { im: LabelledImage; img: RgbImage }[] = [];
    const found: { landmarks: Point[]; width: number; height: number }[] = [];
    let done = 0;
    for (const im of missing) {
      const img = await decodeLabelled(join(opts.data, im.rel));
      const faces = await pipeline.facesInImage(img);
      const c = centralFace(faces, img.width, img.height);
      if (c) {
        cached.set(im.rel, { ...im, source: 'face', central: faces.indexOf(c), faces: faces.map((f) => ({ box: f.box, embedding: Float32Array.from(f.embedding) })) });
        found.push({ landmarks: c.landmarks as Point[], width: img.width, height: img.height });
      } else {
        noFace.push({ im, img });
      }
      opts.onProgress?.(++done, missing.length);
    }
    for (const { im, img } of noFace) {
      const same = found.filter((f) => f.width === img.width && f.height === img.height);
      const pool = same.length ? same : found;
      if (pool.length === 0) throw new CosfaceError('NO_FACE', `eval cluster: no face was detected in any of the ${missing.length} images`);
      // Mean landmarks, in pixels for images of this size, else relative to each image's size.
      const mean: Point[] = [0, 1, 2, 3, 4].map((k) => [0, 1].map((c) => {
        const scale = (f: { width: number; height: number }) => (same.length ? 1 : c === 0 ? img.width / f.width : img.height / f.height);
        return pool.reduce((sum, f) => sum + f.landmarks[k]![c]! * scale(f), 0) / pool.length;
      }) as Point);
      const { crop } = alignFace(img, mean);
      const embedding = Float32Array.from(await pipeline.embedAligned(crop, 1));
      cached.set(im.rel, { ...im, source: 'fallback', central: 0, faces: [{ box: [0, 0, img.width, img.height], embedding }] });
    }
  }
  const out = opts.images.map((im) => cached.get(im.rel)!);
  if (opts.cache && missing.length > 0) await writeCache(opts.cache, out);
  return out;
}
