// Sign codes: one bit per dimension (the sign of each coordinate), 16 bytes per 128-d face. The
// Hamming distance between two codes estimates the angle between the vectors (each bit differs with
// probability angle/pi for an isotropic embedding), so a scan of the codes (16 MB at 1M faces, a
// 32nd of the floats) finds a short list that holds the nearest faces, which are then scored
// exactly. The scan is a small WebAssembly kernel generated here (i64.popcnt over the codes, a
// histogram of the distances, then the rows within the distance that keeps the N best);
// `hammingReference` is the independent loop the tests check it against.
import { dotAt } from '../store/exact-scorer.js';

/** Bytes of one code: the dimension rounded up to 64 bits. */
export function codeBytes(dim: number): number {
  return Math.ceil(dim / 64) * 8;
}

/** Writes the sign code of `v` into `out` at byte `offset` (bit i set when v[i] > 0). */
export function signCode(v: Float32Array, out: Uint8Array, offset = 0): void {
  const bytes = codeBytes(v.length);
  out.fill(0, offset, offset + bytes);
  for (let i = 0; i < v.length; i++) if (v[i]! > 0) out[offset + (i >> 3)]! |= 1 << (i & 7);
}

/** Hamming distance of two codes, bit by bit (the reference the kernel is checked against). */
export function hammingReference(a: Uint8Array, aOffset: number, b: Uint8Array, bOffset: number, bytes: number): number {
  let h = 0;
  for (let i = 0; i < bytes; i++) {
    let x = a[aOffset + i]! ^ b[bOffset + i]!;
    while (x) {
      h += x & 1;
      x >>= 1;
    }
  }
  return h;
}

// ---- the kernel, as WebAssembly bytes ----

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

const I32 = 0x7f;
const I64 = 0x7e;
const V128 = 0x7b;
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  end: [0x0b],
  br_if: (d: number) => [0x0d, ...uleb(d)],
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  tee: (i: number) => [0x22, ...uleb(i)],
  i32: (n: number) => [0x41, ...sleb(n)],
  i32load: (offset = 0) => [0x28, 2, ...uleb(offset)],
  i64load: (offset = 0) => [0x29, 3, ...uleb(offset)],
  i32load8u: (offset = 0) => [0x2d, 0, ...uleb(offset)],
  i32store: (offset = 0) => [0x36, 2, ...uleb(offset)],
  i32store8: (offset = 0) => [0x3a, 0, ...uleb(offset)],
  i32eqz: [0x45],
  i32ltu: [0x49],
  i32leu: [0x4d],
  i32add: [0x6a],
  i32shl: [0x74],
  i64popcnt: [0x7b],
  i64add: [0x7c],
  i64xor: [0x85],
  i32wrap: [0xa7],
  i32and: [0x71],
  select: [0x1b],
  v128load: (offset = 0) => [0xfd, 0x00, 0, ...uleb(offset)],
  i8x16splat: [0xfd, 0x0f],
  i8x16leu: [0xfd, 0x2a],
  v128anytrue: [0xfd, 0x53],
};

/**
 * The kernel for codes of `words` 64-bit words. scan(codes, n, query, dist, hist): for each of n
 * codes at `codes`, dist[r] = Hamming distance to the code at `query` (one byte), and
 * hist[4 * d + (r & 3)] += 1 (i32; four interleaved histograms, so consecutive rows do not wait on
 * each other's count). collect(dist, n, t, out) -> count: out[c++] = r (i32) for every r < n with
 * dist[r] <= t, skipping 16 rows at a time where none is (SIMD compare).
 */
