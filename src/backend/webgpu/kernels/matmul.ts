// WGSL of the GEMM kernels: out[M, N] = act(A[M, K] B[K, N] + bias) (+ residual), for 1x1
// convolutions (M = batch * H * W pixels, NHWC) and fully connected layers (M = batch), generated
// per variant (register tile, subgroup size) at pipeline creation. Planned in ops/matmul.ts.
// Bindings: 0 A (vec4 along K), 1 B packed [K, N/4] vec4, 2 bias, 3 alpha (PReLU), 4 residual,
// 5 out, 6 params. Needs K % 4 == 0 and N % 4 == 0 (the planner uses conv2d otherwise).
import type { ShaderSpec } from '../pipeline-cache.js';
import { FINISH_VEC4, GEMM_BINDINGS, lines, range, single } from './wgsl.js';

const PARAMS = (rows: number, colsName: string) => `struct Params {
  M: u32,
  K4: u32,
  N4: u32,
  act: u32, // 0 none, 1 relu, 2 prelu
  hasResidual: u32,
  colBlocks: u32, // ceil(N4 / ${colsName})
  tiles: u32, // colBlocks * ceil(M / ${rows})
  _pad0: u32,
}
`;

export interface MatmulTile {
  /** Rows (pixels) per invocation. */
  rows: number;
  /** vec4 columns per invocation. */
  cols4: number;
}

/**
 * The register-blocked GEMM: each invocation computes a rows x (cols4 * 4) tile, so every A
 * vector it loads is used cols4 * 4 times and every B vector rows times.
 * Dispatch: ceil(tiles / 64) workgroups of 64 laid out as x + y * 65535, with
 * tiles = ceil(M / rows) * ceil(N4 / cols4).
 */
