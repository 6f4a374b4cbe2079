// Long-lived blocks in the linear memory of one kernel instance, for several growable row sets that
// are scanned in place (the edge store's galleries, ExactVectorIndex): a first-fit free list over
// the instance's bump allocator. Blocks are carved from the top of the allocator (growing memory
// only when no freed block fits), a block at the top grows and shrinks in place, and freed blocks
// are merged with free neighbours and reused; a free block at the top is given back to the
// allocator. WebAssembly memory never shrinks: what a dropped gallery held is reused by the next.
// Runtime-neutral (no file access): the instance comes from the caller.
//
// Rule for the instance's other users: the bump allocator is shared, so they may allocate only in
// mark()/reset() pairs inside one synchronous call (as the scans do); a block allocated between
// such a pair would be overwritten after the reset.
import type { WasmKernels } from './wasm-instance.js';

const ALIGN = 64;
const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

const arenas = new WeakMap<WasmKernels, WasmArena>();

export class WasmArena {
  /** Free blocks below the allocator's top (byte offset and size), sorted by offset, never adjacent. */
  private readonly free: { at: number; bytes: number }[] = [];
  private used = 0;

  private constructor(private readonly kernels: WasmKernels) {}

  /** The arena of this instance (one per instance: the blocks share its memory and allocator). */
  static of(kernels: WasmKernels): WasmArena {
    let a = arenas.get(kernels);
    if (!a) {
      a = new WasmArena(kernels);
      arenas.set(kernels, a);
    }
    return a;
  }

  /** Bytes in live blocks. */
  get bytesInUse(): number {
    return this.used;
  }

  /** Bytes in freed blocks below the top, waiting for reuse. */
  get bytesFree(): number {
    return this.free.reduce((s, f) => s + f.bytes, 0);
  }

  /** The instance's linear memory, in bytes (what the arena and everything else in it hold). */
  get memoryBytes(): number {
    return this.kernels.k.memory.buffer.byteLength;
  }

  /** Whether the block of `bytes` bytes at `at` is the top one (it then grows in place, with no copy). */
  onTop(at: number, bytes: number): boolean {
    return at + align(Math.max(bytes, ALIGN)) === this.kernels.mark();
  }

  /** A block of at least `bytes` bytes (64-byte aligned); returns its byte offset. WASM_ERROR when memory cannot grow. */
  alloc(bytes: number): number {
    const size = align(Math.max(bytes, ALIGN));
    const i = this.free.findIndex((f) => f.bytes >= size);
    let at: number;
    if (i >= 0) {
      const f = this.free[i]!;
      at = f.at;
      if (f.bytes === size) this.free.splice(i, 1);
      else {
        f.at += size;
        f.bytes -= size;
      }
    } else at = this.kernels.alloc(size);
    this.used += size;
    return at;
  }

  /** Frees a block of `bytes` bytes at `at` (as allocated). */
  release(at: number, bytes: number): void {
    const size = align(Math.max(bytes, ALIGN));
    this.used -= size;
    if (at + size === this.kernels.mark()) {
      // The top block: hand it back to the allocator, with the free block under it if any.
      let top = at;
      const last = this.free[this.free.length - 1];
      if (last && last.at + last.bytes === top) {
        top = last.at;
        this.free.pop();
      }
      this.kernels.reset(top);
      return;
    }
    let i = 0;
    while (i < this.free.length && this.free[i]!.at < at) i++;
    this.free.splice(i, 0, { at, bytes: size });
    // Merge with the next block, then with the previous one.
    const next = this.free[i + 1];
    if (next && at + size === next.at) {
      this.free[i]!.bytes += next.bytes;
      this.free.splice(i + 1, 1);
    }
    const prev = this.free[i - 1];
    if (prev && prev.at + prev.bytes === at) {
      prev.bytes += this.free[i]!.bytes;
      this.free.splice(i, 1);
    }
  }

  /**
   * Resizes a block to `bytes`, keeping its first `keep` bytes: in place when it is at the top of
   * the allocator or shrinks, else moved (a new block, the bytes copied, the old one freed).
   * Returns the block's (possibly new) offset.
   */
  resize(at: number, oldBytes: number, bytes: number, keep: number): number {
    const oldSize = align(Math.max(oldBytes, ALIGN));
    const size = align(Math.max(bytes, ALIGN));
    if (size === oldSize) return at;
    if (size < oldSize) {
      this.release(at + size, oldSize - size);
      return at;
    }
    if (at + oldSize === this.kernels.mark()) {
      this.kernels.alloc(size - oldSize); // extends the top block in place (aligned sizes: contiguous)
      this.used += size - oldSize;
      return at;
    }
    const to = this.alloc(size);
    const bytesView = new Uint8Array(this.kernels.k.memory.buffer);
    bytesView.copyWithin(to, at, at + Math.min(keep, oldSize));
    this.release(at, oldSize);
    return to;
  }
}
