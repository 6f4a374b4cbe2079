// The ORL / AT&T identification protocol through the store: decode the grey PGMs, find and embed
// each face with the photo pipeline, enroll shots 1-5 of every subject, identify shots 6-10
// (rank-1), and an open-set check: subjects held out of the gallery must be rejected at a
// threshold calibrated to a chosen false-accept rate.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CosfaceError } from '../errors.js';
import { alignFace, type Point } from '../pipeline/align.js';
import type { RgbImage } from '../pipeline/decode.js';
import type { Face, FacePipeline } from '../pipeline/face-pipeline.js';
import { openStore, type Store } from '../store/index.js';
import { calibrate, type Calibration, type ScoredPair } from '../store/thresholds.js';

export interface GreyImage {
  width: number;
  height: number;
  /** 8-bit grey, row-major; samples rescaled to 0..255 when the file's maxval is below 255. */
  data: Uint8Array;
}

/**
 * Decodes a binary PGM (P5, 8-bit). sharp (libvips as packaged) does not read PGM, so this is the
 * project's own reader; '#' comments in the header are skipped.
 */
export function decodePgm(bytes: Uint8Array, source = 'PGM'): GreyImage {
  const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
  let pos = 0;
  const tokens: string[] = [];
  while (tokens.length < 4) {
    while (pos < bytes.length && isSpace(bytes[pos]!)) pos++;
    if (pos >= bytes.length) throw new CosfaceError('BAD_IMAGE', `${source}: truncated PGM header`);
    if (bytes[pos] === 0x23) {
      while (pos < bytes.length && bytes[pos] !== 0x0a && bytes[pos] !== 0x0d) pos++;
      continue;
    }
    const start = pos;
    while (pos < bytes.length && !isSpace(bytes[pos]!) && bytes[pos] !== 0x23) pos++;
    tokens.push(String.fromCharCode(...bytes.subarray(start, Math.min(pos, start + 16))));
    if (tokens.length === 1 && tokens[0] !== 'P5') {
      throw new CosfaceError('BAD_IMAGE', `${source}: not a binary PGM (starts with ${JSON.stringify(tokens[0]!.slice(0, 8))}, expected P5)`);
    }
  }
  pos++; // a single whitespace byte ends the header
  const [, ws, hs, ms] = tokens as [string, string, string, string];
  const width = Number(ws);
  const height = Number(hs);
  const maxval = Number(ms);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width * height > 50_000_000) {
    throw new CosfaceError('BAD_IMAGE', `${source}: bad PGM size ${ws}x${hs}`);
  }
  if (!Number.isInteger(maxval) || maxval < 1 || maxval > 255) {
    throw new CosfaceError('BAD_IMAGE', `${source}: PGM maxval ${ms} is not supported (8-bit samples only)`);
  }
  const n = width * height;
  if (bytes.length - pos < n) throw new CosfaceError('BAD_IMAGE', `${source}: PGM data truncated (${Math.max(0, bytes.length - pos)} of ${n} bytes)`);
  const data = new Uint8Array(n);
  if (maxval === 255) data.set(bytes.subarray(pos, pos + n));
  else for (let i = 0; i < n; i++) data[i] = Math.min(255, Math.round((bytes[pos + i]! * 255) / maxval));
  return { width, height, data };
}

/**
 * Grey -> RGB (the channel replicated), centred on a canvas `pad` times as large filled with the
 * mean of the image's border pixels. ORL images are tight face crops: BlazeFace, trained on photos
 * where a face fills a fraction of the frame, finds them more reliably with context around them
 * (the models README measured this with padding 2x), and the uniform fill matches ORL's plain
 * dark background.
 */
