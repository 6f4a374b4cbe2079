// WGSL of the dense convolutions (planned in ops/conv2d.ts): the direct kernel for any shape
// (hand-written) and the subgroup implicit GEMM, generated per subgroup size at pipeline creation.
import type { ShaderSpec } from '../pipeline-cache.js';
import { FINISH_VEC4, lines, single } from './wgsl.js';

/** The direct convolution: 4 adjacent output pixels x 4 output channels per invocation. */
export function conv2dWgsl(): ShaderSpec {
  return single('conv2d', CONV2D);
}

const CONV2D = /* wgsl */ `// conv2d: dense kxk convolution, any stride, asymmetric padding with a per-input-channel
// border value, fused bias + activation (none/relu/prelu) + optional residual add. NHWC, any C.
// Bindings: 0 x [n,H,W,Cin] f32, 1 weights packed [kh*kw*Cin, O4] vec4 (O4 = ceil(Cout/4),
// zero-filled tail), 2 bias vec4 [O4], 3 alpha vec4 [O4], 4 residual [n,OH,OW,Cout] f32,
// 5 out [n,OH,OW,Cout] f32, 6 padValue [Cin] f32, 7 params.
// Dispatch: (ceil(O4 / 16), ceil(rows / 4)) workgroups of 16x4 (y over 65535 wraps into z); each invocation
// computes 4 adjacent output pixels x 4 output channels, reusing each weight vector 4 times
// and each input value 4 times.
struct Params {
  H: u32, W: u32, Cin: u32, OH: u32,
  OW: u32, Cout: u32, O4: u32, kh: u32,
  kw: u32, sh: u32, sw: u32, padTop: u32,
  padLeft: u32, act: u32, hasResidual: u32, rows: u32, // rows = n * OH * ceil(OW / 4)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alpha: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> padValue: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

fn load(base: u32, iy: i32, ix: i32, c: u32) -> f32 {
  if (iy < 0 || ix < 0 || iy >= i32(p.H) || ix >= i32(p.W)) {
    return padValue[c];
  }
  return x[base + (u32(iy) * p.W + u32(ix)) * p.Cin + c];
}

fn store(acc: vec4<f32>, o4: u32, pix: u32) {
  var v = acc + bias[o4];
  if (p.act == 1u) {
    v = max(v, vec4<f32>(0.0));
  } else if (p.act == 2u) {
    v = select(v * alpha[o4], v, v > vec4<f32>(0.0));
  }
  let o = o4 * 4u;
  let base = pix * p.Cout + o;
  for (var i = 0u; i < 4u; i = i + 1u) {
    if (o + i < p.Cout) {
      var r = v[i];
      if (p.hasResidual != 0u) {
        r = r + residual[base + i];
      }
      out[base + i] = r;
    }
  }
}

@compute @workgroup_size(16, 4)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o4 = gid.x;
  let row = gid.y + gid.z * 65535u * 4u; // grids taller than 65535 workgroups wrap into z
  if (o4 >= p.O4 || row >= p.rows) {
    return;
  }
  let owt = (p.OW + 3u) / 4u;
  let tx = row % owt;
  let oy = (row / owt) % p.OH;
  let b = row / (owt * p.OH);
  let ox0 = tx * 4u;
  let xbase = b * p.H * p.W * p.Cin;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  let sw = i32(p.sw);
  for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
    let iy = i32(oy * p.sh + ky) - i32(p.padTop);
    for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
      let ix0 = i32(ox0 * p.sw + kx) - i32(p.padLeft);
      let wb = (ky * p.kw + kx) * p.Cin;
      for (var c = 0u; c < p.Cin; c = c + 1u) {
        let wv = w[(wb + c) * p.O4 + o4];
        acc0 = acc0 + load(xbase, iy, ix0, c) * wv;
        acc1 = acc1 + load(xbase, iy, ix0 + sw, c) * wv;
        acc2 = acc2 + load(xbase, iy, ix0 + 2 * sw, c) * wv;
        acc3 = acc3 + load(xbase, iy, ix0 + 3 * sw, c) * wv;
      }
    }
  }
  let pix0 = (b * p.OH + oy) * p.OW + ox0;
  store(acc0, o4, pix0);
  if (ox0 + 1u < p.OW) { store(acc1, o4, pix0 + 1u); }
  if (ox0 + 2u < p.OW) { store(acc2, o4, pix0 + 2u); }
  if (ox0 + 3u < p.OW) { store(acc3, o4, pix0 + 3u); }
}
`;

