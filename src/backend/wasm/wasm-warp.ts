// The batched alignment warp on the WASM backend (assembly/warp.ts): the output rows of a call (its
// crops back to back) are split into contiguous runs, one per worker, so a single crop is shared
// too; each worker gets only the image region its rows can read (a copy of those rows,
// transferred), so a large photo is never copied whole to every worker.
import type { Similarity, WarpOptions } from '../../pipeline/align.js';
import type { RgbImage } from '../../pipeline/decode.js';
import { cropRegion, planWarp, regionBytes, unionRegion, type PixelRegion, type WarpPlan } from '../warp.js';
import type { WasmKernels } from './wasm-instance.js';
import { splitRanges } from './split-ranges.js';
import type { WasmWorkers } from './wasm-protocol.js';

/** One worker's share: segments of crops (rows of one crop each) read from `region` (its pixels in `pixels`). */
export interface WarpJob {
  pixels: Uint8Array;
  region: PixelRegion;
  /** n x 7 values per segment: a, b, tx, ty, k, first row, rows. */
  params: Float64Array;
  /** Segments. */
  n: number;
  /** Output rows of all segments together. */
  rows: number;
  outW: number;
  fill: number;
  /** Taps outside the image read the nearest edge pixel (the region is then clamped, never empty). */
  replicate: boolean;
}

/** Runs a warp job on one kernel instance (memory is taken from the bump allocator and given back). */
export function warpOnInstance(kernels: WasmKernels, job: WarpJob): Float32Array {
  const { n, outW, region } = job;
  const outFloats = job.rows * outW * 3;
  const mark = kernels.mark();
  try {
    const img = kernels.alloc(Math.max(16, job.pixels.length));
    new Uint8Array(kernels.k.memory.buffer, img, job.pixels.length).set(job.pixels);
    const params = kernels.alloc(job.params.byteLength);
    new Float64Array(kernels.k.memory.buffer, params, job.params.length).set(job.params);
    const out = kernels.alloc(outFloats * 4);
    kernels.k.warp(out, img, region.x0, region.y0, region.w, region.h, params, n, outW, job.fill, job.replicate ? 1 : 0);
    return kernels.f32.slice(out >> 2, (out >> 2) + outFloats);
  } finally {
    kernels.reset(mark);
  }
}

/**
 * A warp call as `parts` jobs of (nearly) equal numbers of output rows, in output order: the
 * crops' rows back to back are cut into contiguous runs, so one large crop (a detector view of a
 * whole photo) is shared by every worker as well as many small ones. Each job carries only the
 * pixels its rows can read: the region of each of its segments (cropRegion of the rows' band,
 * which starts `v0` rows into the crop), joined. `transfer`: the jobs' pixels will be transferred
 * to a worker, so a region that is a view of the caller's image is copied.
 */
export function warpJobs(img: RgbImage, plan: WarpPlan, transforms: readonly Similarity[], parts: number, transfer = true): WarpJob[] {
  const { outW, outH } = plan;
  return splitRanges(plan.n * outH, parts).map((r) => {
    const segments: { c: number; v0: number; rows: number }[] = [];
    for (let row = r.start; row < r.start + r.count; ) {
      const c = Math.floor(row / outH);
      const v0 = row - c * outH;
      const rows = Math.min(outH - v0, r.start + r.count - row);
      segments.push({ c, v0, rows });
      row += rows;
    }
    const params = new Float64Array(segments.length * 7);
    const regions = segments.map(({ c, v0, rows }, j) => {
      const m = transforms[c]!;
      params.set([m.a, m.b, m.tx, m.ty, plan.k[c]!, v0, rows], j * 7);
      if (v0 === 0 && rows === outH) return plan.regions[c]!;
      // Rows v0.. of the crop are the crop whose origin is moved v0 rows down.
      const band = { a: m.a, b: m.b, tx: m.tx - m.b * v0, ty: m.ty + m.a * v0 };
      return cropRegion(band, outW, rows, img.width, img.height, plan.replicate);
    });
    const region = unionRegion(regions);
    // A full-width region is a view of img.data: copy it, transferring would detach the caller's pixels.
    const bytes = regionBytes(img, region);
    const pixels = transfer && bytes.buffer === img.data.buffer ? bytes.slice() : bytes;
    return { pixels, region, params, n: segments.length, rows: r.count, outW, fill: plan.fill, replicate: plan.replicate };
  });
}

/** Backend.warp on a worker pool: validates (BAD_INPUT), splits the output rows over the workers. */
export async function warpOnPool(pool: WasmWorkers, img: RgbImage, transforms: readonly Similarity[], outW: number, outH: number, opts: WarpOptions = {}): Promise<Float32Array> {
  const plan = planWarp(img, transforms, outW, outH, opts);
  const jobs = warpJobs(img, plan, transforms, pool.size);
  const parts = await Promise.all(jobs.map((job, i) => pool.request<Float32Array>(i, { type: 'warp', job }, [job.pixels.buffer as ArrayBuffer, job.params.buffer as ArrayBuffer])));
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(plan.n * outW * outH * 3);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
