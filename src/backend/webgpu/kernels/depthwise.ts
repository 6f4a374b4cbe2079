// WGSL of the depthwise convolutions (depth multiplier 1, fused bias + activation (none/relu/
// prelu) + optional residual add, NHWC), planned in ops/depthwise.ts: a generic kernel (any
// kernel up to 49 taps, hand-written loops) and fully unrolled 3x3 variants generated per stride,
// output tile and channel width (one channel, or four as a vec4 when C % 4 == 0) at pipeline
// creation. The unrolled variants keep the input patch, weights and accumulators in named values:
// private arrays indexed in loops end up in scratch memory on some implementations (lavapipe),
// which costs as much as the storage loads the tile is meant to save.
import type { ShaderSpec } from '../pipeline-cache.js';
import { single } from './wgsl.js';

/** Limits of the generic kernel. */
export const DEPTHWISE_MAX_TAPS = 49;
export const DEPTHWISE_MAX_SEG = 32;

// Scalar kernels. Bindings: 0 x [n,H,W,C], 1 weights [kh,kw,C], 2 bias [C], 3 alpha [C],
// 4 residual, 5 out [n,OH,OW,C], 6 params. Dispatch: (ceil(C / 64), tiles) workgroups of 64 (y over
// 65535 wraps into z), tiles = n * tilesY * tilesX for the variant's output tile (TH x TW).
// Each invocation computes one channel of an output tile, loading each input of the patch once.
const SCALAR_HEADER = `struct Params {
  H: u32, W: u32, C: u32, OH: u32,
  OW: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, padTop: u32, padLeft: u32, act: u32,
  hasResidual: u32, tiles: u32, tilesX: u32, tilesY: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> alpha: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

fn store(acc: f32, c: u32, pix: u32) {
  var v = acc + bias[c];
  if (p.act == 1u) {
    v = max(v, 0.0);
  } else if (p.act == 2u) {
    v = select(v * alpha[c], v, v > 0.0);
  }
  let o = pix * p.C + c;
  if (p.hasResidual != 0u) {
    v = v + residual[o];
  }
  out[o] = v;
}
`;

// vec4 kernels (C % 4 == 0). Bindings: 0 x [n,H,W,C/4] vec4, 1 weights [3,3,C/4] vec4, 2 bias,
// 3 alpha, 4 residual, 5 out [n,OH,OW,C/4], 6 params. Dispatch: ceil(tiles * C/4 / 64) workgroups
// of 64 laid out as x + y * 65535, invocations channel-fastest over (tile, channel group) so no
// lane idles when C < 256.
const V4_HEADER = `struct Params {
  H: u32, W: u32, C4: u32, OH: u32,
  OW: u32, padTop: u32, padLeft: u32, act: u32,
  hasResidual: u32, tiles: u32, tilesX: u32, tilesY: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alpha: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> p: Params;

fn store(acc: vec4<f32>, c4: u32, pix: u32, bv: vec4<f32>, av: vec4<f32>, act: u32, hasRes: u32, C4: u32) {
  var v = acc + bv;
  if (act == 1u) {
    v = max(v, vec4<f32>(0.0));
  } else if (act == 2u) {
    v = select(v * av, v, v > vec4<f32>(0.0));
  }
  let o = pix * C4 + c4;
  if (hasRes != 0u) {
    v = v + residual[o];
  }
  out[o] = v;
}
`;

/** Output tile of the generic kernel. */
export const DEPTHWISE_GENERIC_TILE = [4, 4] as const;

