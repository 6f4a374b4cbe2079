// Getting a WebGPU adapter and device: navigator.gpu in browsers and Deno, Dawn (the `webgpu`
// package) in Node. One shared device per process; a clear NO_ADAPTER error when there is none.
import { CosfaceError } from '../../errors.js';

export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  /** e.g. "llvmpipe (LLVM 19.1.7, 256 bits) (mesa, cpu, vulkan)". */
  adapterName: string;
  features: Set<string>;
  /**
   * The fixed subgroup size when the 'subgroups' feature is on and the adapter has one size
   * (8 on lavapipe with AVX2, 32 on NVIDIA); null otherwise. Kernels with subgroup variants use it.
   */
  subgroupSize: number | null;
  /** A CPU implementation of WebGPU (lavapipe/llvmpipe, SwiftShader, WARP) rather than a GPU. */
  software: boolean;
  /** Device lost or uncaptured errors are reported here; the device is unusable after loss. */
  lost: Promise<GPUDeviceLostInfo>;
  /** The options dawn.node's create() was given (Dawn toggles); empty where WebGPU is navigator.gpu. */
  dawnFlags: readonly string[];
}

let shared: Promise<GpuContext> | null = null;
// Dawn's GPU objects must stay referenced for the life of every device made from them: if one is
// garbage-collected, Dawn crashes the process within a few dispatches. Module scope keeps them,
// one per set of Dawn flags.
const dawnGpus = new Map<string, GPU>();

/** True when the user switched WebGPU off (COSFACE_WEBGPU=off|0|false), e.g. to test the fallback. */
export function webgpuDisabled(): boolean {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.COSFACE_WEBGPU;
  return v !== undefined && ['off', '0', 'false', 'no'].includes(v.toLowerCase());
}

/** COSFACE_WEBGPU_SUBGROUPS=off runs the kernels without subgroup operations (for comparison). */
function subgroupsDisabled(): boolean {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.COSFACE_WEBGPU_SUBGROUPS;
  return v !== undefined && ['off', '0', 'false', 'no'].includes(v.toLowerCase());
}

/**
 * Dawn device toggles turned on in Node (dawn.node) on software adapters (lavapipe), where every
 * shader the device runs is one of ours (generated in kernels/ and train/loss-wgsl.ts), never a
 * user's. `disable_robustness` drops what Tint adds for untrusted shaders: a 64-bit iteration
 * counter in every loop (so that an endless loop cannot hang the device) and a check that a
 * subgroupBroadcast's lane exists, one compare and select per broadcast (32 per K step in the
 * subgroup GEMM). Buffer accesses are not affected on lavapipe: Dawn requires Vulkan's
 * robustBufferAccess and llvmpipe bounds-checks every storage access either way (same machine
 * code), so an index past a binding still reads zero and writes nothing there; every kernel also
 * clamps its indices and guards its stores itself (see the kernels' comments). Measured at batch
 * 16, alternating in one process (scripts/webgpu-toggles-ab.mjs): 3.5-4% more faces/s; the other
 * toggles tried (skip_validation, disable_workgroup_init,
 * disable_lazy_clear_for_mapped_at_creation_buffer) measured no difference and are not set.
 * onnxruntime's native WebGPU execution provider sets disable_robustness on every device. Not set
 * on GPUs, where it has not been measured, nor in browsers, which take no toggles.
 * COSFACE_WEBGPU_SAFE=1 keeps Dawn's defaults everywhere.
 */
export const SOFTWARE_DAWN_TOGGLES: readonly string[] = ['disable_robustness'];

/** COSFACE_WEBGPU_SAFE=1 keeps Dawn's defaults (no SOFTWARE_DAWN_TOGGLES). */
export function webgpuSafe(): boolean {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.COSFACE_WEBGPU_SAFE;
  return v !== undefined && !['', '0', 'off', 'false', 'no'].includes(v.toLowerCase());
}

/** The options getGpu() gives dawn.node's create() for an adapter of this kind. */
export function defaultDawnFlags(software: boolean): string[] {
  if (!software || webgpuSafe() || SOFTWARE_DAWN_TOGGLES.length === 0) return [];
  return [`enable-dawn-features=${SOFTWARE_DAWN_TOGGLES.join(',')}`];
}

