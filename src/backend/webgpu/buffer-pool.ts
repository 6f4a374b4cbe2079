// Reuses GPU buffers by (rounded size, usage). Buffers released here go back to the pool only;
// callers release a buffer after the queue work that used it was submitted (WebGPU keeps a
// buffer alive until submitted work using it completes, and later submissions are ordered).
export class BufferPool {
  private free = new Map<string, GPUBuffer[]>();
  private live = new Set<GPUBuffer>();
  constructor(private readonly device: GPUDevice) {}

  /** Size classes: powers of two up to 1 MiB, then multiples of 1 MiB, so reuse is likely. */
  static roundSize(bytes: number): number {
    const b = Math.max(16, bytes);
    if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
    return Math.ceil(b / (1 << 20)) * (1 << 20);
  }

  acquire(bytes: number, usage: GPUBufferUsageFlags, label?: string): GPUBuffer {
    const size = BufferPool.roundSize(bytes);
    const key = `${size}:${usage}`;
    const list = this.free.get(key);
    const buf = list?.pop() ?? this.device.createBuffer({ size, usage, label });
    this.live.add(buf);
    return buf;
  }

  release(buf: GPUBuffer): void {
    if (!this.live.delete(buf)) return;
    const key = `${buf.size}:${buf.usage}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
  }

  /** Buffers handed out and not released (a leak check for tests). */
  get liveCount(): number {
    return this.live.size;
  }

  get pooledBytes(): number {
    let n = 0;
    for (const list of this.free.values()) for (const b of list) n += b.size;
    return n;
  }

  destroy(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    for (const b of this.live) b.destroy();
    this.free.clear();
    this.live.clear();
  }
}
