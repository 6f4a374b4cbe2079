// The classification losses of the CosFace paper behind one interface: Softmax (plain logits with
// bias), NSL (normalised softmax), LMCL (large margin cosine) and the combined margin
// s * (cos(m1 * theta + m2) - m3) that covers ArcFace and CosFace. Forward and backward (with
// respect to the features, the class weights and, for Softmax, the bias) through the L2
// normalisation. One implementation serves float64 (the reference, checked against finite
// differences) and float32 (what training uses): the precision is the array type passed in.
import { CosfaceError } from '../errors.js';

export type LossKind = 'softmax' | 'nsl' | 'lmcl' | 'combined';
export const LOSS_KINDS: readonly LossKind[] = ['softmax', 'nsl', 'lmcl', 'combined'];

export interface LossConfig {
  kind: LossKind;
  /** Scale of the normalised logits (ignored by softmax). The paper uses 64. */
  s?: number;
  /** LMCL cosine margin (the paper's default 0.35). */
  m?: number;
  /** Combined form: angular multiplier (A-Softmax-like), additive angle (ArcFace), cosine margin (CosFace). */
  m1?: number;
  m2?: number;
  m3?: number;
}

/** The resolved parameters: every normalised loss is a combined margin with some (m1, m2, m3). */
export interface ResolvedLoss {
  kind: LossKind;
  normalize: boolean;
  s: number;
  m1: number;
  m2: number;
  m3: number;
}

export function resolveLoss(cfg: LossConfig): ResolvedLoss {
  if (!LOSS_KINDS.includes(cfg.kind)) throw new CosfaceError('BAD_INPUT', `unknown loss ${JSON.stringify(cfg.kind)}; expected one of ${LOSS_KINDS.join(', ')}`);
  const num = (name: string, v: number | undefined, dflt: number) => {
    const x = v ?? dflt;
    if (!Number.isFinite(x)) throw new CosfaceError('BAD_INPUT', `loss ${cfg.kind}: ${name} must be a finite number, got ${v}`);
    return x;
  };
  if (cfg.kind === 'softmax') return { kind: 'softmax', normalize: false, s: 1, m1: 1, m2: 0, m3: 0 };
  const s = num('s', cfg.s, 64);
  if (s <= 0) throw new CosfaceError('BAD_INPUT', `loss ${cfg.kind}: s must be > 0, got ${s}`);
  if (cfg.kind === 'nsl') return { kind: 'nsl', normalize: true, s, m1: 1, m2: 0, m3: 0 };
  if (cfg.kind === 'lmcl') return { kind: 'lmcl', normalize: true, s, m1: 1, m2: 0, m3: num('m', cfg.m, 0.35) };
  const m1 = num('m1', cfg.m1, 1);
  if (m1 <= 0) throw new CosfaceError('BAD_INPUT', `loss combined: m1 must be > 0, got ${m1}`);
  return { kind: 'combined', normalize: true, s, m1, m2: num('m2', cfg.m2, 0), m3: num('m3', cfg.m3, 0) };
}

/**
 * The target-class margin function psi(c) = cos(m1 * acos(c) + m2) - m3 and its derivative.
 * For m1 = 1 it uses cos(t + m2) = c cos m2 - sqrt(1 - c^2) sin m2 (as ArcFace implementations do),
 * which with m2 = 0 is exactly c - m3: NSL and LMCL are then this very code path, bit for bit.
 * Beyond theta + m2 > pi the target logit is no longer monotonic in theta; like the paper's
 * definition, no "easy margin" fallback is applied.
 */
export function targetMargin(c: number, m1: number, m2: number, m3: number): { psi: number; dpsi: number } {
  if (m1 === 1) {
    if (m2 === 0) return { psi: c - m3, dpsi: 1 };
    const cm = Math.cos(m2);
    const sm = Math.sin(m2);
    const sinT = Math.sqrt(Math.max(0, 1 - c * c));
    // d/dc sqrt(1 - c^2) = -c / sin(theta); at |c| = 1 the derivative is unbounded: use a floor.
    return { psi: c * cm - sinT * sm - m3, dpsi: cm + (c * sm) / Math.max(sinT, 1e-7) };
  }
  const cc = Math.min(1, Math.max(-1, c));
  const t = Math.acos(cc);
  const sinT = Math.sqrt(Math.max(0, 1 - cc * cc));
  return { psi: Math.cos(m1 * t + m2) - m3, dpsi: (m1 * Math.sin(m1 * t + m2)) / Math.max(sinT, 1e-7) };
}

export type FloatArray = Float32Array | Float64Array;

export interface LossInput<A extends FloatArray> {
  /** n x d features, row-major. */
  x: A;
  /** c x d class weights, row-major. */
  w: A;
  /** c biases (softmax only; zeros when absent). */
  bias?: A;
  /** n labels in 0..c-1; -1 means "ignore this sample". */
  labels: Int32Array;
  n: number;
  d: number;
  c: number;
}

export interface LossOutput<A extends FloatArray> {
  /** Mean cross-entropy over the samples whose label is not -1 (0 when there are none). */
  loss: number;
  /** Samples counted. */
  valid: number;
  /** Samples whose highest logit (after the margin) is their label. */
  correct: number;
  dx: A;
  dw: A;
  /** d loss / d bias (softmax; zeros otherwise). */
  dbias: A;
  /** n x c cosines (normalised losses) or raw logits (softmax), before scale and margin. */
  cos: A;
}

