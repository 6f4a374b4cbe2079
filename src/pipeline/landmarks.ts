// Landmarks with FaceMesh (192x192): cuts an upright square crop around each detected face
// (rotated so the eyes are level; all crops of a photo cut in one call on the backend's warp when
// there is one), runs all faces of a photo as one batch on the engine, maps the 468 mesh points
// back to the photo and reduces them to the five alignment points.
import { applySimilarity, warpCrops, type BatchWarp, type Point, type Similarity } from './align.js';
import type { RgbImage } from './decode.js';
import type { Detection } from './detect.js';

export const MESH_SIZE = 192;
export const MESH_POINTS = 468;
/** The mesh graph's outputs, in the order the flat output holds them: mesh (1404), face flag (1). */
export const MESH_OUTPUTS = ['Identity_2', 'Identity_1'];
const MESH_OUT = MESH_POINTS * 3 + 1;

/**
 * MediaPipe mesh indices of the five points, left/right as seen in the image: eye corners
 * 33 and 133 (the subject's right eye), 362 and 263 (left eye), nose tip 1, mouth corners 61, 291.
 */
const EYE_IMAGE_LEFT = [33, 133];
const EYE_IMAGE_RIGHT = [362, 263];
const NOSE_TIP = 1;
const MOUTH_IMAGE_LEFT = 61;
const MOUTH_IMAGE_RIGHT = 291;

export interface MeshResult {
  /** Face-presence probability from the mesh model, 0..1. */
  faceFlag: number;
  /** Five points in image pixels: eye (image left), eye (image right), nose tip, mouth corners. */
  five: Point[];
  /** All 468 points (x, y) in image pixels. */
  mesh: Point[];
  /** The crop the mesh saw (crop pixels -> image pixels). */
  crop: Similarity;
}

export interface LandmarkOptions {
  /** Crop side as a multiple of the box's longer side (default 1.5, as MediaPipe). */
  cropScale?: number;
  /** Run the mesh a second time on a crop centred on the first mesh (default true). */
  refine?: boolean;
}

/** Crop transform: centre, side (image pixels) and angle of the eye line (radians). */
export function meshCropTransform(cx: number, cy: number, side: number, angle: number): Similarity {
  const s = side / MESH_SIZE;
  const a = s * Math.cos(angle);
  const b = s * Math.sin(angle);
  const h = MESH_SIZE / 2;
  return { a, b, tx: cx - a * h + b * h, ty: cy - b * h - a * h };
}

function cropFromDetection(d: Detection, scale: number): Similarity {
  const [x, y, w, h] = d.box;
  const [re, le] = d.keypoints as [Point, Point];
  const angle = Math.atan2(le[1] - re[1], le[0] - re[0]);
  return meshCropTransform(x + w / 2, y + h / 2, Math.max(w, h) * scale, angle);
}

/** A crop from a previous mesh: its points' bounding box in the eye-aligned frame. */
function cropFromMesh(m: MeshResult, scale: number): Similarity {
  const mean = (ids: number[]): Point => [ids.reduce((s, i) => s + m.mesh[i]![0], 0) / ids.length, ids.reduce((s, i) => s + m.mesh[i]![1], 0) / ids.length];
  const el = mean(EYE_IMAGE_LEFT);
  const er = mean(EYE_IMAGE_RIGHT);
  const angle = Math.atan2(er[1] - el[1], er[0] - el[0]);
  const c = Math.cos(angle), s = Math.sin(angle);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [px, py] of m.mesh) {
    const u = c * px + s * py;
    const v = -s * px + c * py;
    x0 = Math.min(x0, u); x1 = Math.max(x1, u); y0 = Math.min(y0, v); y1 = Math.max(y1, v);
  }
  const uc = (x0 + x1) / 2, vc = (y0 + y1) / 2;
  // The mesh's box is tighter than the detector's; MediaPipe enlarges it by 1.5 when tracking.
  return meshCropTransform(c * uc - s * vc, s * uc + c * vc, Math.max(x1 - x0, y1 - y0) * scale, angle);
}

/** Runs the mesh graph: n crops of 192x192x3 (0..1) in, n x 1405 floats out. */
export type RunMesh = (input: Float32Array, n: number) => Promise<Float32Array>;

async function runMeshOn(img: RgbImage, crops: Similarity[], runMesh: RunMesh, warp?: BatchWarp): Promise<MeshResult[]> {
  if (crops.length === 0) return [];
  const input = await warpCrops(img, crops, MESH_SIZE, MESH_SIZE, {}, warp);
  for (let i = 0; i < input.length; i++) input[i] = input[i]! / 255;
  const raw = await runMesh(input, crops.length);
  return crops.map((crop, i) => {
    const o = raw.subarray(i * MESH_OUT, (i + 1) * MESH_OUT);
    const mesh: Point[] = [];
    for (let k = 0; k < MESH_POINTS; k++) mesh.push(applySimilarity(crop, [o[3 * k]!, o[3 * k + 1]!]));
    const mean = (ids: number[]): Point => [ids.reduce((s, j) => s + mesh[j]![0], 0) / ids.length, ids.reduce((s, j) => s + mesh[j]![1], 0) / ids.length];
    const five: Point[] = [mean(EYE_IMAGE_LEFT), mean(EYE_IMAGE_RIGHT), mesh[NOSE_TIP]!, mesh[MOUTH_IMAGE_LEFT]!, mesh[MOUTH_IMAGE_RIGHT]!];
    return { faceFlag: o[MESH_POINTS * 3]!, five, mesh, crop };
  });
}

/**
 * FaceMesh landmarks for every detection of a photo, in one batch (two with refinement). `warp`
 * (a backend's batched warp) cuts the crops; without it warpToCrop does.
 */
export async function meshLandmarks(img: RgbImage, dets: readonly Detection[], runMesh: RunMesh, opts: LandmarkOptions = {}, warp?: BatchWarp): Promise<MeshResult[]> {
  const scale = opts.cropScale ?? 1.5;
  const first = await runMeshOn(img, dets.map((d) => cropFromDetection(d, scale)), runMesh, warp);
  if (opts.refine === false) return first;
  const again = first.map((m, i) => (m.faceFlag >= 0.5 ? i : -1)).filter((i) => i >= 0);
  const second = await runMeshOn(img, again.map((i) => cropFromMesh(first[i]!, scale)), runMesh, warp);
  const out = [...first];
  again.forEach((i, k) => {
    if (second[k]!.faceFlag >= 0.5) out[i] = second[k]!;
  });
  return out;
}

/**
 * BlazeFace's four usable points as a fallback (eyes, nose tip, mouth centre), with the template
 * that maps the mouth centre to the mean of the two template mouth corners.
 */
export function detectorFourPoints(d: Detection): Point[] {
  return d.keypoints.slice(0, 4).map((p) => [p[0], p[1]] as Point);
}
