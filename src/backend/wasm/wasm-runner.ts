// Executes a WasmPlan on one kernel instance: constants copied into linear memory once, arena
// slots sized for a micro-batch, samples run through the steps micro-batch by micro-batch.
import { CosfaceError } from '../../errors.js';
import type { WasmKernels } from './wasm-instance.js';
import type { Step, WasmPlan } from './wasm-plan.js';

/** Samples per pass through the steps; the arena holds this many samples of every live tensor. */
export const DEFAULT_MICRO_BATCH = 1;

export class WasmGraphRunner {
  private readonly constPtr: number[];
  private readonly slotPtr: number[];
  private readonly start: number;
  /** 4 * K floats for the GEMM's packed input tile (K of the widest GEMM). */
  private readonly scratch: number;

  constructor(
    private readonly kernels: WasmKernels,
    private readonly plan: WasmPlan,
    private readonly microBatch = DEFAULT_MICRO_BATCH,
  ) {
    this.start = kernels.mark();
    this.constPtr = plan.consts.map((c) => kernels.allocF32(c));
    this.slotPtr = plan.slots.map((floats) => kernels.alloc(floats * microBatch * 4));
    const maxK = Math.max(1, ...plan.steps.map((s) => (s.op === 'gemm' ? s.K : 1)));
    this.scratch = kernels.alloc(maxK * 16);
  }

  /** Runs n samples (input: n * inputSize floats) and returns n * outputSize floats. */
  run(input: Float32Array, n: number): Float32Array {
    const { inputSize, outputSize } = this.plan;
    if (!Number.isInteger(n) || n < 1 || input.length !== n * inputSize) {
      throw new CosfaceError('BAD_INPUT', `expected ${n} x ${inputSize} input floats, got ${input.length}`);
    }
    const out = new Float32Array(n * outputSize);
    const inPtr = this.slotPtr[this.plan.inputSlot]! >> 2;
    const outPtr = this.slotPtr[this.plan.outputSlot]! >> 2;
    for (let s0 = 0; s0 < n; s0 += this.microBatch) {
      const m = Math.min(this.microBatch, n - s0);
      this.kernels.f32.set(input.subarray(s0 * inputSize, (s0 + m) * inputSize), inPtr);
      for (const step of this.plan.steps) this.exec(step, m);
      out.set(this.kernels.f32.subarray(outPtr, outPtr + m * outputSize), s0 * outputSize);
    }
    return out;
  }

  /** Frees this runner's memory (only valid when it is the most recent allocation). */
  dispose(): void {
    this.kernels.reset(this.start);
  }

  private exec(st: Step, m: number): void {
    const k = this.kernels.k;
    const slot = (r: number) => this.slotPtr[r]!;
    const cst = (r: number) => (r < 0 ? 0 : this.constPtr[r]!);
    const opt = (r: number) => (r < 0 ? 0 : this.slotPtr[r]!);
    switch (st.op) {
      case 'gemm':
        k.gemm(slot(st.out), slot(st.x), cst(st.w), cst(st.bias), cst(st.alpha), opt(st.res), st.P * m, st.K, st.N, st.act, this.scratch);
        break;
      case 'im2col':
        for (let s = 0; s < m; s++) {
          k.im2col(slot(st.out) + s * st.outSize * 4, slot(st.x) + s * st.xSize * 4, st.H, st.W, st.C, st.kh, st.kw, st.sh, st.sw, st.padT, st.padL, st.OH, st.OW, cst(st.padValue));
        }
        break;
      case 'depthwise':
        for (let s = 0; s < m; s++) {
          const o = s * st.outSize * 4;
          k.depthwise(slot(st.out) + o, slot(st.x) + s * st.xSize * 4, cst(st.w), cst(st.bias), cst(st.alpha), st.res < 0 ? 0 : slot(st.res) + o,
            st.H, st.W, st.C, st.kh, st.kw, st.sh, st.sw, st.padT, st.padL, st.OH, st.OW, st.act);
        }
        break;
      case 'add':
        k.add(slot(st.out), slot(st.a), slot(st.b), cst(st.alpha), st.P * m, st.C, st.act);
        break;
      case 'affine':
        k.affine(slot(st.out), slot(st.x), cst(st.scale), cst(st.shift), st.P * m, st.C);
        break;
      case 'activation':
        k.activation(slot(st.out), slot(st.x), cst(st.alpha), st.P * m, st.C, st.act);
        break;
      case 'pad':
        for (let s = 0; s < m; s++) {
          k.pad(slot(st.out) + s * st.outSize * 4, slot(st.x) + s * st.xSize * 4, st.H, st.W, st.C, st.top, st.left, st.bottom, st.right);
        }
        break;
      case 'l2normalize':
        k.l2normalize(slot(st.out), slot(st.x), m, st.dim);
        break;
      case 'maxPool2d':
        for (let s = 0; s < m; s++) {
          k.maxPool2d(slot(st.out) + s * st.outSize * 4, slot(st.x) + s * st.xSize * 4, st.H, st.W, st.C, st.kh, st.kw, st.sh, st.sw, st.padT, st.padL, st.OH, st.OW);
        }
        break;
      case 'padChannels':
        k.padChannels(slot(st.out), slot(st.x), st.P * m, st.C, st.before, st.after);
        break;
      case 'sigmoid':
        k.sigmoid(slot(st.out), slot(st.x), st.size * m);
        break;
      case 'copy':
        k.copyBlocks(slot(st.out) + st.offset * 4, st.outSize, slot(st.x), st.xSize, m, st.size);
        break;
    }
  }
}
