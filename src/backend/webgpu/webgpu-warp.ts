// The batched alignment warp on WebGPU (WGSL in kernels/warp.ts): all crops of a call in one command
// buffer, normally one dispatch. Crops are grouped so that each group's output, tables and image
// region fit one storage binding (groups of consecutive crops; a group whose image region is too
// large is split into single crops); a crop that does not fit even alone (an image region or a
// crop over the device's binding limit) is cut on the CPU by warpToCrop.
import { CosfaceError } from '../../errors.js';
import { warpToCrop, type Similarity, type WarpOptions } from '../../pipeline/align.js';
import type { RgbImage } from '../../pipeline/decode.js';
import { planWarp, regionBytes, unionRegion, type PixelRegion, type WarpPlan } from '../warp.js';
import type { BufferPool } from './buffer-pool.js';
import type { GpuContext } from './device.js';
import type { PipelineCache, ShaderSpec } from './pipeline-cache.js';
import { WARP_WGSL } from './kernels/warp.js';

// GPUBufferUsage / GPUMapMode values (usable before Dawn's globals are installed).
const STORAGE_IN = 0x80 | 0x08; // STORAGE | COPY_DST
const STORAGE_OUT = 0x80 | 0x04; // STORAGE | COPY_SRC
const UNIFORM = 0x40 | 0x08; // UNIFORM | COPY_DST
const READBACK = 0x01 | 0x08; // MAP_READ | COPY_DST
const MAP_READ = 0x0001;

/** Must match kernels/warp.ts. */
const WG = 8;
const MAX_GRID = 65535;

export type WarpFn = (img: RgbImage, transforms: readonly Similarity[], outW: number, outH: number, opts?: WarpOptions) => Promise<Float32Array>;

interface Group {
  start: number;
  count: number;
  region: PixelRegion;
}

function spec(): ShaderSpec {
  return { name: 'warp', code: WARP_WGSL, entryPoint: 'main' };
}

/** Bytes of a region as uploaded: its RGB bytes in whole u32 words plus one padding word. */
const regionUploadBytes = (r: PixelRegion): number => (Math.ceil((r.w * r.h * 3) / 4) + 1) * 4;

/** Splits the crops into groups that fit maxBinding bytes per binding; the rest go to the CPU. */
export function planWarpGroups(plan: WarpPlan, maxBinding: number): { groups: Group[]; cpu: number[] } {
  const { n, outW, outH } = plan;
  const perCrop = Math.max(outW * outH * 12, (outW + outH) * 16);
  const maxCrops = Math.min(MAX_GRID, Math.floor(maxBinding / perCrop));
  const groups: Group[] = [];
  const cpu: number[] = [];
  if (maxCrops < 1) return { groups, cpu: Array.from({ length: n }, (_, i) => i) };
  for (let start = 0; start < n; start += maxCrops) {
    const count = Math.min(maxCrops, n - start);
    const region = unionRegion(plan.regions.slice(start, start + count));
    if (regionUploadBytes(region) <= maxBinding) {
      groups.push({ start, count, region });
      continue;
    }
    for (let i = start; i < start + count; i++) {
      const r = plan.regions[i]!;
      if (regionUploadBytes(r) <= maxBinding) groups.push({ start: i, count: 1, region: r });
      else cpu.push(i);
    }
  }
  return { groups, cpu };
}

/** The crops' per-crop records (a, b, k, 1/k^2) and column/row tables (see kernels/warp.ts). */
function cropTables(plan: WarpPlan, transforms: readonly Similarity[], g: Group): { crops: ArrayBuffer; tabs: Float32Array } {
  const { outW, outH } = plan;
  const crops = new ArrayBuffer(g.count * 16);
  const cf = new Float32Array(crops);
  const cu = new Uint32Array(crops);
  const tabs = new Float32Array(g.count * (outW + outH) * 4);
  const put = (o: number, x: number, y: number) => {
    const ix = Math.floor(x);
    const iy = Math.floor(y);
    tabs[o] = ix;
    tabs[o + 1] = x - ix;
    tabs[o + 2] = iy;
    tabs[o + 3] = y - iy;
  };
  for (let j = 0; j < g.count; j++) {
    const m = transforms[g.start + j]!;
    const k = plan.k[g.start + j]!;
    cf[j * 4] = m.a;
    cf[j * 4 + 1] = m.b;
    cu[j * 4 + 2] = k;
    cf[j * 4 + 3] = 1 / (k * k);
    const base = j * (outW + outH) * 4;
    for (let u = 0; u < outW; u++) put(base + u * 4, m.a * u, m.b * u);
    for (let v = 0; v < outH; v++) put(base + (outW + v) * 4, -m.b * v + m.tx - 0.5, m.a * v + m.ty - 0.5);
  }
  return { crops, tabs };
}

/**
 * Backend.warp for a WebGPU device. Calls run one at a time (their error scopes must not
 * interleave). maxBindingBytes lowers the per-binding limit (tests use it to exercise grouping).
 */
