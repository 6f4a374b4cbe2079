// The batched alignment warp on the WASM backend (assembly/warp.ts): the crops of a call are split
// into contiguous runs, one per worker; each worker gets only the image region its crops can read
// (a copy of those rows, transferred), so a large photo is never copied whole to every worker.
import type { Similarity, WarpOptions } from '../../pipeline/align.js';
import type { RgbImage } from '../../pipeline/decode.js';
import { planWarp, regionBytes, unionRegion, type PixelRegion } from '../warp.js';
import type { WasmKernels } from './wasm-instance.js';
import { splitRanges } from './split-ranges.js';
import type { WasmWorkers } from './wasm-protocol.js';

/** One worker's share: n crops read from `region` (its pixels in `pixels`). */
export interface WarpJob {
  pixels: Uint8Array;
  region: PixelRegion;
  /** n x 5 values per crop: a, b, tx, ty, k. */
  params: Float64Array;
  n: number;
  outW: number;
  outH: number;
  fill: number;
  /** Taps outside the image read the nearest edge pixel (the region is then clamped, never empty). */
  replicate: boolean;
}

/** Runs a warp job on one kernel instance (memory is taken from the bump allocator and given back). */
export function warpOnInstance(kernels: WasmKernels, job: WarpJob): Float32Array {
  const { n, outW, outH, region } = job;
  const outFloats = n * outW * outH * 3;
  const mark = kernels.mark();
  try {
    const img = kernels.alloc(Math.max(16, job.pixels.length));
    new Uint8Array(kernels.k.memory.buffer, img, job.pixels.length).set(job.pixels);
    const params = kernels.alloc(job.params.byteLength);
    new Float64Array(kernels.k.memory.buffer, params, job.params.length).set(job.params);
    const out = kernels.alloc(outFloats * 4);
    kernels.k.warp(out, img, region.x0, region.y0, region.w, region.h, params, n, outW, outH, job.fill, job.replicate ? 1 : 0);
    return kernels.f32.slice(out >> 2, (out >> 2) + outFloats);
  } finally {
    kernels.reset(mark);
  }
}

/** Backend.warp on a worker pool: validates (BAD_INPUT), splits the crops over the workers. */
export async function warpOnPool(pool: WasmWorkers, img: RgbImage, transforms: readonly Similarity[], outW: number, outH: number, opts: WarpOptions = {}): Promise<Float32Array> {
  const plan = planWarp(img, transforms, outW, outH, opts);
  const per = outW * outH * 3;
  const ranges = splitRanges(plan.n, pool.size);
  const parts = await Promise.all(
    ranges.map((r, i) => {
      const region = unionRegion(plan.regions.slice(r.start, r.start + r.count));
      // A full-width region is a view of img.data: copy it, transferring would detach the caller's pixels.
      const bytes = regionBytes(img, region);
      const pixels = bytes.buffer === img.data.buffer ? bytes.slice() : bytes;
      const params = new Float64Array(r.count * 5);
      for (let j = 0; j < r.count; j++) {
        const m = transforms[r.start + j]!;
        params.set([m.a, m.b, m.tx, m.ty, plan.k[r.start + j]!], j * 5);
      }
      const job: WarpJob = { pixels, region, params, n: r.count, outW, outH, fill: plan.fill, replicate: plan.replicate };
      return pool.request<Float32Array>(i, { type: 'warp', job }, [pixels.buffer as ArrayBuffer, params.buffer as ArrayBuffer]);
    }),
  );
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(plan.n * per);
  ranges.forEach((r, i) => out.set(parts[i]!, r.start * per));
  return out;
}