async function nodeGpu(flags: readonly string[]): Promise<GPU | null> {
  const key = flags.join(' ');
  const known = dawnGpus.get(key);
  if (known) return known;
  const isNode = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
  if (!isNode) return null;
  let mod: { create(options: string[]): GPU; globals: object };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    throw new CosfaceError('NO_ADAPTER', `WebGPU: the 'webgpu' package (Dawn for Node) could not be loaded: ${(e as Error).message}`, { cause: e });
  }
  // Dawn's classes (GPUBufferUsage, GPUShaderStage, ...) as globals, as in a browser.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  const gpu = mod.create([...flags]);
  dawnGpus.set(key, gpu);
  return gpu;
}

function describeAdapter(adapter: GPUAdapter): string {
  return describeAdapterInfo(adapter.info);
}

function describeAdapterInfo(info: Pick<GPUAdapterInfo, 'description' | 'device' | 'vendor' | 'architecture'>): string {
  const parts = [info.description || info.device, info.vendor, info.architecture].filter((s) => s && s.length > 0);
  return parts.length ? parts.join(', ') : 'unknown adapter';
}

/** A CPU implementation of WebGPU (lavapipe/llvmpipe, SwiftShader, WARP) rather than a GPU. */
function isSoftwareAdapter(name: string, info: Pick<GPUAdapterInfo, 'vendor' | 'architecture'>): boolean {
  return /llvmpipe|lavapipe|swiftshader|warp|software|cpu/i.test(`${name} ${info.vendor} ${info.architecture}`);
}

export interface AdapterProbe {
  /** null when there is no adapter (or WebGPU is switched off, or the probe failed: see reason). */
  adapterName: string | null;
  software: boolean;
  reason?: string;
}

let probed: Promise<AdapterProbe> | null = null;

/**
 * What adapter WebGPU would give, found without opening WebGPU in this process. In Node the probe
 * runs Dawn in a short child process: Dawn prints notices straight to file descriptor 2 while it
 * enumerates adapters ("maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000
 * to 16 ..." for every Vulkan driver reporting more dynamic buffers than Dawn supports: lavapipe,
 * RADV), whatever limits the device is later asked for, and nothing in Node can redirect a native
 * write to fd 2. So `auto`, which keeps the WASM backend on software adapters, never loads Dawn
 * where it will not use it, and a command's stderr stays its own. Costs one short process
 * (~0.2 s) once per process. In browsers and Deno the adapter is asked for directly.
 */
export function probeAdapter(): Promise<AdapterProbe> {
  if (!probed) probed = probeOnce();
  return probed;
}

async function probeOnce(): Promise<AdapterProbe> {
  if (webgpuDisabled()) return { adapterName: null, software: false, reason: 'WebGPU is switched off (COSFACE_WEBGPU=off)' };
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (typeof proc?.versions?.node !== 'string' || (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu) {
    try {
      const gpu = await getGpu();
      return { adapterName: gpu.adapterName, software: gpu.software };
    } catch (e) {
      return { adapterName: null, software: false, reason: (e as Error).message };
    }
  }
  const { execFile } = await import('node:child_process');
  const { createRequire } = await import('node:module');
  const { pathToFileURL } = await import('node:url');
  let entry: string;
  try {
    entry = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch (e) {
    return { adapterName: null, software: false, reason: `the 'webgpu' package (Dawn for Node) could not be found: ${(e as Error).message}` };
  }
  const script = `const m = await import(${JSON.stringify(entry)});
const a = await m.create([]).requestAdapter({ powerPreference: 'high-performance' });
const i = a ? a.info : null;
process.stdout.write(JSON.stringify(i ? { description: i.description, device: i.device, vendor: i.vendor, architecture: i.architecture } : null));
process.exit(0);`;
  const out = await new Promise<{ stdout: string; error: Error | null }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000, windowsHide: true }, (error, stdout) => resolve({ stdout: String(stdout), error }));
  });
  if (out.error) return { adapterName: null, software: false, reason: `WebGPU probe failed: ${out.error.message.split('\n')[0]}` };
  let info: Pick<GPUAdapterInfo, 'description' | 'device' | 'vendor' | 'architecture'> | null;
  try {
    info = JSON.parse(out.stdout) as typeof info;
  } catch {
    return { adapterName: null, software: false, reason: `WebGPU probe printed no adapter description: ${out.stdout.slice(0, 200)}` };
  }
  if (!info) return { adapterName: null, software: false, reason: 'no WebGPU adapter' };
  const adapterName = describeAdapterInfo(info);
  return { adapterName, software: isSoftwareAdapter(adapterName, info) };
}