export function createWebGpuWarp(gpu: GpuContext, pipelines: PipelineCache, pool: BufferPool, maxBindingBytes?: number): WarpFn {
  const device = gpu.device;
  const maxBinding = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize, maxBindingBytes ?? Infinity);
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn);
    queue = p.catch(() => undefined);
    return p;
  };

  async function warp(img: RgbImage, transforms: readonly Similarity[], outW: number, outH: number, opts: WarpOptions = {}): Promise<Float32Array> {
    const plan = planWarp(img, transforms, outW, outH, opts);
    const per = outW * outH * 3;
    const { groups, cpu } = planWarpGroups(plan, maxBinding);
    let out: Float32Array;
    if (groups.length === 0) out = new Float32Array(plan.n * per);
    else {
      const pipeline = await pipelines.get(spec());
      out = await runGroups(pipeline, plan, transforms, img, groups);
    }
    for (const i of cpu) warpToCrop(img, transforms[i]!, outW, outH, { fill: plan.fill, border: plan.replicate ? 'replicate' : 'constant', supersample: plan.k[i]! }, out, i * per);
    return out;
  }

  async function runGroups(pipeline: GPUComputePipeline, plan: WarpPlan, transforms: readonly Similarity[], img: RgbImage, groups: Group[]): Promise<Float32Array> {
    const { outW, outH } = plan;
    const per = outW * outH * 3;
    const outBytes = plan.n * per * 4;
    const held: GPUBuffer[] = [];
    const acquire = (bytes: number, usage: number, label: string) => {
      const b = pool.acquire(bytes, usage, label);
      held.push(b);
      return b;
    };
    const readback = acquire(outBytes, READBACK, 'warp readback');
    try {
      device.pushErrorScope('validation');
      device.pushErrorScope('out-of-memory');
      // Both pops issued together: nothing else can push a scope in between.
      const popScopes = () => Promise.all([device.popErrorScope(), device.popErrorScope()]);
      try {
        const encoder = device.createCommandEncoder({ label: 'warp' });
        const pass = encoder.beginComputePass({ label: 'warp' });
        pass.setPipeline(pipeline);
        const outs: GPUBuffer[] = [];
        for (const g of groups) {
          const r = g.region;
          const imgBytes = regionUploadBytes(r);
          const imgBuf = acquire(imgBytes, STORAGE_IN, 'warp image');
          if (r.w > 0 && r.h > 0) {
            const staged = new Uint8Array(imgBytes);
            regionBytes(img, r, staged, 0);
            device.queue.writeBuffer(imgBuf, 0, staged.buffer, 0, imgBytes);
          }
          const { crops, tabs } = cropTables(plan, transforms, g);
          const cropBuf = acquire(crops.byteLength, STORAGE_IN, 'warp crops');
          device.queue.writeBuffer(cropBuf, 0, crops, 0, crops.byteLength);
          const tabBuf = acquire(tabs.byteLength, STORAGE_IN, 'warp tables');
          device.queue.writeBuffer(tabBuf, 0, tabs.buffer, 0, tabs.byteLength);
          const outBuf = acquire(g.count * per * 4, STORAGE_OUT, 'warp out');
          outs.push(outBuf);
          const params = new ArrayBuffer(48);
          const pu = new Uint32Array(params);
          const pi = new Int32Array(params);
          pu.set([outW, outH, g.count, r.w, r.h]);
          pi[5] = r.x0;
          pi[6] = r.y0;
          new Float32Array(params)[7] = plan.fill;
          pu[8] = plan.replicate ? 1 : 0;
          const uni = acquire(48, UNIFORM, 'warp params');
          device.queue.writeBuffer(uni, 0, params, 0, 48);
          const bindGroup = device.createBindGroup({
            layout: pipeline.getBindGroupLayout(0),
            label: 'warp',
            entries: [
              { binding: 0, resource: { buffer: imgBuf, size: imgBytes } },
              { binding: 1, resource: { buffer: cropBuf, size: crops.byteLength } },
              { binding: 2, resource: { buffer: tabBuf, size: tabs.byteLength } },
              { binding: 3, resource: { buffer: outBuf, size: g.count * per * 4 } },
              { binding: 4, resource: { buffer: uni, size: 48 } },
            ],
          });
          pass.setBindGroup(0, bindGroup);
          pass.dispatchWorkgroups(Math.ceil(outW / WG), Math.ceil(outH / WG), g.count);
        }
        pass.end();
        groups.forEach((g, i) => encoder.copyBufferToBuffer(outs[i]!, 0, readback, g.start * per * 4, g.count * per * 4));
        device.queue.submit([encoder.finish()]);
      } catch (e) {
        await popScopes();
        throw e;
      }
      const [oom, invalid] = await popScopes();
      if (oom || invalid) throw new CosfaceError('GPU_ERROR', `webgpu warp: ${(oom ?? invalid)!.message}`);
      await readback.mapAsync(MAP_READ, 0, outBytes);
      const out = new Float32Array(readback.getMappedRange(0, outBytes).slice(0));
      readback.unmap();
      return out;
    } finally {
      for (const b of held) pool.release(b);
    }
  }

  return (img, transforms, outW, outH, opts) => serial(() => warp(img, transforms, outW, outH, opts));
}