function kernelBytes(words: number): Uint8Array<ArrayBuffer> {
  // scan: params 0 codes, 1 n, 2 query, 3 dist, 4 hist | locals 5 r, 6 p, 7 h, 8 a, then i64 9.. the query words
  const q = (w: number) => 9 + w;
  const scanBody = [
    ...op.get(1), ...op.i32eqz, ...op.if, [0x0f], ...op.end, // return when n == 0
    ...Array.from({ length: words }, (_, w) => [...op.get(2), ...op.i64load(w * 8), ...op.set(q(w))]).flat(),
    ...op.get(0), ...op.set(6),
    ...op.loop,
    // h = sum of popcnt(code word ^ query word)
    ...Array.from({ length: words }, (_, w) => [...op.get(6), ...op.i64load(w * 8), ...op.get(q(w)), ...op.i64xor, ...op.i64popcnt, ...(w > 0 ? op.i64add : [])]).flat(),
    ...op.i32wrap, ...op.set(7),
    ...op.get(3), ...op.get(5), ...op.i32add, ...op.get(7), ...op.i32store8(),
    // hist[4h + (r & 3)]++
    ...op.get(4), ...op.get(7), ...op.i32(4), ...op.i32shl, ...op.i32add, ...op.get(5), ...op.i32(3), ...op.i32and, ...op.i32(2), ...op.i32shl, ...op.i32add, ...op.tee(8),
    ...op.get(8), ...op.i32load(), ...op.i32(1), ...op.i32add, ...op.i32store(),
    ...op.get(6), ...op.i32(words * 8), ...op.i32add, ...op.set(6),
    ...op.get(5), ...op.i32(1), ...op.i32add, ...op.tee(5), ...op.get(1), ...op.i32ltu, ...op.br_if(0),
    ...op.end,
  ].flat();
  // collect: params 0 dist, 1 n, 2 t, 3 out | locals 4 r0, 5 c, 6 r, 7 end; v128 8 splat(t)
  const collectBody = [
    ...op.get(2), ...op.i8x16splat, ...op.set(8),
    ...op.block,
    ...op.get(1), ...op.i32eqz, ...op.br_if(0),
    ...op.loop,
    ...op.get(0), ...op.get(4), ...op.i32add, ...op.v128load(), ...op.get(8), ...op.i8x16leu, ...op.v128anytrue,
    ...op.if,
    ...op.get(4), ...op.set(6),
    ...op.get(4), ...op.i32(16), ...op.i32add, ...op.tee(7), ...op.get(1), ...op.get(7), ...op.get(1), ...op.i32ltu, ...op.select, ...op.set(7),
    ...op.loop,
    ...op.get(0), ...op.get(6), ...op.i32add, ...op.i32load8u(), ...op.get(2), ...op.i32leu,
    ...op.if,
    ...op.get(3), ...op.get(5), ...op.i32(2), ...op.i32shl, ...op.i32add, ...op.get(6), ...op.i32store(),
    ...op.get(5), ...op.i32(1), ...op.i32add, ...op.set(5),
    ...op.end,
    ...op.get(6), ...op.i32(1), ...op.i32add, ...op.tee(6), ...op.get(7), ...op.i32ltu, ...op.br_if(0),
    ...op.end,
    ...op.end,
    ...op.get(4), ...op.i32(16), ...op.i32add, ...op.tee(4), ...op.get(1), ...op.i32ltu, ...op.br_if(0),
    ...op.end,
    ...op.end,
    ...op.get(5),
  ].flat();
  const fn = (locals: number[][], body: number[]) => {
    const code = [...vec(locals), ...body, 0x0b];
    return [...uleb(code.length), ...code];
  };
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    // types: 0 = (i32 x5) -> (), 1 = (i32 x4) -> i32
    ...section(1, vec([
      [0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), ...vec([])],
      [0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([[I32]])],
    ])),
    // import the memory: env.memory
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([[0], [1]])),
    ...section(7, vec([
      [...name('scan'), 0x00, 0],
      [...name('collect'), 0x00, 1],
    ])),
    ...section(10, vec([
      fn([[4, I32], [words, I64]], scanBody),
      fn([[4, I32], [1, V128]], collectBody),
    ])),
  ];
  return new Uint8Array(bytes);
}

interface Kernel {
  scan(codes: number, n: number, query: number, dist: number, hist: number): void;
  collect(dist: number, n: number, t: number, out: number): number;
}

const compiled = new Map<number, WebAssembly.Module>();

/**
 * The sign codes of a gallery's live faces in one WebAssembly memory, row r for the face in row r
 * of the gallery's VectorMatrix, and the scan that shortlists rows by Hamming distance to a probe.
 */
export class SignCodes {
  readonly bytes: number;
  private readonly memory: WebAssembly.Memory;
  private readonly kernel: Kernel;
  private capacity = 0;
  n = 0;
  // Layout: [query][hist: 4 x (dim + 1) i32][dist: capacity bytes][out: capacity i32][codes: capacity x bytes]
  private readonly queryAt = 0;
  private readonly histAt: number;
  private distAt = 0;
  private outAt = 0;
  private codesAt = 0;

