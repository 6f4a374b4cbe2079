#!/usr/bin/env python3
# Writes shaders/depthwise.wgsl: a generic depthwise kernel (any kernel up to 49 taps) and fully
# unrolled variants for the 3x3 shapes that dominate mobile networks (stride 1 and 2). The unrolled
# variants keep the input patch, weights and accumulators in named scalars: private arrays indexed
# in loops end up in scratch memory on some implementations (lavapipe), which costs as much as the
# storage loads the tile is meant to save.
# It also writes shaders/depthwise-v4.wgsl: the same unrolled 3x3 variants with four channels per
# invocation (vec4), used when C % 4 == 0.
# Usage: python3 scripts/gen-depthwise.py   (then: node scripts/gen-shaders.mjs)
import pathlib

VARIANTS = [  # (name, k, stride, TH, TW)
    ('k3s1', 3, 1, 4, 4),
    ('k3s2', 3, 2, 2, 4),
]
VARIANTS_V4 = [  # depthwise-v4.wgsl
    ('k3s1', 3, 1, 8, 4),
    ('k3s2', 3, 2, 8, 2),
]

def variant(name, k, s, th, tw, v4=False):
    """One unrolled entry point. v4: four channels per invocation (depthwise-v4.wgsl), invocations
    laid out channel-fastest over (tile, channel group) so no lane idles when C < 256."""
    rows = (th - 1) * s + k
    cols = (tw - 1) * s + k
    C, c, T = ('C4', 'c4', 'vec4<f32>') if v4 else ('C', 'c', 'f32')
    lines = []
    lines.append(f'''
@compute @workgroup_size(64)
fn main_{name}(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{''')
    if v4:
        lines.append('''  let flat = (wg.x + wg.y * 65535u) * 64u + lid.x;
  let c4 = flat % p.C4;
  let tile = flat / p.C4;
  if (tile >= p.tiles) {
    return;
  }''')
    else:
        lines.append('''  let c = wg.x * 64u + lid.x;
  let tile = wg.y + wg.z * 65535u;
  if (c >= p.C || tile >= p.tiles) {
    return;
  }''')
    lines.append(f'''  let tx = tile % p.tilesX;
  let ty = (tile / p.tilesX) % p.tilesY;
  let b = tile / (p.tilesX * p.tilesY);
  let oy0 = ty * {th}u;
  let ox0 = tx * {tw}u;
  let base = b * p.H * p.W * p.{C} + {c};
  let iy0 = i32(oy0 * {s}u) - i32(p.padTop);
  let ix0 = i32(ox0 * {s}u) - i32(p.padLeft);''')
    for t in range(k * k):
        lines.append(f'  let w{t} = w[{t}u * p.{C} + {c}];')
    clamp = (lambda v, n: f'clamp({v}, 0, i32(p.{n}) - 1)') if v4 else (lambda v, n: f'max({v}, 0)')
    for r in range(rows):
        lines.append(f'  let ry{r} = iy0 + {r};')
        lines.append(f'  let rok{r} = ry{r} >= 0 && ry{r} < i32(p.H);')
        lines.append(f'  let rb{r} = base + u32({clamp(f"ry{r}", "H")}) * p.W * p.{C};')
    for q in range(cols):
        lines.append(f'  let cx{q} = ix0 + {q};')
        lines.append(f'  let cok{q} = cx{q} >= 0 && cx{q} < i32(p.W);')
        lines.append(f'  let co{q} = u32({clamp(f"cx{q}", "W")}) * p.{C};')
    zero = 'vec4<f32>(0.0)' if v4 else '0.0'
    if v4:
        # Streamed by input row: each row is loaded, folded into the output rows that use it, and an
        # output row is stored as soon as its last input row is in. Few values stay live, so
        # llvmpipe spills less (measured 25% faster than loading the whole patch first; tiles of
        # 8x4 for stride 1 and 8x2 for stride 2 were the fastest of 2x4 to 16x4).
        lines.append('  let bv = bias[c4];')
        lines.append('  let av = alpha[c4];')
        lines.append('  let act = p.act;')
        lines.append('  let hasRes = p.hasResidual;')
        for t in range(th):
            for u in range(tw):
                lines.append(f'  var a{t}_{u} = {zero};')
        for r in range(rows):
            for q in range(cols):
                lines.append(f'  let x{r}_{q} = select({zero}, x[rb{r} + co{q}], rok{r} && cok{q});')
            for t in range(th):
                ky = r - t * s
                if 0 <= ky < k:
                    for u in range(tw):
                        terms = ' + '.join(f'x{r}_{u * s + kx} * w{ky * k + kx}' for kx in range(k))
                        lines.append(f'  a{t}_{u} = a{t}_{u} + {terms};')
                    if ky == k - 1:
                        for u in range(tw):
                            lines.append(f'  if (oy0 + {t}u < p.OH && ox0 + {u}u < p.OW) {{ store(a{t}_{u}, c4, (b * p.OH + oy0 + {t}u) * p.OW + ox0 + {u}u, bv, av, act, hasRes, p.C4); }}')
        lines.append('}')
        return '\n'.join(lines)
    for r in range(rows):
        for q in range(cols):
            lines.append(f'  var x{r}_{q} = {zero}; if (rok{r} && cok{q}) {{ x{r}_{q} = x[rb{r} + co{q}]; }}')
    for t in range(th):
        for u in range(tw):
            terms = ' + '.join(f'x{t * s + ky}_{u * s + kx} * w{ky * k + kx}' for ky in range(k) for kx in range(k))
            lines.append(f'  if (oy0 + {t}u < p.OH && ox0 + {u}u < p.OW) {{ store({terms}, c, (b * p.OH + oy0 + {t}u) * p.OW + ox0 + {u}u); }}')
    lines.append('}')
    return '\n'.join(lines)

