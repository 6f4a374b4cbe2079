// The WebGPU backend: plans a graph into WGSL kernel dispatches, uploads weights once, keeps
// activation buffers in a liveness-based arena sized for the largest batch seen, and runs a
// whole batch as one command buffer (one submission). The alignment warp is in webgpu-warp.ts.
import { CosfaceError } from '../../errors.js';
import { nodeMacs, numel, type Graph } from '../../graph/ir.js';
import type { Backend, CompiledGraph } from '../backend.js';
import { BufferPool } from './buffer-pool.js';
import { getGpu, type GpuContext } from './device.js';
import { GpuWait } from './gpu-wait.js';
import type { KernelPlan, PlanContext } from './ops/kernel.js';
import { ALIAS_OPS, planNode } from './ops/registry.js';
import { PipelineCache } from './pipeline-cache.js';
import { createWebGpuWarp } from './webgpu-warp.js';

const STORAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC (GPUBufferUsage, usable before globals exist)
const UNIFORM = 0x40 | 0x08; // UNIFORM | COPY_DST
const MAP_READ = 0x01 | 0x08; // MAP_READ | COPY_DST

interface Step {
  plan: KernelPlan;
  pipeline: GPUComputePipeline;
  constBuffers: (GPUBuffer | null)[];
}

/** Per-kernel timing from timestamp queries. */
export interface KernelTiming {
  node: string;
  op: string;
  shader: string;
  ms: number;
  /** Multiply-adds of this node for the whole batch. */
  macs: number;
}

export interface WebGpuCompiledGraph extends CompiledGraph {
  /** Runs each kernel in its own pass with timestamps (needs the timestamp-query feature). */
  profile(input: Float32Array, n: number): Promise<KernelTiming[]>;
  readonly pipelineCount: number;
  /** Largest batch run as one chunk (bounded by the storage binding size limit). */
  readonly maxChunk: number;
}

export interface WebGpuBackend extends Backend {
  readonly name: 'webgpu';
  readonly gpu: GpuContext;
  readonly pipelines: PipelineCache;
  readonly pool: BufferPool;
  compile(graph: Graph): Promise<WebGpuCompiledGraph>;
}

export interface WebGpuBackendOptions {
  /**
   * Use the kernel set tuned for CPU adapters: the subgroup variants (matmulSubgroupWgsl,
   * conv2dSubgroupWgsl) and the vec4 row-streamed depthwise (depthwise3x3Wgsl v4). Default: on
   * software adapters (lavapipe), where every storage load is a per-lane gather and sharing
   * loads through subgroup broadcasts measured 2.9x faster; off on GPUs, where the register-tiled
   * matmulWgsl measured faster (H200: 4256 against 3149 faces/s at batch 16; BENCHMARKS.md)
   * and the other two have not been measured yet.
   */
  subgroups?: boolean;
  /**
   * Per-binding byte limit for warp() below the device's maxStorageBufferBindingSize (tests use a
   * small one to exercise splitting a call into several dispatches and the CPU fallback).
   */
  maxWarpBindingBytes?: number;
  /** Tile of the subgroup GEMM (rows per subgroup, vec4 columns per lane) instead of the planner's default, to compare tiles in one process. */
  subgroupGemm?: { rows: number; cols: number } | null;
  /** The device to use instead of the shared one (getGpu()), e.g. one with other Dawn toggles from createGpuContext(). */
  gpu?: GpuContext;
}

export async function createWebGpuBackend(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const gpu = opts.gpu ?? (await getGpu());
  const useSubgroups = opts.subgroups ?? gpu.software;
  const subgroupSize = useSubgroups ? gpu.subgroupSize : null;
  const pipelines = new PipelineCache(gpu.device);
  const pool = new BufferPool(gpu.device);
  return {
    name: 'webgpu',
    gpu,
    pipelines,
    pool,
    describe: () => `webgpu (${gpu.adapterName}${subgroupSize ? `, subgroups of ${subgroupSize}` : ''})`,
    compile: (graph) => compileGraph(gpu, pipelines, pool, graph, { subgroupSize, subgroupGemm: opts.subgroupGemm ?? null }),
    warp: createWebGpuWarp(gpu, pipelines, pool, opts.maxWarpBindingBytes),
    dispose: async () => {
      pool.destroy();
    },
  };
}