/** The generic kernel: any kh x kw up to 49 taps, (TW - 1) * sw + kw <= 32; a 4x4 output tile. */
export function depthwiseGenericWgsl(): ShaderSpec {
  return single('depthwise', `// depthwise (generic): kh * kw <= 49, 4x4 output tile, loops over private arrays.
${SCALAR_HEADER}
const TH = 4u;
const TW = 4u;
const MAX_TAPS = 49u;
const MAX_SEG = 32u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wg.x * 64u + lid.x;
  let tile = wg.y + wg.z * 65535u;
  if (c >= p.C || tile >= p.tiles) {
    return;
  }
  let tx = tile % p.tilesX;
  let ty = (tile / p.tilesX) % p.tilesY;
  let b = tile / (p.tilesX * p.tilesY);
  let oy0 = ty * TH;
  let ox0 = tx * TW;
  let xbase = b * p.H * p.W * p.C + c;

  var wv: array<f32, MAX_TAPS>;
  let taps = p.kh * p.kw;
  for (var t = 0u; t < taps; t = t + 1u) {
    wv[t] = w[t * p.C + c];
  }
  var acc: array<f32, 16>;
  var row: array<f32, MAX_SEG>;
  let seg = (TW - 1u) * p.sw + p.kw;
  let ix0 = i32(ox0 * p.sw) - i32(p.padLeft);
  let rowsIn = (TH - 1u) * p.sh + p.kh;
  for (var ir = 0u; ir < rowsIn; ir = ir + 1u) {
    let iy = i32(oy0 * p.sh + ir) - i32(p.padTop);
    if (iy < 0 || iy >= i32(p.H)) {
      continue;
    }
    let rbase = xbase + u32(iy) * p.W * p.C;
    for (var s = 0u; s < seg; s = s + 1u) {
      let ix = ix0 + i32(s);
      var v = 0.0;
      if (ix >= 0 && ix < i32(p.W)) {
        v = x[rbase + u32(ix) * p.C];
      }
      row[s] = v;
    }
    for (var t = 0u; t < TH; t = t + 1u) {
      // Output row t of the tile uses input row ir with kernel row ky = ir - t * sh.
      let ky = i32(ir) - i32(t * p.sh);
      if (ky < 0 || ky >= i32(p.kh)) {
        continue;
      }
      for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
        let wk = wv[u32(ky) * p.kw + kx];
        for (var u = 0u; u < TW; u = u + 1u) {
          acc[t * TW + u] = acc[t * TW + u] + row[u * p.sw + kx] * wk;
        }
      }
    }
  }
  for (var t = 0u; t < TH; t = t + 1u) {
    let oy = oy0 + t;
    if (oy >= p.OH) {
      break;
    }
    for (var u = 0u; u < TW; u = u + 1u) {
      let ox = ox0 + u;
      if (ox < p.OW) {
        store(acc[t * TW + u], c, (b * p.OH + oy) * p.OW + ox);
      }
    }
  }
}
`);
}

export interface Depthwise3x3Variant {
  stride: 1 | 2;
  /** Output tile rows x columns per invocation. */
  th: number;
  tw: number;
  /** Four channels per invocation (needs C % 4 == 0). */
  v4: boolean;
}

/**
 * A fully unrolled 3x3 variant. The vec4 form is streamed by input row: each row is loaded, folded
 * into the output rows that use it, and an output row is stored as soon as its last input row is
 * in. Few values stay live, so llvmpipe spills less (measured 25% faster than loading the whole
 * patch first).
 */
