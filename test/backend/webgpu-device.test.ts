// The WebGPU layer: pipelines keyed by shader variant, WGSL errors that name the shader.
import { describe, expect, it } from 'vitest';
import { getGpu } from '../../src/backend/webgpu/device.js';
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