/** Assigns tensors to arena slots by liveness so buffers are reused between layers. */
function planSlots(graph: Graph, alias: Map<string, string>): { slotOf: Map<string, number>; slotFloats: number[] } {
  const root = (t: string): string => {
    let r = t;
    while (alias.has(r)) r = alias.get(r)!;
    return r;
  };
  const lastUse = new Map<string, number>();
  graph.nodes.forEach((node, i) => {
    for (const t of node.inputs) lastUse.set(root(t), i);
  });
  lastUse.set(root(graph.output.name), Infinity);
  lastUse.set(graph.input.name, Math.max(lastUse.get(graph.input.name) ?? 0, 0));
  const slotOf = new Map<string, number>();
  const slotFloats: number[] = [];
  const freeAt: number[] = []; // node index after which a slot is free
  const assign = (t: string, at: number) => {
    const size = numel(graph.shapes.get(t) ?? graph.input.shape);
    // Prefer a free slot that is already large enough, else the largest free one (grown).
    let best = -1;
    for (let s = 0; s < slotFloats.length; s++) {
      if (freeAt[s]! >= at) continue;
      if (best < 0 || (slotFloats[s]! >= size && (slotFloats[best]! < size || slotFloats[s]! < slotFloats[best]!)) || (slotFloats[best]! < size && slotFloats[s]! > slotFloats[best]!)) best = s;
    }
    if (best < 0) {
      best = slotFloats.length;
      slotFloats.push(0);
      freeAt.push(Infinity);
    }
    slotFloats[best] = Math.max(slotFloats[best]!, size);
    freeAt[best] = lastUse.get(t) ?? at;
    slotOf.set(t, best);
  };
  assign(graph.input.name, -1);
  graph.nodes.forEach((node, i) => {
    if (alias.has(node.output)) return;
    assign(node.output, i);
  });
  for (const [t] of alias) slotOf.set(t, slotOf.get(root(t))!);
  return { slotOf, slotFloats };
}