export function greyToRgb(img: GreyImage, pad = 1): RgbImage {
  if (!(pad >= 1)) throw new CosfaceError('BAD_INPUT', `pad must be >= 1, got ${pad}`);
  const { width: w, height: h, data } = img;
  const W = Math.round(w * pad);
  const H = Math.round(h * pad);
  const ox = Math.floor((W - w) / 2);
  const oy = Math.floor((H - h) / 2);
  let sum = 0;
  let count = 0;
  for (let x = 0; x < w; x++) {
    sum += data[x]! + data[(h - 1) * w + x]!;
    count += 2;
  }
  for (let y = 1; y < h - 1; y++) {
    sum += data[y * w]! + data[y * w + w - 1]!;
    count += 2;
  }
  const fill = Math.round(sum / count);
  const out = new Uint8Array(W * H * 3).fill(fill);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = data[y * w + x]!;
      const o = ((y + oy) * W + x + ox) * 3;
      out[o] = out[o + 1] = out[o + 2] = v;
    }
  }
  return { width: W, height: H, data: out };
}

export interface OrlImage {
  /** Path as listed (relative to the data folder). */
  path: string;
  subject: string;
  /** 1..10: the image's number within its subject. */
  shot: number;
}

/**
 * The images of an ORL folder: from its identities.csv (img,identity) when there is one, else
 * from the sN/K.pgm layout (under att_faces/ or directly). Ordered by subject number, then shot.
 */
