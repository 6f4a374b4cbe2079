// Elementwise and per-row kernels over [P, C] tensors (C = the last axis, the channel of every
// per-channel constant): add, affine, activation, zero padding and L2 normalisation of rows.
import { activate, activateScalar } from './common';

/** out = act(a + b); alpha [C] for prelu, else 0. */
export function add(out: usize, a: usize, b: usize, alpha: usize, P: i32, C: i32, act: i32): void {
  const c4 = C & ~3;
  const rowBytes = (<usize>C) << 2;
  for (let p = 0; p < P; p++) {
    const o = (<usize>p) * rowBytes;
    let c = 0;
    for (; c < c4; c += 4) {
      const cb = (<usize>c) << 2;
      const v = f32x4.add(v128.load(a + o + cb), v128.load(b + o + cb));
      v128.store(out + o + cb, activate(v, act, alpha != 0 ? v128.load(alpha + cb) : f32x4.splat(0)));
    }
    for (; c < C; c++) {
      const cb = (<usize>c) << 2;
      const v = load<f32>(a + o + cb) + load<f32>(b + o + cb);
      store<f32>(out + o + cb, activateScalar(v, act, alpha != 0 ? load<f32>(alpha + cb) : 0));
    }
  }
}

/** out = x * scale + shift, per channel. */
export function affine(out: usize, x: usize, scale: usize, shift: usize, P: i32, C: i32): void {
  const c4 = C & ~3;
  const rowBytes = (<usize>C) << 2;
  for (let p = 0; p < P; p++) {
    const o = (<usize>p) * rowBytes;
    let c = 0;
    for (; c < c4; c += 4) {
      const cb = (<usize>c) << 2;
      v128.store(out + o + cb, f32x4.add(f32x4.mul(v128.load(x + o + cb), v128.load(scale + cb)), v128.load(shift + cb)));
    }
    for (; c < C; c++) {
      const cb = (<usize>c) << 2;
      store<f32>(out + o + cb, load<f32>(x + o + cb) * load<f32>(scale + cb) + load<f32>(shift + cb));
    }
  }
}

/** out = act(x); alpha [C] for prelu, else 0. */
export function activation(out: usize, x: usize, alpha: usize, P: i32, C: i32, act: i32): void {
  const c4 = C & ~3;
  const rowBytes = (<usize>C) << 2;
  for (let p = 0; p < P; p++) {
    const o = (<usize>p) * rowBytes;
    let c = 0;
    for (; c < c4; c += 4) {
      const cb = (<usize>c) << 2;
      v128.store(out + o + cb, activate(v128.load(x + o + cb), act, alpha != 0 ? v128.load(alpha + cb) : f32x4.splat(0)));
    }
    for (; c < C; c++) {
      const cb = (<usize>c) << 2;
      store<f32>(out + o + cb, activateScalar(load<f32>(x + o + cb), act, alpha != 0 ? load<f32>(alpha + cb) : 0));
    }
  }
}

/** Zero padding of one sample x [H, W, C] to out [H + top + bottom, W + left + right, C]. */
export function pad(out: usize, x: usize, H: i32, W: i32, C: i32, top: i32, left: i32, bottom: i32, right: i32): void {
  const OW = W + left + right;
  const outBytes = (<usize>((H + top + bottom) * OW * C)) << 2;
  memory.fill(out, 0, outBytes);
  const rowBytes = (<usize>(W * C)) << 2;
  for (let y = 0; y < H; y++) {
    memory.copy(out + (<usize>(((y + top) * OW + left) * C) << 2), x + <usize>y * rowBytes, rowBytes);
  }
}

/** Each of the rows of x [rows, dim] divided by its L2 norm (all-zero rows stay zero). */
export function l2normalize(out: usize, x: usize, rows: i32, dim: i32): void {
  const d4 = dim & ~3;
  const rowBytes = (<usize>dim) << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r) * rowBytes;
    const yr = out + (<usize>r) * rowBytes;
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i < d4; i += 4) {
      const v = v128.load(xr + ((<usize>i) << 2));
      acc = f32x4.add(acc, f32x4.mul(v, v));
    }
    let s: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
    for (; i < dim; i++) {
      const v = load<f32>(xr + ((<usize>i) << 2));
      s += v * v;
    }
    const inv: f32 = s > 0 ? <f32>1 / Mathf.sqrt(s) : 0;
    const vi = f32x4.splat(inv);
    i = 0;
    for (; i < d4; i += 4) {
      const o = (<usize>i) << 2;
      v128.store(yr + o, f32x4.mul(v128.load(xr + o), vi));
    }
    for (; i < dim; i++) {
      const o = (<usize>i) << 2;
      store<f32>(yr + o, load<f32>(xr + o) * inv);
    }
  }
}
