// The LFW verification protocol on a `fold,img_a,img_b,same` pair list: every image through the
// face pipeline, cosine score per pair, for each fold a threshold chosen on the other folds only,
// mean accuracy and standard deviation over folds, TAR at FAR = 1e-3, and an ROC curve image.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { CosfaceError } from '../errors.js';
import { alignFace, type Point } from '../pipeline/align.js';
import { decodeImage } from '../pipeline/decode.js';
import type { Face, FacePipeline } from '../pipeline/face-pipeline.js';

export interface LfwPair {
  fold: number;
  a: string;
  b: string;
  same: boolean;
}

export interface LfwImageEmbedding {
  embedding: Float32Array;
  /** 'face': a detected face; 'fallback': no face was detected and the mean landmarks were used. */
  source: 'face' | 'fallback';
  landmarks: Point[];
  width: number;
  height: number;
}

export interface LfwFold {
  fold: number;
  threshold: number;
  accuracy: number;
  pairs: number;
}

export interface LfwReport {
  /** Mean accuracy over folds, percent. */
  accuracy: number;
  /** Sample standard deviation of the fold accuracies, percent. */
  std: number;
  /** TAR at FAR <= 1e-3 over all pairs (null when there are no genuine pairs). */
  tarAtFar1e3: number | null;
  /** What FAR = 1e-3 means with this many impostor pairs. */
  tarNote: string;
  noFace: { count: number; images: string[]; action: string };
  pairs: number;
  folds: LfwFold[];
  /** Where the ROC curve PNG was written, if anywhere. */
  rocPath?: string;
  /** Mean cosine of genuine and impostor pairs. */
  meanGenuine: number;
  meanImpostor: number;
}

export interface EvalLfwOptions {
  /** Folder the pair paths are relative to. */
  data: string;
  /** Pair list (default `<data>/pairs.csv`). */
  pairs?: string;
  pipeline: FacePipeline;
  /** Write the ROC curve here (PNG); omitted: no image. */
  rocPath?: string;
  /** Precomputed embeddings by relative path (e.g. from parallel workers); missing ones are computed. */
  embeddings?: Map<string, LfwImageEmbedding>;
  onProgress?: (done: number, total: number) => void;
}

/** Parses `fold,img_a,img_b,same` CSV (a header line is allowed). */
export function parseLfwPairs(csv: string, source = 'pairs.csv'): LfwPair[] {
  const out: LfwPair[] = [];
  const lines = csv.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  lines.forEach((line, i) => {
    const cols = line.split(',').map((c) => c.trim());
    if (i === 0 && cols[0] === 'fold') return;
    const fold = Number(cols[0]);
    const same = cols[3];
    if (cols.length !== 4 || !Number.isInteger(fold) || !cols[1] || !cols[2] || (same !== '0' && same !== '1')) {
      throw new CosfaceError('BAD_INPUT', `${source} line ${i + 1}: expected fold,img_a,img_b,same (same 0 or 1), got '${line}'`);
    }
    out.push({ fold, a: cols[1]!, b: cols[2]!, same: same === '1' });
  });
  if (out.length === 0) throw new CosfaceError('BAD_INPUT', `${source}: no pairs`);
  return out;
}

/** The face LFW means in a photo: the one nearest the centre, larger faces preferred on ties. */
export function centralFace(faces: readonly Face[], width: number, height: number): Face | undefined {
  let best: Face | undefined;
  let bestCost = Infinity;
  for (const f of faces) {
    const [x, y, w, h] = f.box;
    const d = Math.hypot(x + w / 2 - width / 2, y + h / 2 - height / 2);
    const cost = d / Math.max(w, 1);
    if (cost < bestCost) {
      bestCost = cost;
      best = f;
    }
  }
  return best;
}

/**
 * Embeds each image: its central face; images without a detected face are aligned on the mean
 * five points of the detected faces of the same image size (LFW centres its faces, so this is a
 * centred crop), or of all images when no image of that size had a face.
 */
