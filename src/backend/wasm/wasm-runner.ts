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

  /** One GEMM scratch per part of a split run (see runPart). */
  private readonly partScratch: number[];

  /**
   * parts > 1: the runner lives in a memory shared by that many workers, each of which builds the
   * same runner (same allocations, so the same addresses) and runs its part of every step.
   */
  constructor(
    private readonly kernels: WasmKernels,
    private readonly plan: WasmPlan,
    private readonly microBatch = DEFAULT_MICRO_BATCH,
    parts = 1,
  ) {
    this.start = kernels.mark();
    this.constPtr = plan.consts.map((c) => kernels.allocF32(c));
    this.slotPtr = plan.slots.map((floats) => kernels.alloc(floats * microBatch * 4));
    const maxK = Math.max(1, ...plan.steps.map((s) => (s.op === 'gemm' ? s.K : 1)));
    this.scratch = kernels.alloc(maxK * 16);
    this.partScratch = Array.from({ length: parts > 1 ? parts : 0 }, () => kernels.alloc(maxK * 16));
  }

  /**
   * Part `part` of `parts` of one sample, every step split by output rows (GEMM pixels in groups
   * of 4, convolution output rows), with barrier() after each step so the next one reads complete
   * tensors. Part 0 writes the input and returns the output; the others return null. Steps that
   * are not split run whole on part 0.
   */
  runPart(input: Float32Array | null, part: number, parts: number, barrier: () => void): Float32Array | null {
    const { inputSize, outputSize } = this.plan;
    const inPtr = this.slotPtr[this.plan.inputSlot]! >> 2;
    if (part === 0) {
      if (!input || input.length !== inputSize) throw new CosfaceError('BAD_INPUT', `expected ${inputSize} input floats, got ${input?.length ?? 0}`);
      this.kernels.f32.set(input, inPtr);
    }
    barrier();
    for (const step of this.plan.steps) {
      this.execPart(step, part, parts);
      barrier();
    }
    if (part !== 0) return null;
    const outPtr = this.slotPtr[this.plan.outputSlot]! >> 2;
    return this.kernels.f32.slice(outPtr, outPtr + outputSize);
  }

  private execPart(st: Step, part: number, parts: number): void {
    const k = this.kernels.k;
    const slot = (r: number) => this.slotPtr[r]!;
    const cst = (r: number) => (r < 0 ? 0 : this.constPtr[r]!);
    switch (st.op) {
      case 'gemm': {
        // Pixels in whole tiles of 4; a layer of a few pixels (the embedding's last) on part 0.
        const [a, b] = st.P < 4 * parts ? (part === 0 ? [0, st.P] : [0, 0]) : rangeOf(st.P, parts, part, 4);
        if (b > a) {
          k.gemm(slot(st.out) + a * st.N * 4, slot(st.x) + a * st.K * 4, cst(st.w), cst(st.bias), cst(st.alpha), st.res < 0 ? 0 : slot(st.res) + a * st.N * 4,
            b - a, st.K, st.N, st.act, this.partScratch[part]!);
        }
        return;
      }
      case 'depthwise':
      case 'im2col': {
        // Output rows [a, b): the input from the first row their windows touch (or row 0 with
        // what is left of the top padding); bottom padding follows from H.
        const [a, b] = rangeOf(st.OH, parts, part, 1);
        if (b <= a) return;
        const first = a * st.sh - st.padT;
        const iy = Math.max(0, first);
        const padT = iy - first;
        const x = slot(st.x) + iy * st.W * st.C * 4;
        if (st.op === 'depthwise') {
          const o = a * st.OW * st.C * 4;
          k.depthwise(slot(st.out) + o, x, cst(st.w), cst(st.bias), cst(st.alpha), st.res < 0 ? 0 : slot(st.res) + o,
            st.H - iy, st.W, st.C, st.kh, st.kw, st.sh, st.sw, padT, st.padL, b - a, st.OW, st.act);
        } else {
          k.im2col(slot(st.out) + a * st.OW * st.kh * st.kw * st.C * 4, x, st.H - iy, st.W, st.C, st.kh, st.kw, st.sh, st.sw, padT, st.padL, b - a, st.OW, cst(st.padValue));
        }
        return;
      }
      default:
        if (part === 0) this.exec(st, 1);
    }
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

/** Part `part` of [0, total) split into `parts` ranges on multiples of `multiple` (the last takes the rest). */
function rangeOf(total: number, parts: number, part: number, multiple: number): [number, number] {
  const units = Math.ceil(total / multiple);
  const a = Math.min(total, Math.floor((units * part) / parts) * multiple);
  const b = part === parts - 1 ? total : Math.min(total, Math.floor((units * (part + 1)) / parts) * multiple);
  return [a, b];
}