export function depthwise3x3Wgsl({ stride: s, th, tw, v4 }: Depthwise3x3Variant): ShaderSpec {
  const k = 3;
  const rows = (th - 1) * s + k;
  const cols = (tw - 1) * s + k;
  const [C, c] = v4 ? ['C4', 'c4'] : ['C', 'c'];
  const L: string[] = [];
  L.push(`
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  if (v4) {
    L.push(`  let flat = (wg.x + wg.y * 65535u) * 64u + lid.x;
  let c4 = flat % p.C4;
  let tile = flat / p.C4;
  if (tile >= p.tiles) {
    return;
  }`);
  } else {
    L.push(`  let c = wg.x * 64u + lid.x;
  let tile = wg.y + wg.z * 65535u;
  if (c >= p.C || tile >= p.tiles) {
    return;
  }`);
  }
  L.push(`  let tx = tile % p.tilesX;
  let ty = (tile / p.tilesX) % p.tilesY;
  let b = tile / (p.tilesX * p.tilesY);
  let oy0 = ty * ${th}u;
  let ox0 = tx * ${tw}u;
  let base = b * p.H * p.W * p.${C} + ${c};
  let iy0 = i32(oy0 * ${s}u) - i32(p.padTop);
  let ix0 = i32(ox0 * ${s}u) - i32(p.padLeft);`);
  for (let t = 0; t < k * k; t++) L.push(`  let w${t} = w[${t}u * p.${C} + ${c}];`);
  const clamp = v4 ? (v: string, n: string) => `clamp(${v}, 0, i32(p.${n}) - 1)` : (v: string) => `max(${v}, 0)`;
  for (let r = 0; r < rows; r++) {
    L.push(`  let ry${r} = iy0 + ${r};`);
    L.push(`  let rok${r} = ry${r} >= 0 && ry${r} < i32(p.H);`);
    L.push(`  let rb${r} = base + u32(${clamp(`ry${r}`, 'H')}) * p.W * p.${C};`);
  }
  for (let q = 0; q < cols; q++) {
    L.push(`  let cx${q} = ix0 + ${q};`);
    L.push(`  let cok${q} = cx${q} >= 0 && cx${q} < i32(p.W);`);
    L.push(`  let co${q} = u32(${clamp(`cx${q}`, 'W')}) * p.${C};`);
  }
  const zero = v4 ? 'vec4<f32>(0.0)' : '0.0';
  const taps = (terms: string[]) => terms.join(' + ');
  if (v4) {
    L.push('  let bv = bias[c4];', '  let av = alpha[c4];', '  let act = p.act;', '  let hasRes = p.hasResidual;');
    for (let t = 0; t < th; t++) for (let u = 0; u < tw; u++) L.push(`  var a${t}_${u} = ${zero};`);
    for (let r = 0; r < rows; r++) {
      for (let q = 0; q < cols; q++) L.push(`  let x${r}_${q} = select(${zero}, x[rb${r} + co${q}], rok${r} && cok${q});`);
      for (let t = 0; t < th; t++) {
        const ky = r - t * s;
        if (ky < 0 || ky >= k) continue;
        for (let u = 0; u < tw; u++) {
          L.push(`  a${t}_${u} = a${t}_${u} + ${taps([0, 1, 2].map((kx) => `x${r}_${u * s + kx} * w${ky * k + kx}`))};`);
        }
        if (ky === k - 1) {
          for (let u = 0; u < tw; u++) {
            L.push(`  if (oy0 + ${t}u < p.OH && ox0 + ${u}u < p.OW) { store(a${t}_${u}, c4, (b * p.OH + oy0 + ${t}u) * p.OW + ox0 + ${u}u, bv, av, act, hasRes, p.C4); }`);
          }
        }
      }
    }
  } else {
    for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) L.push(`  var x${r}_${q} = ${zero}; if (rok${r} && cok${q}) { x${r}_${q} = x[rb${r} + co${q}]; }`);
    for (let t = 0; t < th; t++) {
      for (let u = 0; u < tw; u++) {
        const terms: string[] = [];
        for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) terms.push(`x${t * s + ky}_${u * s + kx} * w${ky * k + kx}`);
        L.push(`  if (oy0 + ${t}u < p.OH && ox0 + ${u}u < p.OW) { store(${taps(terms)}, c, (b * p.OH + oy0 + ${t}u) * p.OW + ox0 + ${u}u); }`);
      }
    }
  }
  L.push('}');
  const name = `depthwise${v4 ? '-v4' : ''}-k3s${s}-${th}x${tw}`;
  return single(name, `// ${name}: 3x3 stride ${s}, ${th}x${tw} output tile, ${v4 ? 'four channels' : 'one channel'} per invocation, unrolled.
${v4 ? V4_HEADER : SCALAR_HEADER}${L.join('\n')}
`);
}

/**
 * Any kh x kw, stride and padding with C % 4 == 0: one output pixel x four channels per
 * invocation, a loop over the taps with vec4 loads. For the global depthwise convolution
 * (7x7 over a 7x7 map, one output pixel) that ends MobileFaceNet, where the generic kernel's
 * 4x4 tile is mostly empty and loads one channel at a time.
 * Bindings as depthwise3x3Wgsl's vec4 form; weights [kh,kw,C/4] vec4. Dispatch: ceil(pixels *
 * C/4 / 64) workgroups of 64 laid out as x + y * 65535, pixels = n * OH * OW, channel-fastest.
 */
export function depthwiseVec4Wgsl(): ShaderSpec {
  return single('depthwise-v4-loop', `// depthwise-v4-loop: any kernel, one output pixel x four channels per invocation.
struct Params {
  H: u32, W: u32, C4: u32, OH: u32,
  OW: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, padTop: u32, padLeft: u32, act: u32,
  hasResidual: u32, total: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> alpha: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let flat = (wg.x + wg.y * 65535u) * 64u + lid.x;
  if (flat >= p.total) {
    return;
  }
  let c4 = flat % p.C4;
  let pix = flat / p.C4;
  let ox = pix % p.OW;
  let oy = (pix / p.OW) % p.OH;
  let b = pix / (p.OW * p.OH);
  let iy0 = i32(oy * p.sh) - i32(p.padTop);
  let ix0 = i32(ox * p.sw) - i32(p.padLeft);
  let base = b * p.H * p.W * p.C4 + c4;
  var acc = vec4<f32>(0.0);
  for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
    let iy = iy0 + i32(ky);
    if (iy < 0 || iy >= i32(p.H)) {
      continue;
    }
    let rb = base + u32(iy) * p.W * p.C4;
    for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
      let ix = ix0 + i32(kx);
      if (ix >= 0 && ix < i32(p.W)) {
        acc = acc + x[rb + u32(ix) * p.C4] * w[(ky * p.kw + kx) * p.C4 + c4];
      }
    }
  }
  var v = acc + bias[c4];
  if (p.act == 1u) {
    v = max(v, vec4<f32>(0.0));
  } else if (p.act == 2u) {
    v = select(v * alpha[c4], v, v > vec4<f32>(0.0));
  }
  let o = pix * p.C4 + c4;
  if (p.hasResidual != 0u) {
    v = v + residual[o];
  }
  out[o] = v;
}
`);
}
