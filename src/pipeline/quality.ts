// Face quality in 0..1 from four measurements, each mapped to 0..1 and combined by a weighted
// geometric mean (a face poor on any one axis scores low, but no single axis zeroes it):
//
//   detector  the BlazeFace score as it is (0.5 at the default threshold, ~1 for clear faces)
//   size      inter-ocular distance d in photo pixels: min(1, d / 40) (the 112x112 aligned crop
//             has d = 35; smaller faces are upsampled and lose detail)
//   pose      from the five points in the aligned frame: yaw proxy = nose offset from the eyes'
//             midpoint over the eye distance, pitch proxy = the nose's height between the eye line
//             and the mouth line relative to the template's; exp(-(yaw/0.25)^2/2 - (pitch/0.25)^2/2)
//   blur      variance of the Laplacian of the aligned crop's luma: v / (v + 100) (sharp LFW crops
//             give several hundred; a Gaussian blur of sigma 2 brings them under 30)
//
//   quality = det^0.2 * size^0.25 * pose^0.25 * blur^0.3
import { applySimilarity, ARCFACE_TEMPLATE_112, type Point, type Similarity } from './align.js';

export interface QualityParts {
  detector: number;
  size: number;
  pose: number;
  blur: number;
  /** Raw measurements behind the parts. */
  eyeDistance: number;
  yaw: number;
  pitch: number;
  laplacianVariance: number;
}

export interface Quality {
  quality: number;
  parts: QualityParts;
}

const WEIGHTS = { detector: 0.2, size: 0.25, pose: 0.25, blur: 0.3 };
const T = ARCFACE_TEMPLATE_112;
const TEMPLATE_PITCH = pitchRatio(T as Point[]);

function pitchRatio(p: readonly Point[]): number {
  const eyeY = (p[0]![1] + p[1]![1]) / 2;
  const mouthY = (p[3]![1] + p[4]![1]) / 2;
  return (p[2]![1] - eyeY) / (mouthY - eyeY);
}

/** Variance of the 4-neighbour Laplacian of the luma of an RGB float crop (0..255, HWC). */
export function laplacianVariance(crop: Float32Array, width: number, height: number): number {
  const g = new Float32Array(width * height);
  for (let i = 0; i < width * height; i++) g[i] = 0.299 * crop[3 * i]! + 0.587 * crop[3 * i + 1]! + 0.114 * crop[3 * i + 2]!;
  let s = 0, s2 = 0, n = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const l = g[i - 1]! + g[i + 1]! + g[i - width]! + g[i + width]! - 4 * g[i]!;
      s += l;
      s2 += l * l;
      n++;
    }
  }
  const mean = s / n;
  return s2 / n - mean * mean;
}

/**
 * Quality of one face: detector score, five landmarks (image pixels), the transform to the aligned
 * crop and the aligned 112x112 crop itself.
 */
export function faceQuality(score: number, landmarks: readonly Point[], toAligned: Similarity, aligned: Float32Array): Quality {
  const eyeDistance = Math.hypot(landmarks[1]![0] - landmarks[0]![0], landmarks[1]![1] - landmarks[0]![1]);
  const p = landmarks.map((q) => applySimilarity(toAligned, q as Point));
  const eyeMid: Point = [(p[0]![0] + p[1]![0]) / 2, (p[0]![1] + p[1]![1]) / 2];
  const eyeDist = Math.hypot(p[1]![0] - p[0]![0], p[1]![1] - p[0]![1]) || 1;
  const yaw = (p[2]![0] - eyeMid[0]) / eyeDist;
  const pitch = pitchRatio(p) - TEMPLATE_PITCH;
  const lv = laplacianVariance(aligned, 112, 112);
  const parts: QualityParts = {
    detector: clamp01(score),
    size: clamp01(eyeDistance / 40),
    pose: Math.exp(-0.5 * (yaw / 0.25) ** 2 - 0.5 * (pitch / 0.25) ** 2),
    blur: lv / (lv + 100),
    eyeDistance,
    yaw,
    pitch,
    laplacianVariance: lv,
  };
  const quality = Math.exp(
    WEIGHTS.detector * Math.log(Math.max(parts.detector, 1e-6)) +
      WEIGHTS.size * Math.log(Math.max(parts.size, 1e-6)) +
      WEIGHTS.pose * Math.log(Math.max(parts.pose, 1e-6)) +
      WEIGHTS.blur * Math.log(Math.max(parts.blur, 1e-6)),
  );
  return { quality: clamp01(quality), parts };
}

function clamp01(v: number): number {
  return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
}
