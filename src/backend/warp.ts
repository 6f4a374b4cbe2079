// What both backends' batched alignment warp (Backend.warp) share: argument validation, the
// per-crop supersampling factor, and the image region a set of crops can read. The arithmetic is
// that of warpToCrop in src/pipeline/align.ts (the scalar reference): crop pixel-centre sample
// (u + (sx + 0.5) / k, v + (sy + 0.5) / k) -> image (a*cx - b*cy + tx, b*cx + a*cy + ty), bilinear
// between pixel centres, taps outside the image take `fill`, k x k samples averaged.
import { CosfaceError } from '../errors.js';
import type { Similarity, WarpOptions } from '../pipeline/align.js';
import type { RgbImage } from '../pipeline/decode.js';

/**
 * Largest |image coordinate| a transform may reach (and |a|, |b| times the crop side): the WebGPU
 * kernel carries whole pixels as f32 integers (exact below 2^24) and sums two of them in i32.
 */
export const WARP_MAX_COORD = 2 ** 23;
/** Largest crop side, and largest n * outW * outH * 3 (output floats) of one call. */
export const WARP_MAX_SIDE = 16384;
export const WARP_MAX_FLOATS = 2 ** 28;

/** A rectangle of image pixels [x0, x0 + w) x [y0, y0 + h); w = h = 0 when empty. */
export interface PixelRegion {
  x0: number;
  y0: number;
  w: number;
  h: number;
}

export interface WarpPlan {
  n: number;
  outW: number;
  outH: number;
  fill: number;
  /** Taps outside the image read the nearest edge pixel instead of `fill`. */
  replicate: boolean;
  /** Samples per axis of each crop (1..8), as warpToCrop chooses them. */
  k: Int32Array;
  /** The pixels each crop can read (clipped to the image; empty when the crop misses it). */
  regions: PixelRegion[];
}

const bad = (msg: string): CosfaceError => new CosfaceError('BAD_INPUT', `warp: ${msg}`);

/** Checks a warp call (BAD_INPUT on anything wrong) and plans it. */
export function planWarp(img: RgbImage, transforms: readonly Similarity[], outW: number, outH: number, opts: WarpOptions = {}): WarpPlan {
  if (!img || typeof img !== 'object') throw bad('no image');
  const { width: W, height: H, data } = img;
  if (!Number.isInteger(W) || !Number.isInteger(H) || W < 1 || H < 1) throw bad(`image size must be positive integers, got ${W}x${H}`);
  if (!(data instanceof Uint8Array) || data.length !== W * H * 3) {
    throw bad(`image data must be a Uint8Array of ${W}x${H}x3 = ${W * H * 3} bytes, got ${data instanceof Uint8Array ? data.length : typeof data}`);
  }
  if (!Array.isArray(transforms) || transforms.length === 0) throw bad('no transforms (one per crop is needed)');
  for (const [name, v] of [['outW', outW], ['outH', outH]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > WARP_MAX_SIDE) throw bad(`${name} must be an integer in 1..${WARP_MAX_SIDE}, got ${v}`);
  }
  const n = transforms.length;
  if (n * outW * outH * 3 > WARP_MAX_FLOATS) throw bad(`${n} crops of ${outW}x${outH} exceed ${WARP_MAX_FLOATS} output floats`);
  const fill = opts.fill ?? 0;
  if (typeof fill !== 'number' || !Number.isFinite(fill)) throw bad(`fill must be a finite number, got ${fill}`);
  const border = opts.border ?? 'constant';
  if (border !== 'constant' && border !== 'replicate') throw bad(`border must be 'constant' or 'replicate', got ${String(border)}`);
  const replicate = border === 'replicate';
  const ss = opts.supersample;
  if (ss !== undefined && (!Number.isInteger(ss) || ss < 1)) throw bad(`supersample must be an integer >= 1, got ${ss}`);

  const k = new Int32Array(n);
  const regions: PixelRegion[] = [];
  const side = Math.max(outW, outH);
  transforms.forEach((m, i) => {
    if (!m || typeof m !== 'object') throw bad(`transform ${i} is not an object`);
    const { a, b, tx, ty } = m;
    if (![a, b, tx, ty].every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw bad(`transform ${i} has a non-finite or missing coefficient (a=${a}, b=${b}, tx=${tx}, ty=${ty})`);
    }
    if ((Math.abs(a) + Math.abs(b)) * side + Math.abs(tx) + Math.abs(ty) + 1 > WARP_MAX_COORD) {
      throw bad(`transform ${i} reaches image coordinates beyond ${WARP_MAX_COORD} (a=${a}, b=${b}, tx=${tx}, ty=${ty})`);
    }
    // Exactly warpToCrop's choice.
    k[i] = Math.max(1, Math.min(8, ss ?? Math.ceil(Math.hypot(a, b) - 1e-6)));
    regions.push(cropRegion(m, outW, outH, W, H, replicate));
  });
  return { n, outW, outH, fill, replicate, k, regions };
}