  constructor(readonly dim: number, capacity = 1024) {
    // Distances are kept one byte per row.
    if (dim > 255) throw new RangeError(`sign codes hold at most 255 dimensions, not ${dim}`);
    this.bytes = codeBytes(dim);
    this.histAt = 64 + this.bytes; // after the query, 8-aligned
    this.memory = new WebAssembly.Memory({ initial: 1 });
    const words = this.bytes / 8;
    let module = compiled.get(words);
    if (!module) compiled.set(words, (module = new WebAssembly.Module(kernelBytes(words))));
    this.kernel = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as Kernel;
    this.layout(capacity);
  }

  private layout(capacity: number): void {
    const histBytes = (this.dim + 1) * 16;
    const distAt = (this.histAt + histBytes + 15) & ~15;
    const outAt = (distAt + capacity + 16 + 15) & ~15; // collect reads dist 16 bytes at a time
    const codesAt = outAt + capacity * 4;
    const need = codesAt + capacity * this.bytes;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
    const mem = new Uint8Array(this.memory.buffer);
    if (this.n > 0) mem.copyWithin(codesAt, this.codesAt, this.codesAt + this.n * this.bytes); // codes only move up
    this.distAt = distAt;
    this.outAt = outAt;
    this.codesAt = codesAt;
    this.capacity = capacity;
  }

  /** Appends the code of a vector as row n. */
  push(v: Float32Array): void {
    if (this.n === this.capacity) this.layout(this.capacity * 2);
    signCode(v, new Uint8Array(this.memory.buffer), this.codesAt + this.n * this.bytes);
    this.n++;
  }

  /** Moves the last row into row r and drops the last (as VectorMatrix.remove does). */
  removeRow(r: number): void {
    const last = this.n - 1;
    const mem = new Uint8Array(this.memory.buffer);
    if (r !== last) mem.copyWithin(this.codesAt + r * this.bytes, this.codesAt + last * this.bytes, this.codesAt + (last + 1) * this.bytes);
    this.n = last;
  }

  /** The code of row r (a copy). */
  code(r: number): Uint8Array {
    return new Uint8Array(this.memory.buffer).slice(this.codesAt + r * this.bytes, this.codesAt + (r + 1) * this.bytes);
  }

  /**
   * Rows of the `want` codes nearest the probe's by Hamming distance, and every row tied with the
   * last of them (so the list is the same whatever the row order).
   */
  shortlist(probe: Float32Array, want: number): Int32Array {
    if (this.n === 0) return new Int32Array(0);
    const mem = new Uint8Array(this.memory.buffer);
    signCode(probe, mem, this.queryAt);
    const hist = new Int32Array(this.memory.buffer, this.histAt, 4 * (this.dim + 1));
    hist.fill(0);
    this.kernel.scan(this.codesAt, this.n, this.queryAt, this.distAt, this.histAt);
    // The smallest distance t that keeps at least `want` rows.
    let t = 0;
    for (let c = 0; t <= this.dim; t++) {
      c += hist[4 * t]! + hist[4 * t + 1]! + hist[4 * t + 2]! + hist[4 * t + 3]!;
      if (c >= want) break;
    }
    const count = this.kernel.collect(this.distAt, this.n, t, this.outAt);
    return new Int32Array(this.memory.buffer, this.outAt, count).slice();
  }
}

/**
 * The k best rows by exact inner product among `rows` of `matrix` (row-major, `dim` wide), best
 * first; ties keep the lower row first.
 */
export function rerankRows(rows: ArrayLike<number>, probe: Float32Array, matrix: Float32Array, dim: number, k: number): { rows: number[]; scores: number[] } {
  const top: number[] = [];
  const scores: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const s = dotAt(probe, 0, matrix, r * dim, dim);
    if (top.length === k && (s < scores[k - 1]! || (s === scores[k - 1]! && r > top[k - 1]!))) continue;
    let pos = top.length < k ? top.length : k - 1;
    if (top.length < k) {
      top.push(r);
      scores.push(s);
    }
    while (pos > 0 && (scores[pos - 1]! < s || (scores[pos - 1] === s && top[pos - 1]! > r))) {
      scores[pos] = scores[pos - 1]!;
      top[pos] = top[pos - 1]!;
      pos--;
    }
    scores[pos] = s;
    top[pos] = r;
  }
  return { rows: top, scores };
}