export interface GpuContextOptions {
  /**
   * Dawn's options for dawn.node's create(), e.g. ['enable-dawn-features=disable_robustness'].
   * Default: defaultDawnFlags() for the adapter found. Ignored where WebGPU comes from
   * navigator.gpu (browsers, Deno).
   */
  dawnFlags?: readonly string[];
}

/**
 * A new WebGPU device, not the shared one: for comparing Dawn settings in one process (two
 * devices side by side) and for tests. getGpu() is the one to use otherwise.
 */
export function createGpuContext(opts: GpuContextOptions = {}): Promise<GpuContext> {
  return acquire(opts.dawnFlags ?? null);
}

/** flags: dawn.node's options, or null for defaultDawnFlags() of the adapter found. */
async function acquire(flags: readonly string[] | null): Promise<GpuContext> {
  if (webgpuDisabled()) throw new CosfaceError('NO_ADAPTER', 'WebGPU is switched off (COSFACE_WEBGPU=off)');
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  let dawnFlags: string[] = nav?.gpu ? [] : [...(flags ?? [])];
  let gpu = nav?.gpu ?? (await nodeGpu(dawnFlags));
  if (!gpu) throw new CosfaceError('NO_ADAPTER', 'WebGPU is not available in this runtime (no navigator.gpu)');
  let adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter && !nav?.gpu && flags === null) {
    // Toggles are options of Dawn's instance (create()), and whether to set them depends on the
    // adapter: on a software adapter, ask again through an instance with them (~0.1 s, once).
    const want = defaultDawnFlags(isSoftwareAdapter(describeAdapter(adapter), adapter.info));
    if (want.length > 0) {
      dawnFlags = want;
      gpu = (await nodeGpu(want))!;
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    }
  }
  if (!adapter) {
    throw new CosfaceError(
      'NO_ADAPTER',
      'WebGPU: no adapter found. On Linux without a GPU install Mesa 25 lavapipe (mesa-vulkan-drivers from bookworm-backports); otherwise use --backend wasm.',
    );
  }
  const l = adapter.limits;
  const features: GPUFeatureName[] = [];
  if (adapter.features.has('timestamp-query')) features.push('timestamp-query');
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  let subgroupSize: number | null = null;
  if (adapter.features.has('subgroups' as GPUFeatureName) && !subgroupsDisabled()) {
    features.push('subgroups' as GPUFeatureName);
    if (info.subgroupMinSize && info.subgroupMinSize === info.subgroupMaxSize) subgroupSize = info.subgroupMinSize;
  }
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  const lost = device.lost;
  const name = describeAdapter(adapter);
  const software = isSoftwareAdapter(name, info);
  return { device, adapter, adapterName: name, features: new Set(features), subgroupSize, software, lost, dawnFlags };
}

/** The process-wide WebGPU device (created on first use). Rejects with NO_ADAPTER when there is none. */
export function getGpu(): Promise<GpuContext> {
  if (!shared) {
    const p = acquire(null);
    shared = p;
    p.then(
      (gpu) =>
        gpu.lost.then(() => {
          if (shared === p) shared = null;
        }),
      () => {
        if (shared === p) shared = null;
      },
    );
  }
  return shared;
}

/** True when an adapter can be had (never throws). */
export async function hasWebGpu(): Promise<boolean> {
  try {
    await getGpu();
    return true;
  } catch {
    return false;
  }
}