export function matmulWgsl({ rows, cols4: cols }: MatmulTile): ShaderSpec {
  const code = `// matmul ${rows}x${cols}: register tile of ${rows} rows x ${cols} vec4 columns per invocation.
${PARAMS(rows, String(cols))}
${GEMM_BINDINGS}
fn finish(acc: vec4<f32>, row: u32, j: u32) {
  var v = acc + bias[j];
  if (p.act == 1u) {
    v = max(v, vec4<f32>(0.0));
  } else if (p.act == 2u) {
    v = select(v * alpha[j], v, v > vec4<f32>(0.0));
  }
  let o = row * p.N4 + j;
  if (p.hasResidual != 0u) {
    v = v + residual[o];
  }
  out[o] = v;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tile = (wg.x + wg.y * 65535u) * 64u + lid.x;
  if (tile >= p.tiles) {
    return;
  }
  let j0 = (tile % p.colBlocks) * ${cols}u;
  let r0 = (tile / p.colBlocks) * ${rows}u;
  // Out-of-range rows and columns of the tile are computed on clamped indices and not written.
  let last = p.M - 1u;
${lines(rows, (r) => `  let ar${r} = min(r0 + ${r}u, last) * p.K4;`)}
${lines(cols, (c) => `  let jc${c} = min(j0 + ${c}u, p.N4 - 1u);`)}
${lines(rows, (r) => '  ' + range(cols).map((c) => `var c${r}_${c} = vec4<f32>(0.0);`).join(' '))}
  for (var k4 = 0u; k4 < p.K4; k4 = k4 + 1u) {
${lines(rows, (r) => `    let a${r} = A[ar${r} + k4];`)}
    let kb = k4 * 4u * p.N4;
${range(4).flatMap((k) => range(cols).map((c) => `    let b${k}_${c} = B[kb + ${k}u * p.N4 + jc${c}];`)).join('\n')}
${range(rows).flatMap((r) => range(cols).map((c) => `    c${r}_${c} = c${r}_${c} + a${r}.x * b0_${c} + a${r}.y * b1_${c} + a${r}.z * b2_${c} + a${r}.w * b3_${c};`)).join('\n')}
  }
${lines(rows, (r) => `  if (r0 + ${r}u < p.M) { ` + range(cols).map((c) => `if (j0 + ${c}u < p.N4) { finish(c${r}_${c}, r0 + ${r}u, jc${c}); }`).join(' ') + ' }')}
}
`;
  return single(`matmul-${rows}x${cols}`, code);
}

export interface MatmulSubgroupVariant {
  /** Fixed subgroup size (8, 16 or 32): the broadcast lane must be a constant. */
  sg: number;
  /** Rows per subgroup tile, a multiple of sg. */
  rows: number;
  /** vec4 columns per lane. */
  cols: number;
}

/**
 * The same GEMM with the loads shared across the lanes of a subgroup: each lane loads `cols` vec4
 * column blocks of B and rows / sg rows of A; the rows reach the other lanes through
 * subgroupBroadcast, a register shuffle. On lavapipe, where every storage load is a per-lane
 * gather, this cuts loads per multiply-add several times; on GPUs it is the warp-cooperative GEMM.
 * Needs the 'subgroups' feature with subgroups of consecutive invocations.
 * Dispatch: ceil(tiles * sg / 64) workgroups of 64 laid out as x + y * 65535, with
 * tiles = ceil(M / rows) * ceil(N4 / (sg * cols)).
 */
export function matmulSubgroupWgsl({ sg, rows: R, cols: C }: MatmulSubgroupVariant): ShaderSpec {
  if (R % sg !== 0) throw new Error(`matmul-subgroup: ${R} rows is not a multiple of the subgroup size ${sg}`);
  const q = R / sg;
  const bOff = (t: number) => (t === 0 ? '' : t === 1 ? ' + p.N4' : ` + ${t}u * p.N4`);
  const code = `// matmul-subgroup sg${sg} ${R}x${C}: ${R} rows x ${sg * C} vec4 columns per subgroup (${C} per lane).
enable subgroups;

${PARAMS(R, `(SG * ${C})`)}
${GEMM_BINDINGS}
${FINISH_VEC4}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
  // No early return: every lane of a subgroup must reach the broadcasts. Lanes past the end
  // compute on clamped indices and store nothing.
  let flat = (wg.x + wg.y * 65535u) * 64u + lid.x;
  let tile = min(flat / ${sg}u, p.tiles - 1u);
  let colBlock = tile % p.colBlocks;
  let r0 = (tile / p.colBlocks) * ${R}u;
  let inRange = flat / ${sg}u < p.tiles;
${lines(C, (c) => `  let jRaw${c} = colBlock * ${sg * C}u + ${c * sg}u + sl;\n  let ok${c} = inRange && jRaw${c} < p.N4;\n  let j${c} = min(jRaw${c}, p.N4 - 1u);`)}
  let last = p.M - 1u;
${lines(q, (i) => `  let ra${i} = min(r0 + ${i * sg}u + sl, last) * p.K4;`)}
${range(R).flatMap((r) => range(C).map((c) => `  var c${r}_${c} = vec4<f32>(0.0);`)).join('\n')}
  for (var k4 = 0u; k4 < p.K4; k4 = k4 + 1u) {
${lines(q, (i) => `    let av${i} = A[ra${i} + k4];`)}
${lines(C, (c) => `    let kb${c} = k4 * 4u * p.N4 + j${c};\n` + lines(4, (t) => `    let b${c}_${t} = B[kb${c}${bOff(t)}];`))}
${lines(R, (r) => `    { let a = subgroupBroadcast(av${Math.floor(r / sg)}, ${r % sg}u); ` + range(C).map((c) => `c${r}_${c} = c${r}_${c} + a.x * b${c}_0 + a.y * b${c}_1 + a.z * b${c}_2 + a.w * b${c}_3;`).join(' ') + ' }')}
  }
  let act = p.act;
  let hasRes = p.hasResidual;
  let n4 = p.N4;
  let m = p.M;
${lines(C, (c) => `  let bv${c} = bias[j${c}];\n  let al${c} = alpha[j${c}];`)}
${range(R).flatMap((r) => range(C).map((c) => `  if (ok${c} && r0 + ${r}u < m) { finish(c${r}_${c}, (r0 + ${r}u) * n4 + j${c}, bv${c}, al${c}, act, hasRes); }`)).join('\n')}
}
`;
  return single(`matmul-subgroup-sg${sg}-${R}x${C}`, code);
}