/** Output pixels per subgroup tile of conv2dSubgroupWgsl, a multiple of every subgroup size. */
export const CONV2D_SUBGROUP_ROWS = 32;

/**
 * Dense kxk convolution, any stride, asymmetric padding with a per-input-channel border value,
 * fused bias + activation (none/relu/prelu) + optional residual add; NHWC, any Cin, Cout % 4 == 0.
 * An implicit GEMM (rows = output pixels, K = kh * kw * Cin, columns = output channels): 32
 * output pixels x sg vec4 output-channel columns per subgroup, one column per lane; each lane
 * loads one vec4 of weights and 32 / sg input values per step of K, and the inputs reach the other
 * lanes by subgroupBroadcast. For the first layer of a network (Cin = 3), where the direct kernel
 * reloads every input value for every 4 output channels.
 * Bindings: 0 x [n,H,W,Cin] f32, 1 weights packed [kh*kw*Cin, O4] vec4, 2 bias vec4 [O4],
 * 3 alpha vec4 [O4], 4 residual [n,OH,OW,O4] vec4, 5 out [n,OH,OW,O4] vec4, 6 padValue [Cin],
 * 7 params. Dispatch: ceil(tiles * sg / 64) workgroups of 64 laid out as x + y * 65535, with
 * tiles = ceil(M / 32) * ceil(O4 / sg), M = n * OH * OW.
 */
export function conv2dSubgroupWgsl(sg: number): ShaderSpec {
  const R = CONV2D_SUBGROUP_ROWS;
  const q = R / sg;
  const code = `// conv2d-subgroup sg${sg}: ${R} output pixels x ${sg} vec4 output-channel columns per subgroup.
enable subgroups;

struct Params {
  H: u32, W: u32, Cin: u32, OH: u32,
  OW: u32, O4: u32, kh: u32, kw: u32,
  sh: u32, sw: u32, padTop: u32, padLeft: u32,
  act: u32, hasResidual: u32, M: u32, colBlocks: u32,
  tiles: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alpha: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> padValue: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

${FINISH_VEC4}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
  // No early return: every lane of a subgroup must reach the broadcasts. Lanes past the end
  // compute on clamped indices and store nothing.
  let flat = (wg.x + wg.y * 65535u) * 64u + lid.x;
  let tile = min(flat / ${sg}u, p.tiles - 1u);
  let colBlock = tile % p.colBlocks;
  let r0 = (tile / p.colBlocks) * ${R}u;
  let jRaw = colBlock * ${sg}u + sl;
  let ok = flat / ${sg}u < p.tiles && jRaw < p.O4;
  let j = min(jRaw, p.O4 - 1u);
  let last = p.M - 1u;
${lines(q, (i) => `  let m${i} = min(r0 + ${i * sg}u + sl, last);
  let ox${i} = m${i} % p.OW;
  let oy${i} = (m${i} / p.OW) % p.OH;
  let xb${i} = (m${i} / (p.OW * p.OH)) * p.H * p.W * p.Cin;
  let iy${i} = i32(oy${i} * p.sh) - i32(p.padTop);
  let ix${i} = i32(ox${i} * p.sw) - i32(p.padLeft);`)}
${lines(R, (r) => `  var c${r} = vec4<f32>(0.0);`)}
  for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
    for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
${lines(q, (i) => `      let y${i} = iy${i} + i32(ky);
      let x${i} = ix${i} + i32(kx);
      let in${i} = y${i} >= 0 && y${i} < i32(p.H) && x${i} >= 0 && x${i} < i32(p.W);
      let b${i} = select(0u, xb${i} + (u32(y${i}) * p.W + u32(x${i})) * p.Cin, in${i});`)}
      let wb = (ky * p.kw + kx) * p.Cin;
      for (var c = 0u; c < p.Cin; c = c + 1u) {
        let pv = padValue[c];
${lines(q, (i) => `        let a${i} = select(pv, x[b${i} + c], in${i});`)}
        let wv = w[(wb + c) * p.O4 + j];
${lines(R, (r) => `        c${r} = c${r} + subgroupBroadcast(a${Math.floor(r / sg)}, ${r % sg}u) * wv;`)}
      }
    }
  }
  let act = p.act;
  let hasRes = p.hasResidual;
  let n4 = p.O4;
  let m = p.M;
  let bv = bias[j];
  let al = alpha[j];
${lines(R, (r) => `  if (ok && r0 + ${r}u < m) { finish(c${r}, (r0 + ${r}u) * n4 + j, bv, al, act, hasRes); }`)}
}
`;
  return single(`conv2d-subgroup-sg${sg}`, code);
}
