// Face detection with BlazeFace (back, 256x256): plans the views of a photo (the whole photo with
// a border, letterboxed; plus overlapping tiles when small faces are asked for), decodes the
// anchors' score logits and box/keypoint offsets, and merges overlapping detections by
// score-weighted non-maximum suppression. The network itself runs on the injected engine.
import { warpCrops, type BatchWarp, type Point, type Similarity } from './align.js';
import type { RgbImage } from './decode.js';

export const DETECTOR_SIZE = 256;
/** Per anchor: 1 score logit and 16 regressors (box cx, cy, w, h, then 6 keypoints x, y). */
export const DETECTOR_ANCHORS = 896;
/** The detector graph's outputs, in the order the flat output holds them. */
export const DETECTOR_OUTPUTS = ['Identity', 'Identity_1', 'Identity_2', 'Identity_3'];

export interface Detection {
  /** [x, y, w, h] in continuous image pixels. */
  box: [number, number, number, number];
  /** Sigmoid of the logit, 0..1. */
  score: number;
  /**
   * Six keypoints in image pixels: subject's right eye (image left), left eye, nose tip,
   * mouth centre, right ear tragion, left ear tragion.
   */
  keypoints: Point[];
}

export interface DetectorOptions {
  /** Detections below this score are dropped (default 0.5). */
  scoreThreshold?: number;
  /**
   * Faces narrower than this many image pixels are dropped (default 20). It also decides tiling: the
   * photo is cut into overlapping tiles small enough that such a face is still found.
   */
  minFaceSize?: number;
  /** Overlap (IoU) above which detections are merged (default 0.3). */
  iouThreshold?: number;
  /** Border added around the photo before letterboxing, as a fraction of its longer side (default 0.15). */
  border?: number;
  /** Tiles for small faces: 'auto' adds them as minFaceSize requires; 'off' never (default 'auto'). */
  tiling?: 'auto' | 'off';
  /** At most this many views per photo (the whole photo counts as one; default 17). */
  maxViews?: number;
}

/** A square region of the photo the detector sees at 256x256. */
export interface DetectorView {
  /** Top-left corner and side, continuous image pixels (may extend past the photo). */
  x: number;
  y: number;
  side: number;
  /** Whether detections touching the region's edge inside the photo are to be dropped (tiles). */
  tile: boolean;
}

/**
 * The smallest face (box width, model pixels) BlazeFace-back finds reliably at 256x256. Views are
 * planned so that minFaceSize maps to at least this.
 */
const DETECTABLE_PX = 14;

let anchorCache: Float32Array | null = null;
/** Anchor centres (x, y) in model pixels, MediaPipe SSD layout: strides 16 (2 per cell) and 32 (6). */
export function blazeFaceAnchors(): Float32Array {
  if (anchorCache) return anchorCache;
  const a = new Float32Array(DETECTOR_ANCHORS * 2);
  let i = 0;
  for (const [stride, perCell] of [[16, 2], [32, 6]] as const) {
    const cells = DETECTOR_SIZE / stride;
    for (let cy = 0; cy < cells; cy++) {
      for (let cx = 0; cx < cells; cx++) {
        for (let k = 0; k < perCell; k++) {
          a[i++] = stride * (cx + 0.5);
          a[i++] = stride * (cy + 0.5);
        }
      }
    }
  }
  anchorCache = a;
  return a;
}

/** Plans the views of a width x height photo. */
export function planDetectorViews(width: number, height: number, opts: DetectorOptions = {}): DetectorView[] {
  const border = opts.border ?? 0.15;
  const minFace = opts.minFaceSize ?? 20;
  const maxViews = Math.max(1, opts.maxViews ?? 17);
  const long = Math.max(width, height);
  const side = long * (1 + 2 * border);
  const views: DetectorView[] = [{ x: (width - side) / 2, y: (height - side) / 2, side, tile: false }];
  if (opts.tiling === 'off') return views;
  // The largest tile in which a minFace-wide face still appears DETECTABLE_PX wide.
  const finest = (minFace * DETECTOR_SIZE) / DETECTABLE_PX;
  // Levels of tiles at half the previous side with 50% overlap, so that every face smaller than
  // half a tile lies wholly inside one tile of that level.
  if (finest >= side) return views;
  for (let t = side / 2; ; t /= 2) {
    const level = tileLevel(width, height, t);
    if (views.length + level.length > maxViews) break;
    views.push(...level);
    if (t <= finest) break;
  }
  return views;
}

function tileLevel(width: number, height: number, t: number): DetectorView[] {
  const stride = t / 2;
  const nx = Math.max(1, Math.ceil((width - t) / stride) + 1);
  const ny = Math.max(1, Math.ceil((height - t) / stride) + 1);
  const out: DetectorView[] = [];
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      // Spread the tiles evenly so the last one ends at the photo's edge.
      const x = nx === 1 ? (width - t) / 2 : (i * (width - t)) / (nx - 1);
      const y = ny === 1 ? (height - t) / 2 : (j * (height - t)) / (ny - 1);
      out.push({ x, y, side: t, tile: true });
    }
  }
  return out;
}

/** The view's transform from model pixels to image pixels. */
export function viewToImage(v: DetectorView): Similarity {
  const s = v.side / DETECTOR_SIZE;
  return { a: s, b: 0, tx: v.x, ty: v.y };
}