export async function listOrlImages(data: string): Promise<OrlImage[]> {
  if (!existsSync(data)) throw new CosfaceError('BAD_INPUT', `ORL: no such folder ${data}`);
  const out: OrlImage[] = [];
  const csvPath = join(data, 'identities.csv');
  if (existsSync(csvPath)) {
    const lines = (await readFile(csvPath, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    lines.forEach((line, i) => {
      const [img, subject, ...rest] = line.split(',').map((c) => c.trim());
      if (i === 0 && img === 'img') return;
      const shot = Number(/(\d+)\.[a-z]+$/i.exec(img ?? '')?.[1]);
      if (!img || !subject || rest.length > 0 || !Number.isInteger(shot)) {
        throw new CosfaceError('BAD_INPUT', `${csvPath} line ${i + 1}: expected img,identity with images named <number>.pgm, got '${line}'`);
      }
      out.push({ path: img, subject, shot });
    });
  } else {
    const { readdir } = await import('node:fs/promises');
    const root = existsSync(join(data, 'att_faces')) ? 'att_faces' : '.';
    for (const sub of await readdir(join(data, root))) {
      if (!/^s\d+$/.test(sub)) continue;
      for (const f of await readdir(join(data, root, sub))) {
        const m = /^(\d+)\.pgm$/i.exec(f);
        if (m) out.push({ path: join(root, sub, f), subject: sub, shot: Number(m[1]) });
      }
    }
  }
  if (out.length === 0) throw new CosfaceError('BAD_INPUT', `ORL: no images listed under ${data}`);
  const num = (s: string) => Number(/\d+/.exec(s)?.[0] ?? NaN);
  out.sort((a, b) => num(a.subject) - num(b.subject) || a.subject.localeCompare(b.subject) || a.shot - b.shot);
  return out;
}

/** The face a single-person photo means: the largest, the most central among faces of similar size. */
export function primaryFace(faces: readonly Face[], width: number, height: number): Face | undefined {
  if (faces.length <= 1) return faces[0];
  const area = (f: Face) => f.box[2] * f.box[3];
  const largest = Math.max(...faces.map(area));
  const off = (f: Face) => Math.hypot(f.box[0] + f.box[2] / 2 - width / 2, f.box[1] + f.box[3] / 2 - height / 2);
  // Within 20% of the largest area the size difference is detector noise: centrality decides.
  return faces.filter((f) => area(f) >= 0.8 * largest).sort((a, b) => off(a) - off(b))[0];
}

export interface OrlEmbedding {
  embedding: Float32Array;
  /** 'face': detected; 'fallback': no face found, aligned on the mean landmarks of the detected ones. */
  source: 'face' | 'fallback';
}

export interface EmbedOrlOptions {
  /** Canvas size relative to the image before detection (default 2). */
  pad?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Embeds ORL images: each padded, its primary face embedded. Images where no face is found are
 * aligned on the mean five points of the detected faces (all ORL images are 92x112 crops framed
 * alike, so this is the average crop) and still embedded, and reported.
 */
export async function embedOrlImages(pipeline: FacePipeline, data: string, images: readonly OrlImage[], o: EmbedOrlOptions = {}): Promise<Map<string, OrlEmbedding>> {
  const pad = o.pad ?? 2;
  const out = new Map<string, OrlEmbedding>();
  const found: Point[][] = [];
  const missing: { path: string; img: RgbImage }[] = [];
  let done = 0;
  for (const im of images) {
    const file = join(data, im.path);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw new CosfaceError('BAD_IMAGE', `${file}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    const rgb = greyToRgb(decodePgm(bytes, file), pad);
    const face = primaryFace(await pipeline.facesInImage(rgb), rgb.width, rgb.height);
    if (face) {
      out.set(im.path, { embedding: Float32Array.from(face.embedding), source: 'face' });
      found.push(face.landmarks as Point[]);
    } else missing.push({ path: im.path, img: rgb });
    o.onProgress?.(++done, images.length);
  }
  if (missing.length > 0) {
    if (found.length === 0) throw new CosfaceError('NO_FACE', `ORL: no face was detected in any of the ${images.length} images`);
    const mean = [0, 1, 2, 3, 4].map((k) => [0, 1].map((c) => found.reduce((s, p) => s + p[k]![c]!, 0) / found.length)) as Point[];
    for (const m of missing) {
      const { crop } = alignFace(m.img, mean);
      out.set(m.path, { embedding: Float32Array.from(await pipeline.embedAligned(crop, 1)), source: 'fallback' });
    }
  }
  return out;
}

export interface OrlProtocol {
  /** Shots enrolled per subject (default 1-5); the other shots are probes. */
  enrollShots?: readonly number[];
  /** Subjects left out of the open-set gallery: the last `holdOut` subjects (default 10 of 40). */
  holdOut?: number;
  /** Target FAR of the open-set threshold (default 1e-3). */
  far?: number;
  /** A raw threshold instead of a calibrated one. */
  threshold?: number;
  /**
   * Where the threshold comes from when no raw one is given: 'enrolled' (default) calibrates on
   * all pairs of enrolled images; a Store uses the model's stored calibration (cosface calibrate).
   */
  calibration?: 'enrolled' | { store: Store; modelId: string };
  /**
   * Where the evaluation galleries are built: a store location (a SQLite path, pglite:<dir>,
   * postgres://...); default an in-memory SQLite store. The galleries are removed afterwards.
   */
  galleryDb?: string;
  /** 'exact' (default): every probe scans the gallery exactly; 'index': through the vector index (HNSW). */
  search?: 'exact' | 'index';
}

export interface OrlOpenSet {
  holdOutSubjects: string[];
  enrolledSubjects: number;
  threshold: number;
  far: number | null;
  thresholdSource: string;
  /** Probes of held-out subjects accepted as someone (all of them are false accepts). */
  heldOutProbes: number;
  falseAccepts: number;
  falseAcceptRate: number;
  /** 1 - falseAcceptRate: held-out probes answered "not enrolled". */
  rejectionRate: number;
  /** Probes of enrolled subjects: identified correctly and accepted (detection and identification rate). */
  enrolledProbes: number;
  correctAccepts: number;
  detectionIdentificationRate: number;
  /** Calibration on enrolled pairs, when used. */
  calibration?: Pick<Calibration, 'genuinePairs' | 'impostorPairs' | 'unsupported'>;
}

export interface OrlReport {
  images: number;
  subjects: number;
  enrollShots: number[];
  noFace: { count: number; images: string[]; action: string };
  closedSet: { probes: number; rank1: number; correct: number; misses: { probe: string; subject: string; got: string; score: number }[] };
  openSet: OrlOpenSet;
  meanGenuine: number;
  meanImpostor: number;
}

const MODEL_ID = 'mobilefacenet-arcface';

/** The evaluation gallery's name in its store. */
const GALLERY = 'orl-eval';

/**
 * Enrolls the given images into a fresh gallery, one identity per subject: in memory, or in the
 * store at `p.galleryDb` (replacing an earlier evaluation gallery there). Closing the store it
 * returns removes the gallery again.
 */
async function galleryOf(images: readonly OrlImage[], emb: Map<string, OrlEmbedding>, p: OrlProtocol): Promise<Store> {
  const store = await openStore(p.galleryDb ?? ':memory:', p.search === 'index' ? { exactBelow: 0 } : {});
  try {
    await store.deleteGallery(GALLERY).catch((e: unknown) => {
      if (!(e instanceof CosfaceError && e.code === 'GALLERY_NOT_FOUND')) throw e;
    });
    await store.createGallery(GALLERY, { modelId: MODEL_ID, dimension: 128 });
    for (const s of new Set(images.map((i) => i.subject))) await store.addIdentity(GALLERY, { externalId: s });
    await store.addFaces(GALLERY, images.map((im) => ({ identity: im.subject, face: { embedding: emb.get(im.path)!.embedding, photoPath: im.path } })));
  } catch (e) {
    await store.close();
    throw e;
  }
  const close = store.close.bind(store);
  return Object.assign(store, {
    close: async () => {
      if (p.galleryDb) await store.deleteGallery(GALLERY).catch(() => undefined);
      await close();
    },
  });
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Every pair of the given images, scored, labelled same/different subject. */
export function allPairs(images: readonly OrlImage[], emb: Map<string, OrlEmbedding>): ScoredPair[] {
  const out: ScoredPair[] = [];
  for (let i = 0; i < images.length; i++) {
    for (let j = i + 1; j < images.length; j++) {
      out.push({ score: dot(emb.get(images[i]!.path)!.embedding, emb.get(images[j]!.path)!.embedding), same: images[i]!.subject === images[j]!.subject });
    }
  }
  return out;
}

/** Runs the closed-set and open-set protocols on embeddings already computed. */
export async function scoreOrl(images: readonly OrlImage[], emb: Map<string, OrlEmbedding>, p: OrlProtocol = {}): Promise<OrlReport> {
  const enrollShots = [...(p.enrollShots ?? [1, 2, 3, 4, 5])].sort((a, b) => a - b);
  for (const im of images) if (!emb.has(im.path)) throw new CosfaceError('BAD_INPUT', `ORL: no embedding for ${im.path}`);
  const subjects = [...new Set(images.map((i) => i.subject))];
  const isEnroll = (im: OrlImage) => enrollShots.includes(im.shot);
  const enrolled = images.filter(isEnroll);
  const probes = images.filter((im) => !isEnroll(im));
  if (enrolled.length === 0 || probes.length === 0) throw new CosfaceError('BAD_INPUT', `ORL: shots ${enrollShots.join(',')} leave no enrolled images or no probes`);
  const holdOut = p.holdOut ?? 10;
  if (!Number.isInteger(holdOut) || holdOut < 1 || holdOut >= subjects.length) {
    throw new CosfaceError('BAD_INPUT', `ORL: holdOut must be an integer from 1 to ${subjects.length - 1}, got ${holdOut}`);
  }

  // Closed set: every subject enrolled, every probe identified, the top candidate must be right.
  const closed = await galleryOf(enrolled, emb, p);
  const exact = p.search !== 'index';
  const misses: OrlReport['closedSet']['misses'] = [];
  try {
    for (const pr of probes) {
      const r = await closed.identify(GALLERY, emb.get(pr.path)!.embedding, { k: 1, exact });
      const top = r.candidates[0]!;
      if (top.identity !== pr.subject) misses.push({ probe: pr.path, subject: pr.subject, got: top.identity, score: top.score });
    }
  } finally {
    await closed.close();
  }

  // Open set: the last `holdOut` subjects are never enrolled.
  const heldOut = new Set(subjects.slice(subjects.length - holdOut));
  const openEnrolled = enrolled.filter((im) => !heldOut.has(im.subject));
  let threshold: number;
  let far: number | null = null;
  let thresholdSource: string;
  let calib: OrlOpenSet['calibration'];
  if (p.threshold !== undefined) {
    if (!Number.isFinite(p.threshold)) throw new CosfaceError('BAD_INPUT', `threshold ${p.threshold} is not a finite number`);
    threshold = p.threshold;
    thresholdSource = 'given';
  } else {
    far = p.far ?? 1e-3;
    if (!(far > 0 && far < 1)) throw new CosfaceError('BAD_INPUT', `far ${far} must be in (0, 1)`);
    const c = p.calibration ?? 'enrolled';
    if (c === 'enrolled') {
      const cal = calibrate(allPairs(openEnrolled, emb), [far]);
      const t = cal.thresholds[0];
      if (!t) {
        throw new CosfaceError(
          'NOT_CALIBRATED',
          `ORL: ${cal.impostorPairs} impostor pairs among the enrolled images cannot calibrate FAR ${far} (needs ${cal.unsupported[0]?.impostorPairsNeeded}); choose a larger FAR or give a threshold`,
        );
      }
      threshold = t.threshold;
      thresholdSource = `calibrated on all ${cal.genuinePairs + cal.impostorPairs} pairs of the enrolled images (${cal.impostorPairs} impostor)`;
      calib = { genuinePairs: cal.genuinePairs, impostorPairs: cal.impostorPairs, unsupported: cal.unsupported };
    } else {
      const hit = (await c.store.thresholds(c.modelId)).find((r) => Math.abs(r.far - far!) <= 1e-9 * far!);
      if (!hit) throw new CosfaceError('NOT_CALIBRATED', `ORL: no stored threshold at FAR ${far} for model "${c.modelId}" (run cosface calibrate)`);
      threshold = hit.threshold;
      thresholdSource = `stored calibration of ${c.modelId} (${hit.impostorPairs} impostor pairs)`;
    }
  }
  const open = await galleryOf(openEnrolled, emb, p);
  let falseAccepts = 0;
  let correctAccepts = 0;
  const heldOutProbes = images.filter((im) => heldOut.has(im.subject));
  const enrolledProbes = probes.filter((im) => !heldOut.has(im.subject));
  try {
    for (const pr of heldOutProbes) {
      const r = await open.identify(GALLERY, emb.get(pr.path)!.embedding, { k: 1, exact, threshold });
      if (r.match) falseAccepts++;
    }
    for (const pr of enrolledProbes) {
      const r = await open.identify(GALLERY, emb.get(pr.path)!.embedding, { k: 1, exact, threshold });
      if (r.match?.identity === pr.subject) correctAccepts++;
    }
  } finally {
    await open.close();
  }

  const pairs = allPairs(images, emb);
  const mean = (same: boolean) => {
    const v = pairs.filter((x) => x.same === same);
    return v.reduce((s, x) => s + x.score, 0) / Math.max(1, v.length);
  };
  const noFace = images.filter((im) => emb.get(im.path)!.source === 'fallback').map((im) => im.path);
  return {
    images: images.length,
    subjects: subjects.length,
    enrollShots,
    noFace: { count: noFace.length, images: noFace, action: 'aligned on the mean five points of the detected faces and kept in the evaluation' },
    closedSet: { probes: probes.length, rank1: (probes.length - misses.length) / probes.length, correct: probes.length - misses.length, misses },
    openSet: {
      holdOutSubjects: [...heldOut],
      enrolledSubjects: subjects.length - heldOut.size,
      threshold,
      far,
      thresholdSource,
      heldOutProbes: heldOutProbes.length,
      falseAccepts,
      falseAcceptRate: falseAccepts / heldOutProbes.length,
      rejectionRate: 1 - falseAccepts / heldOutProbes.length,
      enrolledProbes: enrolledProbes.length,
      correctAccepts,
      detectionIdentificationRate: correctAccepts / Math.max(1, enrolledProbes.length),
      ...(calib ? { calibration: calib } : {}),
    },
    meanGenuine: mean(true),
    meanImpostor: mean(false),
  };
}

export interface EvalOrlOptions extends OrlProtocol, EmbedOrlOptions {
  data: string;
  pipeline: FacePipeline;
}

/** The whole ORL evaluation: list, embed, score. */
export async function evalOrl(o: EvalOrlOptions): Promise<OrlReport> {
  const images = await listOrlImages(o.data);
  const emb = await embedOrlImages(o.pipeline, o.data, images, o);
  return scoreOrl(images, emb, o);
}

/** A short name for an image in reports (subject/file). */
export function orlImageName(path: string): string {
  return `${basename(dirname(path))}/${basename(path)}`;
}