export async function embedLfwImages(
  pipeline: FacePipeline, data: string, images: readonly string[], onProgress?: (done: number, total: number) => void,
  known: Map<string, LfwImageEmbedding> = new Map(),
): Promise<Map<string, LfwImageEmbedding>> {
  const out = new Map(known);
  const missing: { rel: string; width: number; height: number; data: Uint8Array }[] = [];
  let done = 0;
  for (const rel of images) {
    if (!out.has(rel)) {
      const img = await decodeImage(join(data, rel));
      const face = centralFace(await pipeline.facesInImage(img), img.width, img.height);
      if (face) out.set(rel, { embedding: Float32Array.from(face.embedding), source: 'face', landmarks: face.landmarks as Point[], width: img.width, height: img.height });
      else missing.push({ rel, width: img.width, height: img.height, data: img.data });
    }
    onProgress?.(++done, images.length);
  }
  for (const m of missing) {
    const same = [...out.values()].filter((e) => e.source === 'face' && e.width === m.width && e.height === m.height);
    const pool = same.length ? same : [...out.values()].filter((e) => e.source === 'face');
    if (pool.length === 0) throw new CosfaceError('BAD_INPUT', 'LFW: no face was detected in any image');
    const mean: Point[] = [0, 1, 2, 3, 4].map((k) => {
      const sx = pool.reduce((s, e) => s + e.landmarks[k]![0] / (same.length ? 1 : e.width), 0) / pool.length;
      const sy = pool.reduce((s, e) => s + e.landmarks[k]![1] / (same.length ? 1 : e.height), 0) / pool.length;
      return same.length ? [sx, sy] : [sx * m.width, sy * m.height];
    });
    const { crop } = alignFace({ width: m.width, height: m.height, data: m.data }, mean);
    const emb = await pipeline.embedAligned(crop, 1);
    out.set(m.rel, { embedding: Float32Array.from(emb), source: 'fallback', landmarks: mean, width: m.width, height: m.height });
  }
  return out;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** The threshold that maximises accuracy on the given (score, same) pairs: a midpoint between scores. */
export function bestThreshold(scores: readonly number[], same: readonly boolean[]): number {
  const idx = scores.map((_, i) => i).sort((p, q) => scores[p]! - scores[q]!);
  // Threshold below everything: all accepted -> correct = #genuine.
  let correct = same.filter((s) => s).length;
  let best = correct;
  let bestT = scores[idx[0]!]! - 1e-6;
  for (let k = 0; k < idx.length; k++) {
    // Raise the threshold past idx[k]: it becomes rejected.
    correct += same[idx[k]!] ? -1 : 1;
    const next = k + 1 < idx.length ? scores[idx[k + 1]!]! : scores[idx[k]!]! + 2e-6;
    if (next === scores[idx[k]!]) continue; // ties move together
    if (correct > best) {
      best = correct;
      bestT = (scores[idx[k]!]! + next) / 2;
    }
  }
  return bestT;
}

/** Accuracy per fold with the threshold chosen on the other folds (accept when score > threshold). */
export function lfwFolds(pairs: readonly LfwPair[], scores: readonly number[]): LfwFold[] {
  const folds = [...new Set(pairs.map((p) => p.fold))].sort((a, b) => a - b);
  if (folds.length < 2) throw new CosfaceError('BAD_INPUT', `LFW protocol needs at least two folds, the pair list has ${folds.length}`);
  return folds.map((fold) => {
    const train = pairs.map((p, i) => i).filter((i) => pairs[i]!.fold !== fold);
    const test = pairs.map((p, i) => i).filter((i) => pairs[i]!.fold === fold);
    const threshold = bestThreshold(train.map((i) => scores[i]!), train.map((i) => pairs[i]!.same));
    const correct = test.filter((i) => (scores[i]! > threshold) === pairs[i]!.same).length;
    return { fold, threshold, accuracy: (100 * correct) / test.length, pairs: test.length };
  });
}

/** TAR at the largest threshold-defined FAR not above `far`, with a note on what it can resolve. */
export function tarAtFar(pairs: readonly LfwPair[], scores: readonly number[], far = 1e-3): { tar: number | null; note: string } {
  const imp = scores.filter((_, i) => !pairs[i]!.same).sort((a, b) => b - a);
  const gen = scores.filter((_, i) => pairs[i]!.same);
  if (gen.length === 0 || imp.length === 0) return { tar: null, note: 'needs both genuine and impostor pairs' };
  const allowed = Math.floor(far * imp.length); // false accepts allowed
  const threshold = imp[allowed]!; // accept only scores above the (allowed+1)-th highest impostor
  const tar = gen.filter((s) => s > threshold).length / gen.length;
  const note = allowed === 0
    ? `${imp.length} impostor pairs cannot resolve FAR = ${far} (one false accept is FAR ${(1 / imp.length).toExponential(2)}): reported at zero false accepts (threshold ${threshold.toFixed(4)})`
    : `${allowed} false accepts allowed among ${imp.length} impostor pairs (threshold ${threshold.toFixed(4)})`;
  return { tar, note };
}

/** ROC (TAR against FAR, log FAR axis) as an SVG. */
export function rocSvg(pairs: readonly LfwPair[], scores: readonly number[], title: string): string {
  const gen = scores.filter((_, i) => pairs[i]!.same).sort((a, b) => b - a);
  const imp = scores.filter((_, i) => !pairs[i]!.same).sort((a, b) => b - a);
  const W = 640, H = 480, L = 70, R = 20, T = 40, B = 60;
  const minFar = Math.min(1e-3, 1 / Math.max(imp.length, 1));
  const lx = (far: number) => L + ((Math.log10(Math.max(far, minFar)) - Math.log10(minFar)) / -Math.log10(minFar)) * (W - L - R);
  const ly = (tar: number) => T + (1 - tar) * (H - T - B);
  const pts: string[] = [];
  // Sweep thresholds down through all scores.
  const all = [...new Set(scores)].sort((a, b) => b - a);
  let gi = 0, ii = 0;
  for (const t of all) {
    while (gi < gen.length && gen[gi]! >= t) gi++;
    while (ii < imp.length && imp[ii]! >= t) ii++;
    pts.push(`${lx(ii / imp.length).toFixed(1)},${ly(gi / gen.length).toFixed(1)}`);
  }
  let grid = '';
  for (let e = Math.ceil(Math.log10(minFar)); e <= 0; e++) {
    const x = lx(10 ** e);
    grid += `<line x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="#ddd"/><text x="${x}" y="${H - B + 20}" font-size="13" text-anchor="middle">1e${e}</text>`;
  }
  for (let k = 0; k <= 10; k += 2) {
    const y = ly(0.9 + k / 100);
    grid += `<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#eee"/>`;
  }
  for (let k = 0; k <= 5; k++) {
    const y = ly(k / 5);
    grid += `<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#ddd"/><text x="${L - 8}" y="${y + 4}" font-size="13" text-anchor="end">${(k / 5).toFixed(1)}</text>`;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="white"/>${grid}
<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="black"/>
<polyline points="${pts.join(' ')}" fill="none" stroke="#c03" stroke-width="2"/>
<text x="${W / 2}" y="24" font-size="15" text-anchor="middle">${escapeXml(title)}</text>
<text x="${W / 2}" y="${H - 15}" font-size="14" text-anchor="middle">false accept rate (log)</text>
<text x="18" y="${H / 2}" font-size="14" text-anchor="middle" transform="rotate(-90 18 ${H / 2})">true accept rate</text></svg>`;
}

const escapeXml = (s: string): string => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** Scores pairs from embeddings and computes the protocol's numbers. */
export function scoreLfw(pairs: readonly LfwPair[], embeddings: Map<string, LfwImageEmbedding>): { scores: number[]; report: Omit<LfwReport, 'rocPath'> } {
  const get = (p: string): LfwImageEmbedding => embeddings.get(p) ?? (() => { throw new CosfaceError('BAD_INPUT', `LFW: no embedding for ${p}`); })();
  const scores = pairs.map((p) => dot(get(p.a).embedding, get(p.b).embedding));
  const folds = lfwFolds(pairs, scores);
  const accs = folds.map((f) => f.accuracy);
  const mean = accs.reduce((s, a) => s + a, 0) / accs.length;
  const std = Math.sqrt(accs.reduce((s, a) => s + (a - mean) ** 2, 0) / Math.max(1, accs.length - 1));
  const { tar, note } = tarAtFar(pairs, scores, 1e-3);
  const used = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  const noFaceImages = used.filter((p) => get(p).source === 'fallback');
  const avg = (want: boolean) => {
    const v = scores.filter((_, i) => pairs[i]!.same === want);
    return v.reduce((s, x) => s + x, 0) / Math.max(1, v.length);
  };
  return {
    scores,
    report: {
      accuracy: mean,
      std,
      tarAtFar1e3: tar,
      tarNote: note,
      noFace: {
        count: noFaceImages.length,
        images: noFaceImages,
        action: 'aligned on the mean five points of the faces detected in images of the same size (a centred crop) and kept in the evaluation',
      },
      pairs: pairs.length,
      folds,
      meanGenuine: avg(true),
      meanImpostor: avg(false),
    },
  };
}

/** Runs the whole protocol. */
export async function evalLfw(opts: EvalLfwOptions): Promise<LfwReport> {
  const pairsPath = opts.pairs ?? join(opts.data, 'pairs.csv');
  let csv: string;
  try {
    csv = await readFile(pairsPath, 'utf8');
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `LFW: cannot read the pair list ${pairsPath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  const pairs = parseLfwPairs(csv, pairsPath);
  const images = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  const embeddings = await embedLfwImages(opts.pipeline, opts.data, images, opts.onProgress, opts.embeddings);
  const { scores, report } = scoreLfw(pairs, embeddings);
  if (!opts.rocPath) return report;
  const svg = rocSvg(pairs, scores, `LFW ${pairs.length} pairs: ${report.accuracy.toFixed(2)}% +- ${report.std.toFixed(2)}`);
  await writeFile(opts.rocPath, await sharp(Buffer.from(svg)).png().toBuffer());
  return { ...report, rocPath: opts.rocPath };
}

/** The CLI's --json shape: accuracy (percent), std, tarAtFar1e3, noFace, pairs, and per fold its threshold. */
export function lfwJson(r: LfwReport): { accuracy: number; std: number; tarAtFar1e3: number | null; noFace: LfwReport['noFace']; pairs: number; folds: LfwFold[] } {
  return { accuracy: r.accuracy, std: r.std, tarAtFar1e3: r.tarAtFar1e3, noFace: r.noFace, pairs: r.pairs, folds: r.folds };
}
