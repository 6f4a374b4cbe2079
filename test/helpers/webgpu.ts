// WebGPU test gating: on a developer machine without an adapter the WebGPU tests skip; in CI
// (COSFACE_REQUIRE_WEBGPU=1, set by .ci/run) they run and fail loudly instead.
import { hasWebGpu } from '../../src/backend/webgpu/device.js';

export const webgpuRequired = process.env.COSFACE_REQUIRE_WEBGPU === '1';
export const webgpuAvailable = await hasWebGpu();
/** Use as describe.skipIf(skipWebGpu). */
export const skipWebGpu = !webgpuAvailable && !webgpuRequired;