/**
 * The detector input for the views (n x 256x256x3): their pixels scaled to x / 127.5 - 1, black
 * outside the photo. Cut by `warp` when given (the pipeline's: the backend's batched warp, off the
 * main thread, from halved copies of a large photo, pyramid.ts), else by warpToCrop from the photo
 * itself, up to 8x8 samples per pixel (about 0.5 s for a 12-megapixel photo's views).
 */
export async function detectorInput(img: RgbImage, views: readonly DetectorView[], warp?: BatchWarp): Promise<Float32Array> {
  const out = await warpCrops(img, views.map(viewToImage), DETECTOR_SIZE, DETECTOR_SIZE, {}, warp);
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / 127.5 - 1;
  return out;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/**
 * Decodes one view's raw detector output (896 logits then 896 x 16 regressors) into detections in
 * image pixels, keeping those at or above the score threshold.
 */
export function decodeDetections(raw: Float32Array, view: DetectorView, scoreThreshold: number): Detection[] {
  const anchors = blazeFaceAnchors();
  const m = viewToImage(view);
  const s = m.a;
  const out: Detection[] = [];
  const minLogit = Math.log(scoreThreshold / (1 - scoreThreshold));
  for (let i = 0; i < DETECTOR_ANCHORS; i++) {
    const logit = raw[i]!;
    if (!(logit >= minLogit)) continue;
    const r = DETECTOR_ANCHORS + i * 16;
    const ax = anchors[2 * i]!;
    const ay = anchors[2 * i + 1]!;
    const cx = ax + raw[r]!;
    const cy = ay + raw[r + 1]!;
    const w = raw[r + 2]!;
    const h = raw[r + 3]!;
    const keypoints: Point[] = [];
    for (let k = 0; k < 6; k++) keypoints.push([m.tx + s * (ax + raw[r + 4 + 2 * k]!), m.ty + s * (ay + raw[r + 5 + 2 * k]!)]);
    out.push({ box: [m.tx + s * (cx - w / 2), m.ty + s * (cy - h / 2), s * w, s * h], score: sigmoid(logit), keypoints });
  }
  return out;
}

export function iou(a: readonly number[], b: readonly number[]): number {
  const x1 = Math.max(a[0]!, b[0]!);
  const y1 = Math.max(a[1]!, b[1]!);
  const x2 = Math.min(a[0]! + a[2]!, b[0]! + b[2]!);
  const y2 = Math.min(a[1]! + a[3]!, b[1]! + b[3]!);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = a[2]! * a[3]! + b[2]! * b[3]! - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Weighted non-maximum suppression: the best remaining detection and every detection overlapping
 * it by more than the threshold are merged into their score-weighted average (box and keypoints);
 * the merged detection keeps the best score.
 */
export function weightedNms(dets: readonly Detection[], iouThreshold: number): Detection[] {
  const rest = [...dets].sort((p, q) => q.score - p.score);
  const out: Detection[] = [];
  while (rest.length) {
    const best = rest[0]!;
    const group: Detection[] = [];
    for (let i = rest.length - 1; i >= 0; i--) {
      if (iou(best.box, rest[i]!.box) > iouThreshold) group.push(...rest.splice(i, 1));
    }
    let W = 0;
    const box = [0, 0, 0, 0];
    const kps = best.keypoints.map(() => [0, 0]);
    for (const d of group) {
      W += d.score;
      for (let k = 0; k < 4; k++) box[k]! += d.score * d.box[k]!;
      d.keypoints.forEach((p, k) => {
        kps[k]![0]! += d.score * p[0];
        kps[k]![1]! += d.score * p[1];
      });
    }
    out.push({
      box: box.map((v) => v / W) as Detection['box'],
      score: best.score,
      keypoints: kps.map((p) => [p[0]! / W, p[1]! / W] as Point),
    });
  }
  return out;
}

/**
 * Drops detections a tile cut off: a box reaching within 2% of the tile's edge, where that edge
 * lies inside the photo (another tile or the whole view sees that face whole).
 */
function insideTile(d: Detection, v: DetectorView, width: number, height: number): boolean {
  if (!v.tile) return true;
  const m = v.side * 0.02;
  const [x, y, w, h] = d.box;
  if (x < v.x + m && v.x > 0.5) return false;
  if (y < v.y + m && v.y > 0.5) return false;
  if (x + w > v.x + v.side - m && v.x + v.side < width - 0.5) return false;
  if (y + h > v.y + v.side - m && v.y + v.side < height - 0.5) return false;
  return true;
}

/** Runs the detector graph: n views of 256x256x3 in, n x (896 + 896*16) floats out. */
export type RunDetector = (input: Float32Array, n: number) => Promise<Float32Array>;

/**
 * Detects faces in a photo: views (cut by `warp` when given, see detectorInput), one batched
 * detector run, decoding, merging, size filter.
 */
export async function detectFaces(img: RgbImage, runDetector: RunDetector, opts: DetectorOptions = {}, warp?: BatchWarp): Promise<Detection[]> {
  const views = planDetectorViews(img.width, img.height, opts);
  const raw = await runDetector(await detectorInput(img, views, warp), views.length);
  const per = DETECTOR_ANCHORS * 17;
  const all: Detection[] = [];
  views.forEach((v, i) => {
    for (const d of decodeDetections(raw.subarray(i * per, (i + 1) * per), v, opts.scoreThreshold ?? 0.5)) {
      if (insideTile(d, v, img.width, img.height)) all.push(d);
    }
  });
  const minFace = opts.minFaceSize ?? 20;
  return weightedNms(all, opts.iouThreshold ?? 0.3)
    .filter((d) => d.box[2] >= minFace)
    .sort((p, q) => p.box[0] - q.box[0]);
}