header = '''// depthwise.wgsl: depthwise kxk convolution (depth multiplier 1), any stride and padding, fused
// bias + activation (none/relu/prelu) + optional residual add. NHWC, any C.
// Bindings: 0 x [n,H,W,C], 1 weights [kh,kw,C], 2 bias [C], 3 alpha [C], 4 residual, 5 out
// [n,OH,OW,C], 6 params. Dispatch: (ceil(C / 64), tiles) workgroups of 64 (y over 65535 wraps
// into z), tiles = n * tilesY * tilesX for the entry's output tile (TH x TW).
// Each invocation computes one channel of an output tile, loading each input of the tile's patch
// once. Entry points: main (generic, kh * kw <= 49, 4x4 tile, loops over private arrays),
// main_k3s1 (3x3 stride 1, 4x4 tile) and main_k3s2 (3x3 stride 2, 2x4 tile), fully unrolled.
// Generated by scripts/gen-depthwise.py: edit the generator, not this file.
struct Params {
  H: u32, W: u32, C: u32, OH: u32,
  OW: u32, kh: u32, kw: u32, sh: u32,
  sw: u32, padTop: u32, padLeft: u32, act: u32,
  hasResidual: u32, tiles: u32, tilesX: u32, tilesY: u32,
}

const TH = 4u;
const TW = 4u;
const MAX_TAPS = 49u;
const MAX_SEG = 32u;

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
'''
header_v4 = '''// depthwise-v4.wgsl: depthwise 3x3 convolution (depth multiplier 1), stride 1 or 2, any padding,
// fused bias + activation (none/relu/prelu) + optional residual add; NHWC with C % 4 == 0, four
// channels per invocation as a vec4.
// Bindings: 0 x [n,H,W,C/4] vec4, 1 weights [3,3,C/4] vec4, 2 bias, 3 alpha, 4 residual, 5 out
// [n,OH,OW,C/4], 6 params. Dispatch: ceil(tiles * C/4 / 64) workgroups of 64 laid out as
// x + y * 65535, tiles = n * tilesY * tilesX for the entry's output tile (TH x TW).
// Entry points: main_k3s1 (8x4 tile), main_k3s2 (8x2 tile), fully unrolled and streamed by input
// row: named values, each input loaded once per tile, each output row stored once complete.
// Generated by scripts/gen-depthwise.py: edit the generator, not this file.
struct Params {
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
'''
src = header + ''.join(variant(*v) for v in VARIANTS) + '\n'
pathlib.Path(__file__).resolve().parent.parent.joinpath('shaders/depthwise.wgsl').write_text(src)
src_v4 = header_v4 + ''.join(variant(*v, v4=True) for v in VARIANTS_V4) + '\n'
pathlib.Path(__file__).resolve().parent.parent.joinpath('shaders/depthwise-v4.wgsl').write_text(src_v4)
