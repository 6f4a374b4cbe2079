// The WebGPU layer: pipelines keyed by shader variant, WGSL errors that name the shader, Dawn's
// toggles on software adapters.
import { describe, expect, it } from 'vitest';
import { createGpuContext, getGpu, SOFTWARE_DAWN_TOGGLES, webgpuSafe, type GpuContext } from '../../src/backend/webgpu/device.js';
import { PipelineCache } from '../../src/backend/webgpu/pipeline-cache.js';
import { L2NORMALIZE_WGSL } from '../../src/backend/webgpu/kernels/elementwise.js';
import { matmulWgsl } from '../../src/backend/webgpu/kernels/matmul.js';
import { isCosfaceError } from '../../src/errors.js';
import { skipWebGpu } from '../helpers/webgpu.js';

describe.skipIf(skipWebGpu)('WebGPU device layer', () => {
  it('turns a WGSL compile error into SHADER_COMPILE naming the shader and line', async () => {
    const { device } = await getGpu();
    const cache = new PipelineCache(device);
    const code = '@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = undefined_thing;\n}\n';
    const err = await cache.get({ name: 'broken.wgsl', code, entryPoint: 'main' }).catch((e: unknown) => e);
    expect(isCosfaceError(err, 'SHADER_COMPILE')).toBe(true);
    expect((err as Error).message).toMatch(/broken\.wgsl:3:/);
    // The device still works afterwards.
    const ok = await cache.get({ name: 'ok.wgsl', code: '@compute @workgroup_size(1) fn main() {}', entryPoint: 'main' });
    expect(ok).toBeDefined();
  });

  it('caches pipelines by variant: the same spec twice is one pipeline', async () => {
    const { device } = await getGpu();
    const cache = new PipelineCache(device);
    const spec = { name: 'l2normalize', code: L2NORMALIZE_WGSL, entryPoint: 'main' };
    const a = await cache.get(spec);
    const b = await cache.get({ ...spec });
    expect(a).toBe(b);
    expect(cache.size).toBe(1);
    // Two tiles of the generated GEMM are two variants, each generated again gives the same one.
    const t84 = await cache.get(matmulWgsl({ rows: 8, cols4: 4 }));
    const t44 = await cache.get(matmulWgsl({ rows: 4, cols4: 4 }));
    expect(t84).not.toBe(t44);
    expect(await cache.get(matmulWgsl({ rows: 8, cols4: 4 }))).toBe(t84);
    expect(cache.size).toBe(3);
    // Even under one name, different WGSL is never served the other's pipeline.
    const renamed = await cache.get({ ...matmulWgsl({ rows: 2, cols4: 1 }), name: matmulWgsl({ rows: 8, cols4: 4 }).name });
    expect(renamed).not.toBe(t84);
  });
});

/**
 * subgroupBroadcast from a lane that does not exist (a workgroup of 4 on subgroups of 8): WGSL
 * leaves the value undefined. Dawn's robustness makes it 0 (Tint adds a check that the lane is
 * within the subgroup); without it llvmpipe hands over what that lane computed (it runs all 8
 * lanes of its SIMD vector whatever the workgroup size), here 10 + 6.
 */
async function broadcastFromMissingLane(gpu: GpuContext): Promise<number> {
  const { device } = gpu;
  const code = `enable subgroups;
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(4)
fn main(@builtin(subgroup_invocation_id) sl: u32) {
  o[sl] = subgroupBroadcast(f32(sl) + 10.0, 6u);
}`;
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const out = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(1);
  pass.end();
  encoder.copyBufferToBuffer(out, 0, read, 0, 16);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const v = new Float32Array(read.getMappedRange().slice(0))[0]!;
  read.unmap();
  out.destroy();
  read.destroy();
  return v;
}

describe.skipIf(skipWebGpu)("Dawn's toggles (Node)", () => {
  it('on a software adapter the shared device runs without robustness, unless COSFACE_WEBGPU_SAFE is set', async () => {
    const gpu = await getGpu();
    const expected = gpu.software && !webgpuSafe() ? [`enable-dawn-features=${SOFTWARE_DAWN_TOGGLES.join(',')}`] : [];
    expect(gpu.dawnFlags).toEqual(expected);
  });

  // Shows that the toggle reaches the device (Dawn has no API to list a device's toggles): the
  // kernel tests, which use the shared device, then run the kernels as production does.
  it.skipIf(process.env.COSFACE_WEBGPU_SAFE)('on lavapipe the shared device has no subgroup lane check; a device with Dawn defaults has', async (ctx) => {
    const gpu = await getGpu();
    // The probe relies on llvmpipe's 8-wide SIMD: elsewhere the test reports itself skipped, never passed.
    if (!gpu.software || gpu.subgroupSize !== 8 || !/llvmpipe/i.test(gpu.adapterName)) ctx.skip();
    const safe = await createGpuContext({ dawnFlags: [] });
    try {
      expect(safe.dawnFlags).toEqual([]);
      expect(await broadcastFromMissingLane(safe)).toBe(0);
      expect(await broadcastFromMissingLane(gpu)).toBe(16);
    } finally {
      safe.device.destroy();
    }
  });
});