async function compileGraph(gpu: GpuContext, pipelines: PipelineCache, pool: BufferPool, graph: Graph, ctx: PlanContext): Promise<WebGpuCompiledGraph> {
  const device = gpu.device;
  const alias = new Map<string, string>();
  const plans: KernelPlan[] = [];
  for (const node of graph.nodes) {
    if (ALIAS_OPS.has(node.op)) alias.set(node.output, node.inputs[0]!);
    else plans.push(...planNode(node, graph.shapes, ctx)); // throws UNSUPPORTED_OP at load time
  }
  const { slotOf, slotFloats } = planSlots(graph, alias);

  const dummy = device.createBuffer({ size: 16, usage: STORAGE, label: 'dummy' });
  const steps: Step[] = await Promise.all(
    plans.map(async (plan) => {
      const pipeline = await pipelines.get(plan.shader);
      const constBuffers = plan.bindings.map((b) => {
        if (b.kind !== 'const') return null;
        const buf = device.createBuffer({ size: Math.max(16, Math.ceil(b.data.byteLength / 16) * 16), usage: STORAGE, label: b.label });
        device.queue.writeBuffer(buf, 0, b.data.buffer, b.data.byteOffset, b.data.byteLength);
        return buf;
      });
      return { plan, pipeline, constBuffers };
    }),
  );

  const inFloats = numel(graph.input.shape);
  const outFloats = numel(graph.output.shape);
  // The largest batch whose biggest activation buffer still fits one storage binding; bigger
  // batches run as several chunks inside the same command buffer.
  const maxSlotBytes = Math.max(...slotFloats) * 4;
  const maxChunk = Math.max(1, Math.floor(device.limits.maxStorageBufferBindingSize / maxSlotBytes));
  let capacity = 0;
  let slots: GPUBuffer[] = [];
  // Uniforms and bind groups for a chunk size, cached per size (full chunks and the last one).
  interface ChunkSet {
    uniforms: GPUBuffer[];
    bindGroups: GPUBindGroup[];
  }
  const chunkSets = new Map<number, ChunkSet>();
  let disposed = false;
  let queue: Promise<unknown> = Promise.resolve();

  const destroyChunkSets = () => {
    for (const set of chunkSets.values()) for (const u of set.uniforms) u.destroy();
    chunkSets.clear();
  };

  const ensureCapacity = (chunk: number) => {
    if (chunk <= capacity) return;
    const cap = Math.min(maxChunk, 2 ** Math.ceil(Math.log2(chunk)));
    for (const b of slots) pool.release(b);
    slots = slotFloats.map((f, i) => pool.acquire(f * cap * 4, STORAGE, `slot${i}`));
    destroyChunkSets();
    capacity = cap;
  };

  const chunkSet = (m: number): ChunkSet => {
    let set = chunkSets.get(m);
    if (set) return set;
    if (chunkSets.size >= 4) {
      const [oldest, old] = chunkSets.entries().next().value as [number, ChunkSet];
      for (const u of old.uniforms) u.destroy();
      chunkSets.delete(oldest);
    }
    const uniforms = steps.map((step) => {
      const p = step.plan.params(m);
      const u = device.createBuffer({ size: Math.max(64, p.byteLength), usage: UNIFORM, label: `${step.plan.node.name}/params(${m})` });
      device.queue.writeBuffer(u, 0, p.buffer, p.byteOffset, p.byteLength);
      return u;
    });
    const bindGroups = steps.map((step, si) => {
      const entries: GPUBindGroupEntry[] = [];
      step.plan.bindings.forEach((b, i) => {
        if (b.kind === 'unused') return;
        const buffer = b.kind === 'tensor' ? slots[slotOf.get(b.name)!]! : b.kind === 'const' ? step.constBuffers[i]! : dummy;
        entries.push({ binding: i, resource: { buffer } });
      });
      entries.push({ binding: step.plan.bindings.length, resource: { buffer: uniforms[si]! } });
      return device.createBindGroup({ layout: step.pipeline.getBindGroupLayout(0), entries, label: step.plan.node.name });
    });
    set = { uniforms, bindGroups };
    chunkSets.set(m, set);
    return set;
  };

  const check = (input: Float32Array, n: number) => {
    if (disposed) throw new CosfaceError('BAD_INPUT', 'webgpu: this compiled graph was disposed');
    if (!Number.isInteger(n) || n < 1) throw new CosfaceError('EMPTY_BATCH', `webgpu: batch size must be a positive integer, got ${n}`);
    if (input.length !== n * inFloats) throw new CosfaceError('DIMENSION_MISMATCH', `webgpu: expected ${n} x ${inFloats} input values, got ${input.length}`);
  };

  const encodeDispatches = (pass: GPUComputePassEncoder, set: ChunkSet, m: number) => {
    steps.forEach((step, i) => {
      pass.setPipeline(step.pipeline);
      pass.setBindGroup(0, set.bindGroups[i]!);
      const [x, y, z] = step.plan.dispatch(m);
      pass.dispatchWorkgroups(x, y, z);
    });
  };

  const runWait = new GpuWait(gpu.software);
  const profileWait = new GpuWait(gpu.software); // a profiled batch (one pass per kernel) takes longer than a run
  /** units: samples in the submission, for the wait estimate of `wait` (see gpu-wait.ts). */
  const submitAndRead = async (encoder: GPUCommandEncoder, readback: GPUBuffer, bytes: number, units: number, gpuWait: GpuWait): Promise<Float32Array> => {
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    const t0 = performance.now();
    device.queue.submit([encoder.finish()]);
    const scopes = Promise.all([device.popErrorScope(), device.popErrorScope()]); // popped now: nothing else can push in between
    await gpuWait.settle(units, t0, async () => {
      const [oom, invalid] = await scopes;
      if (oom || invalid) throw new CosfaceError('GPU_ERROR', `webgpu: ${(oom ?? invalid)!.message}`);
      await readback.mapAsync(0x0001 /* GPUMapMode.READ */, 0, bytes);
    });
    const out = new Float32Array(readback.getMappedRange(0, bytes).slice(0));
    readback.unmap();
    return out;
  };

  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn, fn);
    queue = p.catch(() => undefined);
    return p;
  };

  const inputSlot = () => slots[slotOf.get(graph.input.name)!]!;
  const outputSlot = () => slots[slotOf.get(graph.output.name)!]!;

  const run = (input: Float32Array, n: number) =>
    serial(async () => {
      check(input, n);
      ensureCapacity(n);
      const chunk = Math.min(n, capacity);
      const outBytes = n * outFloats * 4;
      const readback = pool.acquire(outBytes, MAP_READ, 'readback');
      const staging = n > chunk ? pool.acquire(input.byteLength, STORAGE, 'input-staging') : null;
      try {
        device.queue.writeBuffer(staging ?? inputSlot(), 0, input.buffer, input.byteOffset, input.byteLength);
        const encoder = device.createCommandEncoder({ label: 'embed' });
        for (let start = 0; start < n; start += chunk) {
          const m = Math.min(chunk, n - start);
          if (staging) encoder.copyBufferToBuffer(staging, start * inFloats * 4, inputSlot(), 0, m * inFloats * 4);
          const pass = encoder.beginComputePass();
          encodeDispatches(pass, chunkSet(m), m);
          pass.end();
          encoder.copyBufferToBuffer(outputSlot(), 0, readback, start * outFloats * 4, m * outFloats * 4);
        }
        return await submitAndRead(encoder, readback, outBytes, n, runWait);
      } finally {
        pool.release(readback);
        if (staging) pool.release(staging);
      }
    });

  const profile = (input: Float32Array, n: number) =>
    serial(async () => {
      if (!gpu.features.has('timestamp-query')) throw new CosfaceError('GPU_ERROR', 'webgpu: the adapter has no timestamp-query feature');
      check(input, n);
      if (n > maxChunk) throw new CosfaceError('BAD_INPUT', `webgpu: profile runs one chunk; batch ${n} is over ${maxChunk}`);
      ensureCapacity(n);
      const set = chunkSet(n);
      device.queue.writeBuffer(inputSlot(), 0, input.buffer, input.byteOffset, input.byteLength);
      const count = steps.length * 2;
      const querySet = device.createQuerySet({ type: 'timestamp', count });
      const resolve = device.createBuffer({ size: count * 8, usage: 0x0200 | 0x0004 /* QUERY_RESOLVE | COPY_SRC */ });
      const read = device.createBuffer({ size: count * 8, usage: MAP_READ });
      const encoder = device.createCommandEncoder({ label: 'profile' });
      steps.forEach((step, i) => {
        const pass = encoder.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
        pass.setPipeline(step.pipeline);
        pass.setBindGroup(0, set.bindGroups[i]!);
        const [x, y, z] = step.plan.dispatch(n);
        pass.dispatchWorkgroups(x, y, z);
        pass.end();
      });
      encoder.resolveQuerySet(querySet, 0, count, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, read, 0, count * 8);
      const t = new BigUint64Array((await submitAndRead(encoder, read, count * 8, n, profileWait)).buffer);
      querySet.destroy();
      resolve.destroy();
      read.destroy();
      return steps.map((step, i) => ({
        node: step.plan.node.name,
        op: step.plan.node.op,
        shader: `${step.plan.shader.name}#${step.plan.shader.entryPoint}`,
        ms: Number(t[2 * i + 1]! - t[2 * i]!) / 1e6,
        macs: nodeMacs(step.plan.node, graph.shapes) * n,
      }));
    });

  return {
    graph,
    run,
    profile,
    pipelineCount: new Set(steps.map((s) => s.pipeline)).size,
    maxChunk,
    dispose: () => {
      if (disposed) return;
      disposed = true;
      for (const b of slots) pool.release(b);
      destroyChunkSets();
      for (const s of steps) for (const b of s.constBuffers) b?.destroy();
      dummy.destroy();
    },
  };
}
