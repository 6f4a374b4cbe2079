// One instance of the WASM kernels (build/cosface*.wasm) over its own linear memory: typed kernel
// exports, a bump allocator that grows memory on demand, and Float32Array views remade after every
// growth. No file access here: Node (wasm-kernels.ts) and browsers (src/web/) bring the module.
import { CosfaceError } from '../../errors.js';

/** The exports of assembly/index.ts. Pointers are byte offsets into memory. */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  gemm(out: number, x: number, w: number, bias: number, alpha: number, res: number, P: number, K: number, N: number, act: number, scratch: number): void;
  im2col(out: number, x: number, H: number, W: number, C: number, kh: number, kw: number, sh: number, sw: number, padT: number, padL: number, OH: number, OW: number, padValue: number): void;
  depthwise(out: number, x: number, w: number, bias: number, alpha: number, res: number, H: number, W: number, C: number, kh: number, kw: number, sh: number, sw: number, padT: number, padL: number, OH: number, OW: number, act: number): void;
  add(out: number, a: number, b: number, alpha: number, P: number, C: number, act: number): void;
  affine(out: number, x: number, scale: number, shift: number, P: number, C: number): void;
  activation(out: number, x: number, alpha: number, P: number, C: number, act: number): void;
  pad(out: number, x: number, H: number, W: number, C: number, top: number, left: number, bottom: number, right: number): void;
  l2normalize(out: number, x: number, rows: number, dim: number): void;
  scoreTopK(queries: number, q: number, gallery: number, n: number, dim: number, k: number, base: number, topScores: number, topIdx: number): number;
  scoreTopKI8(query: number, gallery: number, scales: number, n: number, dim: number, k: number, base: number, topScores: number, topIdx: number): number;
  scoreTopKF16(query: number, gallery: number, n: number, dim: number, k: number, base: number, topScores: number, topIdx: number): number;
  packRows(dst: number, src: number, rows: number, dim: number): void;
  topKFromScoresT(scores: number, rows: number, q: number, k: number, base: number, topScores: number, topIdx: number, thresholds: number): number;
  maxPool2d(out: number, x: number, H: number, W: number, C: number, kh: number, kw: number, sh: number, sw: number, padT: number, padL: number, OH: number, OW: number): void;
  padChannels(out: number, x: number, P: number, C: number, before: number, after: number): void;
  sigmoid(out: number, x: number, count: number): void;
  copyBlocks(out: number, outStride: number, x: number, xStride: number, rows: number, count: number): void;
  sumFloats(ptr: number, n: number): number;
  warp(out: number, img: number, rx0: number, ry0: number, rw: number, rh: number, params: number, n: number, outW: number, fill: number, replicate: number): void;
}

/** Activation codes shared with assembly/common.ts. */
export const ACT_CODES = { none: 0, relu: 1, prelu: 2 } as const;
/** Or-ed into a GEMM's activation code: act(acc + bias + res) instead of act(acc + bias) + res. */
export const ACT_AFTER_RESIDUAL = 4;

/** The two builds of assembly/: plain 128-bit SIMD, and SIMD plus relaxed-SIMD fused multiply-add. */
export type WasmSimd = 'simd' | 'relaxed';
/** Which build to load: the relaxed one where the runtime validates it ('auto'), or a given one. */
export type WasmSimdChoice = 'auto' | WasmSimd;

const PAGE = 65536;
const ALIGN = 64;

/** One instance of the kernels with its own memory. */
export class WasmKernels {
  readonly k: KernelExports;
  private top: number;
  private f32View: Float32Array;
  private i32View: Int32Array;

  /** memory: for the shared-memory build, the WebAssembly.Memory it imports (shared by several instances). */
  constructor(module: WebAssembly.Module, memory?: WebAssembly.Memory) {
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(module, memory ? { env: { memory } } : {});
    } catch (e) {
      throw new CosfaceError('WASM_ERROR', `cannot instantiate the WASM kernels: ${(e as Error).message}`, { cause: e });
    }
    this.k = instance.exports as unknown as KernelExports;
    this.top = align(this.k.heapBase());
    this.f32View = new Float32Array(this.k.memory.buffer);
    this.i32View = new Int32Array(this.k.memory.buffer);
  }

  /** Current top of the bump allocator; reset(mark) frees everything allocated after it. */
  mark(): number {
    return this.top;
  }

  reset(mark: number): void {
    this.top = mark;
  }

  /** Allocates bytes (64-byte aligned), growing memory if needed; returns the byte offset. */
  alloc(bytes: number): number {
    const ptr = this.top;
    const end = align(ptr + Math.max(bytes, 0));
    const have = this.k.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.k.memory.grow(pages);
      } catch (e) {
        throw new CosfaceError('WASM_ERROR', `WASM memory cannot grow to ${Math.ceil(end / 2 ** 20)} MiB: ${(e as Error).message}`, { cause: e });
      }
    }
    this.top = end;
    return ptr;
  }

  /** Allocates and fills floats; returns the byte offset. */
  allocF32(data: Float32Array): number {
    const ptr = this.alloc(data.length * 4);
    this.f32.set(data, ptr >> 2);
    return ptr;
  }

  /** A Float32Array over the whole memory, remade when growth has replaced the buffer. */
  get f32(): Float32Array {
    if (this.f32View.buffer !== this.k.memory.buffer) this.f32View = new Float32Array(this.k.memory.buffer);
    return this.f32View;
  }

  get i32(): Int32Array {
    if (this.i32View.buffer !== this.k.memory.buffer) this.i32View = new Int32Array(this.k.memory.buffer);
    return this.i32View;
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}
