// The data side of `cosface eval cluster`: a labelled folder (one sub-folder per person, e.g.
// lfw-dev/lfw/<Name>/<Name>_NNNN.jpg) -> every face of every image through the pipeline, with the
// face nearest the image centre marked as the one that is scored. Images without a detected face
// get LFW's fallback (a crop on the mean landmarks, as `eval lfw` does) so every image is scored.
// The result can be cached in a JSON file so clustering experiments need not re-embed.
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { CosfaceError } from '../errors.js';
import type { FacePipeline } from '../pipeline/face-pipeline.js';
import { decodeImage } from '../pipeline/decode.js';
import { centralFace, embedLfwImages, type LfwImageEmbedding } from './lfw.js';
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

const IMAGE_EXT = /\.(jpe?g|png|webp)$/i;

/**
 * Lists the labelled images: `<data>/lfw/<person>/*` when `<data>/lfw` exists, else
 * `<data>/<person>/*`. Sorted by path so runs are reproducible.
 */
export async function listLabelledImages(data: string): Promise<LabelledImage[]> {
  if (!existsSync(data) || !(await stat(data)).isDirectory()) throw new CosfaceError('BAD_INPUT', `eval cluster: --data ${data} is not a folder`);
  const root = existsSync(join(data, 'lfw')) ? join(data, 'lfw') : data;
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

/**
 * Embeds every face of every image (pipeline needed only for images missing from the cache).
 * With `cache`, reads what is there and writes the complete result back.
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
    const noFace: LabelledImage[] = [];
    const known = new Map<string, LfwImageEmbedding>();
    let done = 0;
    for (const im of missing) {
      const img = await decodeImage(join(opts.data, im.rel));
      const faces = await pipeline.facesInImage(img);
      const c = centralFace(faces, img.width, img.height);
      if (c) {
        cached.set(im.rel, { ...im, source: 'face', central: faces.indexOf(c), faces: faces.map((f) => ({ box: f.box, embedding: Float32Array.from(f.embedding) })) });
        known.set(im.rel, { embedding: Float32Array.from(c.embedding), source: 'face', landmarks: c.landmarks as Point[], width: img.width, height: img.height });
      } else {
        noFace.push(im);
      }
      opts.onProgress?.(++done, missing.length);
    }
    if (noFace.length > 0) {
      // The fallback crop sits on the mean landmarks of the faces detected in this run.
      const fb = await embedLfwImages(pipeline, opts.data, noFace.map((m) => m.rel), undefined, known);
      for (const im of noFace) {
        const e = fb.get(im.rel)!;
        cached.set(im.rel, { ...im, source: 'fallback', central: 0, faces: [{ box: [0, 0, e.width, e.height], embedding: e.embedding }] });
      }
    }
  }
  const out = opts.images.map((im) => cached.get(im.rel)!);
  if (opts.cache && missing.length > 0) await writeCache(opts.cache, out);
  return out;
}
