// Measures what limits compute shaders on the current WebGPU adapter: storage-buffer load
// throughput (per-lane divergent addresses, workgroup-uniform addresses, vec4 loads), plain FMA
// throughput, and a subgroup broadcast. On lavapipe every storage load costs about as much as
// a dozen FMAs, whatever the address pattern; BENCHMARKS.md explains what the kernels do about it.
// Usage: node scripts/webgpu-probe.mjs   (needs the `webgpu` package and an adapter)
// To see what llvmpipe makes of a kernel: MESA_SHADER_CACHE_DISABLE=true GALLIVM_DEBUG=asm (or ir)
// prints the x86 code of every compute shader compiled (the cs_co_variant function; with the shader
// cache on, a shader compiled before is not recompiled and prints nothing). BENCHMARKS.md reads the GEMM's.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const gpu = create([]);
globalThis.__cosfaceProbeGpu = gpu; // keep Dawn's GPU object alive
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error('no WebGPU adapter');
const hasSubgroups = adapter.features.has('subgroups');
const device = await adapter.requestDevice({ requiredFeatures: hasSubgroups ? ['subgroups'] : [] });
console.log(`adapter: ${adapter.info.description || adapter.info.device} (${adapter.info.vendor}), subgroups: ${hasSubgroups ? `${adapter.info.subgroupMinSize}-${adapter.info.subgroupMaxSize}` : 'no'}`);
const N = 1 << 22;
const a = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
const o = device.createBuffer({ size: N * 4 * 4, usage: GPUBufferUsage.STORAGE });
const L = 1024;
const G = 1024;
async function probe(name, code, units, unitName) {
  const m = device.createShaderModule({ code });
  const p = device.createComputePipeline({ layout: 'auto', compute: { module: m, entryPoint: 'main' } });
  const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: a } }, { binding: 1, resource: { buffer: o } }] });
  const once = async () => {
    const e = device.createCommandEncoder();
    const ps = e.beginComputePass();
    ps.setPipeline(p);
    ps.setBindGroup(0, bg);
    ps.dispatchWorkgroups(G);
    ps.end();
    const t = performance.now();
    device.queue.submit([e.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };
  await once();
  const ts = [await once(), await once(), await once()].sort((x, y) => x - y);
  console.log(`${name.padEnd(34)} ${ts[1].toFixed(1).padStart(8)} ms  ${(units / ts[1] / 1e6).toFixed(3).padStart(9)} G ${unitName}/s`);
}
const hdr = (t) => `@group(0) @binding(0) var<storage, read> a: array<${t}>; @group(0) @binding(1) var<storage, read_write> o: array<f32>;`;
const loop = (t, init, load, fin) => `${hdr(t)} @compute @workgroup_size(64) fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) { var s = ${init}; let g = w.x;
  for (var k = 0u; k < ${L}u; k++) { s += ${load}; } o[g * 64u + l.x] = ${fin}; }`;
const lanes = G * 64 * L;
await probe('f32 load, per-lane address', loop('f32', '0.0', 'a[(k * 64u + l.x) % 4194304u]', 's'), lanes, 'floats');
await probe('f32 load, workgroup-uniform address', loop('f32', '0.0', 'a[(k * 64u + g) % 4194304u]', 's'), lanes, 'floats');
await probe('vec4 load, per-lane address', loop('vec4<f32>', 'vec4<f32>(0.0)', 'a[(k * 64u + l.x) % 1048576u]', 's.x + s.y + s.z + s.w'), lanes * 4, 'floats');
await probe('FMA, no loads (8 chains)', `${hdr('f32')} @compute @workgroup_size(64) fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) { let x = a[l.x];
  var c0 = 0.0; var c1 = 1.0; var c2 = 2.0; var c3 = 3.0; var c4 = 4.0; var c5 = 5.0; var c6 = 6.0; var c7 = 7.0;
  for (var k = 0u; k < ${L}u; k++) { c0 = c0 * x + 1.0; c1 = c1 * x + 1.0; c2 = c2 * x + 1.0; c3 = c3 * x + 1.0; c4 = c4 * x + 1.0; c5 = c5 * x + 1.0; c6 = c6 * x + 1.0; c7 = c7 * x + 1.0; }
  o[w.x * 64u + l.x] = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7; }`, lanes * 8, 'FMAs');
if (hasSubgroups) {
  await probe('subgroupBroadcast of a loaded value', `enable subgroups; ${hdr('f32')} @compute @workgroup_size(64) fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) { var s = 0.0;
    for (var k = 0u; k < ${L}u; k++) { let v = a[(k * 64u + l.x) % 4194304u]; s += subgroupBroadcast(v, 0u) + subgroupBroadcast(v, 1u) + subgroupBroadcast(v, 2u) + subgroupBroadcast(v, 3u); }
    o[w.x * 64u + l.x] = s; }`, lanes * 4, 'broadcast floats');
}
// The matrix multiply's inner loop in pieces: accumulators only (32 vs 8 vec4 accumulators: register
// pressure), then with the subgroup broadcasts, then with the loads of the subgroup matmul (src/backend/webgpu/kernels/matmul.ts).
if (hasSubgroups) {
  const hdr4 = 'enable subgroups; @group(0) @binding(0) var<storage, read> a: array<vec4<f32>>; @group(0) @binding(1) var<storage, read_write> o: array<vec4<f32>>;';
  const L4 = 256;
  const body = (nacc, bcast) => Array.from({ length: 32 }, (_, i) => bcast
    ? `{ let q = subgroupBroadcast(av, ${i % 8}u); c${i % nacc} = c${i % nacc} + q.x * b0 + q.y * b1 + q.z * b2 + q.w * b3; }`
    : `c${i % nacc} = c${i % nacc} + x.x * b0 + x.y * b1 + x.z * b2 + x.w * b3;`).join(' ');
  const kern = (nacc, bcast, loads) => `${hdr4} @compute @workgroup_size(64) fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
    let x = a[l.x]; var b0 = a[l.x + 1u]; var b1 = a[l.x + 2u]; var b2 = a[l.x + 3u]; var b3 = a[l.x + 4u]; var av = a[l.x + 5u];
    ${Array.from({ length: nacc }, (_, i) => `var c${i} = vec4<f32>(f32(${i}));`).join(' ')}
    for (var k = 0u; k < ${L4}u; k++) { ${loads} ${body(nacc, bcast)} }
    o[w.x * 64u + l.x] = ${Array.from({ length: nacc }, (_, i) => `c${i}`).join(' + ')}; }`;
  const loads = 'let kb = (k * 64u + l.x) & 0xfffffu; b0 = a[kb]; b1 = a[kb + 64u]; b2 = a[kb + 128u]; b3 = a[kb + 192u]; av = a[(kb * 7u) & 0xfffffu] + a[(kb * 5u) & 0xfffffu] + a[(kb * 3u) & 0xfffffu] + a[(kb * 11u) & 0xfffffu];';
  const fmas = G * 64 * L4 * 32 * 16;
  await probe('GEMM body, 8 vec4 accumulators', kern(8, false, ''), fmas, 'FMAs');
  await probe('GEMM body, 32 vec4 accumulators', kern(32, false, ''), fmas, 'FMAs');
  await probe('  + 32 vec4 broadcasts', kern(32, true, ''), fmas, 'FMAs');
  await probe('  + 4 A and 4 B vec4 loads', kern(32, true, loads), fmas, 'FMAs');
}
process.exit(0);