export function checkLossInput<A extends FloatArray>(inp: LossInput<A>): void {
  const { n, d, c } = inp;
  for (const [k, v] of [['n', n], ['d', d], ['c', c]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new CosfaceError('BAD_INPUT', `loss: ${k} must be a positive integer, got ${v}`);
  }
  if (inp.x.length !== n * d) throw new CosfaceError('DIMENSION_MISMATCH', `loss: features hold ${inp.x.length} values, expected n*d = ${n * d}`);
  if (inp.w.length !== c * d) throw new CosfaceError('DIMENSION_MISMATCH', `loss: class weights hold ${inp.w.length} values, expected c*d = ${c * d}`);
  if (inp.bias && inp.bias.length !== c) throw new CosfaceError('DIMENSION_MISMATCH', `loss: bias holds ${inp.bias.length} values, expected c = ${c}`);
  if (inp.labels.length !== n) throw new CosfaceError('DIMENSION_MISMATCH', `loss: ${inp.labels.length} labels for ${n} samples`);
  for (let i = 0; i < n; i++) {
    const y = inp.labels[i]!;
    if (y !== -1 && (y < 0 || y >= c)) throw new CosfaceError('BAD_INPUT', `loss: label ${y} of sample ${i} is outside 0..${c - 1} (or -1 to ignore)`);
  }
}

/** Row-wise L2 normalisation; zero rows stay zero (their norm is reported as 0). */
export function normalizeRows<A extends FloatArray>(a: A, rows: number, d: number): { out: A; norms: A } {
  const Ctor = a.constructor as new (len: number) => A;
  const out = new Ctor(a.length);
  const norms = new Ctor(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += a[r * d + k]! * a[r * d + k]!;
    const nrm = Math.sqrt(ss);
    norms[r] = nrm;
    const inv = nrm > 0 ? 1 / nrm : 0;
    for (let k = 0; k < d; k++) out[r * d + k] = a[r * d + k]! * inv;
  }
  return { out, norms };
}

/** Gradient through u = v / |v|: dv = (du - u (u . du)) / |v|, in place on du. */
function normalizeBackward<A extends FloatArray>(du: A, u: A, norms: A, rows: number, d: number): void {
  for (let r = 0; r < rows; r++) {
    const nrm = norms[r]!;
    if (nrm === 0) {
      du.fill(0, r * d, (r + 1) * d);
      continue;
    }
    let dot = 0;
    for (let k = 0; k < d; k++) dot += u[r * d + k]! * du[r * d + k]!;
    for (let k = 0; k < d; k++) du[r * d + k] = (du[r * d + k]! - u[r * d + k]! * dot) / nrm;
  }
}

/**
 * Loss and gradients for one batch. The arithmetic runs in JavaScript doubles; results and
 * intermediates are stored in the input's array type, so Float32Array inputs give float32 results.
 */
export function marginLoss<A extends FloatArray>(cfg: LossConfig | ResolvedLoss, inp: LossInput<A>): LossOutput<A> {
  checkLossInput(inp);
  const r = 'normalize' in cfg ? cfg : resolveLoss(cfg);
  const { n, d, c, labels } = inp;
  const Ctor = inp.x.constructor as new (len: number) => A;
  const xs = r.normalize ? normalizeRows(inp.x, n, d) : { out: inp.x, norms: null };
  const ws = r.normalize ? normalizeRows(inp.w, c, d) : { out: inp.w, norms: null };
  const xn = xs.out;
  const wn = ws.out;
  const cos = new Ctor(n * c);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += xn[i * d + k]! * wn[j * d + k]!;
      cos[i * c + j] = dot;
    }
  }
  let valid = 0;
  for (let i = 0; i < n; i++) if (labels[i] !== -1) valid++;
  // dcos[i, j] = d loss / d cos[i, j] (or / d logit for softmax).
  const dcos = new Ctor(n * c);
  const dbias = new Ctor(c);
  let loss = 0;
  let correct = 0;
  const z = new Float64Array(c);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (y === -1) continue;
    let dpsi = 1;
    for (let j = 0; j < c; j++) {
      const cij = cos[i * c + j]!;
      if (!r.normalize) z[j] = cij + (inp.bias ? inp.bias[j]! : 0);
      else if (j === y) {
        const t = targetMargin(cij, r.m1, r.m2, r.m3);
        z[j] = r.s * t.psi;
        dpsi = t.dpsi;
      } else z[j] = r.s * cij;
    }
    let mx = -Infinity;
    let arg = 0;
    for (let j = 0; j < c; j++) if (z[j]! > mx) {
      mx = z[j]!;
      arg = j;
    }
    if (arg === y) correct++;
    let se = 0;
    for (let j = 0; j < c; j++) se += Math.exp(z[j]! - mx);
    const lse = mx + Math.log(se);
    loss += lse - z[y]!;
    for (let j = 0; j < c; j++) {
      const g = (Math.exp(z[j]! - lse) - (j === y ? 1 : 0)) / valid;
      const gc = r.normalize ? r.s * g * (j === y ? dpsi : 1) : g;
      dcos[i * c + j] = gc;
      if (!r.normalize) dbias[j] = dbias[j]! + g;
    }
  }
  const dx = new Ctor(n * d);
  const dw = new Ctor(c * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < c; j++) {
      const g = dcos[i * c + j]!;
      if (g === 0) continue;
      for (let k = 0; k < d; k++) {
        dx[i * d + k] = dx[i * d + k]! + g * wn[j * d + k]!;
        dw[j * d + k] = dw[j * d + k]! + g * xn[i * d + k]!;
      }
    }
  }
  if (r.normalize) {
    normalizeBackward(dx, xn, xs.norms!, n, d);
    normalizeBackward(dw, wn, ws.norms!, c, d);
  }
  return { loss: valid ? loss / valid : 0, valid, correct, dx, dw, dbias, cos };
}