/**
 * The pixels a crop's bilinear taps can touch: the bounding box of the crop rectangle's corners
 * mapped into pixel-centre coordinates, widened by one pixel on each side beyond the taps (so that
 * rounding of per-sample coordinates cannot leave it), clipped to the image. Every tap inside the
 * image lies in this region, so "inside the region" and "inside the image" agree for every tap;
 * the kernels test the region. With `replicate` the box is clamped into the image instead of cut
 * (never empty), so clamping a tap to the region is clamping it to the image.
 */
export function cropRegion(m: Similarity, outW: number, outH: number, W: number, H: number, replicate = false): PixelRegion {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const cx of [0, outW]) {
    for (const cy of [0, outH]) {
      const fx = m.a * cx - m.b * cy + m.tx - 0.5;
      const fy = m.b * cx + m.a * cy + m.ty - 0.5;
      x0 = Math.min(x0, fx); x1 = Math.max(x1, fx);
      y0 = Math.min(y0, fy); y1 = Math.max(y1, fy);
    }
  }
  let rx0 = Math.max(0, Math.floor(x0) - 1);
  let ry0 = Math.max(0, Math.floor(y0) - 1);
  let rx1 = Math.min(W, Math.floor(x1) + 3); // exclusive: taps reach floor(x) + 1
  let ry1 = Math.min(H, Math.floor(y1) + 3);
  if (replicate) {
    rx0 = Math.min(rx0, W - 1);
    ry0 = Math.min(ry0, H - 1);
    rx1 = Math.max(rx1, rx0 + 1);
    ry1 = Math.max(ry1, ry0 + 1);
  }
  if (rx1 <= rx0 || ry1 <= ry0) return { x0: 0, y0: 0, w: 0, h: 0 };
  return { x0: rx0, y0: ry0, w: rx1 - rx0, h: ry1 - ry0 };
}

/** The smallest region holding all given regions (empty ones ignored). */
export function unionRegion(regions: readonly PixelRegion[]): PixelRegion {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const r of regions) {
    if (r.w === 0 || r.h === 0) continue;
    x0 = Math.min(x0, r.x0); y0 = Math.min(y0, r.y0);
    x1 = Math.max(x1, r.x0 + r.w); y1 = Math.max(y1, r.y0 + r.h);
  }
  if (x1 <= x0) return { x0: 0, y0: 0, w: 0, h: 0 };
  return { x0, y0, w: x1 - x0, h: y1 - y0 };
}

/**
 * The region's RGB bytes (w * h * 3, rows back to back), copied into `into` at `offset` when
 * given. A region as wide as the image is one contiguous slice (a view, no copy, without `into`).
 */
export function regionBytes(img: RgbImage, r: PixelRegion, into?: Uint8Array, offset = 0): Uint8Array {
  const rowBytes = r.w * 3;
  const start = (r.y0 * img.width + r.x0) * 3;
  if (r.w === img.width) {
    const view = img.data.subarray(start, start + r.h * rowBytes);
    if (!into) return view;
    into.set(view, offset);
    return into;
  }
  const out = into ?? new Uint8Array(r.h * rowBytes);
  for (let y = 0; y < r.h; y++) {
    const s = start + y * img.width * 3;
    out.set(img.data.subarray(s, s + rowBytes), offset + y * rowBytes);
  }
  return out;
}
