// Exact top-k by inner product on WebGPU (WGSL in kernels/score.ts): the gallery lives in storage
// buffers of at most maxStorageBufferBindingSize bytes each (chunks); per chunk a score pass leaves
// one top-k list per workgroup and a merge pass reduces them to one list per query; the CPU merges
// the chunks' lists. Same contract and errors as the WASM score() (src/backend/wasm/wasm-score.ts).
import { CosfaceError } from '../../errors.js';
import type { TopK } from '../backend.js';
import { badRowError, checkGalleryArgs, checkQueryArgs, mergeTopK, type PartialTopK } from '../wasm/wasm-topk.js';
import { getGpu } from './device.js';
import { GpuWait } from './gpu-wait.js';
import { PipelineCache, type ShaderSpec } from './pipeline-cache.js';
import { SCORE_WGSL } from './kernels/score.js';

// GPUBufferUsage / GPUMapMode values (usable before Dawn's globals are installed).
const STORAGE_IN = 0x80 | 0x08; // STORAGE | COPY_DST
const STORAGE_OUT = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const UNIFORM = 0x40 | 0x08; // UNIFORM | COPY_DST
const READBACK = 0x01 | 0x08; // MAP_READ | COPY_DST
const MAP_READ = 0x0001;

/** Must match kernels/score.ts. */
const WG = 64;
const QB = 4;
const KMAX = 32;
const EMPTY = 0xffffffff;
/** Workgroups per query group a chunk is cut into: enough to fill a large GPU several times over. */
const TARGET_BLOCKS = 2048;
/** Bytes of raw scores read back per round on the k > KMAX path. */
const RAW_SCORE_BYTES = 64 << 20;

export interface WebGpuScorerOptions {
  /**
   * Largest gallery chunk in bytes (default and ceiling: the device's maxStorageBufferBindingSize
   * and maxBufferSize). Smaller values exercise chunking on small galleries.
   */
  maxChunkBytes?: number;
}

/** A gallery uploaded once and scored many times (no copy per call). */
export interface ResidentGallery {
  readonly n: number;
  readonly dim: number;
  /** Gallery bytes held on the GPU (rows padded to a multiple of 4 floats). */
  readonly bytes: number;
  /** Top-k of q queries against this gallery; contract as WebGpuScorer.score. */
  score(queries: Float32Array, q: number, k: number): Promise<TopK>;
  /**
   * The sum of every gallery value, by a plain streaming read of the GPU buffers (readSum in
   * kernels/score.ts): the memory bandwidth reference the score benchmark sets beside score().
   */
  sumAll(): Promise<number>;
  dispose(): void;
}

export interface WebGpuScorer {
  /** e.g. "NVIDIA H200 (nvidia, hopper)". */
  readonly adapter: string;
  /**
   * Exact top-k of q queries against n gallery rows (both dim floats per row) by inner product.
   * Uploads the gallery on every call; use upload() to score one gallery many times. Errors and
   * results as the WASM score(): DIMENSION_MISMATCH for wrong lengths, BAD_INPUT for k < 1,
   * non-integer counts and NaN/infinite values (naming the query, or the first gallery row whose
   * score is not finite), min(k, n) results per query best first, equal scores lower index first.
   */
  score(queries: Float32Array, q: number, gallery: Float32Array, n: number, dim: number, k: number): Promise<TopK>;
  upload(gallery: Float32Array, n: number, dim: number): Promise<ResidentGallery>;
  dispose(): void;
}

interface Chunk {
  buffer: GPUBuffer;
  /** Global number of the first row. */
  base: number;
  rows: number;
}

function spec(entryPoint: 'score' | 'merge' | 'scores' | 'readSum'): ShaderSpec {
  return { name: 'score', code: SCORE_WGSL, entryPoint };
}

/** Rows padded to whole vec4s: a copy only when dim is not a multiple of 4. */
function padRows(src: Float32Array, rows: number, dim: number, dim4: number): Float32Array {
  if (dim === dim4 * 4) return src;
  const out = new Float32Array(rows * dim4 * 4);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * dim, (r + 1) * dim), r * dim4 * 4);
  return out;
}

/** Top-k lists (q x k) from raw scores of rows [0, rows) numbered from base, merged into `into`. */
function offerRaw(into: PartialTopK, raw: Float32Array, q: number, rows: number, k: number, base: number): void {
  for (let qi = 0; qi < q; qi++) {
    const s = into.scores.subarray(qi * k, (qi + 1) * k);
    const ix = into.indices.subarray(qi * k, (qi + 1) * k);
    for (let r = 0; r < rows; r++) {
      const v = raw[qi * rows + r]!;
      if (!Number.isFinite(v)) {
        if (into.badRow < 0 || base + r < into.badRow) into.badRow = base + r;
        continue;
      }
      // Rows arrive in increasing order, so an equal score never displaces an earlier row.
      if (!(v > s[k - 1]!) && ix[k - 1]! >= 0) continue;
      let j = k - 1;
      while (j > 0 && (ix[j - 1]! < 0 || v > s[j - 1]!)) {
        s[j] = s[j - 1]!;
        ix[j] = ix[j - 1]!;
        j--;
      }
      s[j] = v;
      ix[j] = base + r;
    }
  }
}

export async function createWebGpuScorer(opts: WebGpuScorerOptions = {}): Promise<WebGpuScorer> {
  const gpu = await getGpu();
  const device = gpu.device;
  const pipelines = new PipelineCache(device);
  const topKWait = new GpuWait(); // units: queries x gallery rows / 1e6
  const limits = device.limits;
  const maxBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const chunkBytes = Math.min(maxBinding, opts.maxChunkBytes ?? Infinity);
  const residents = new Set<ResidentGallery>();
  let disposed = false;

  const alive = (): void => {
    if (disposed) throw new CosfaceError('GPU_ERROR', 'this WebGPU scorer has been disposed');
  };

  function storage(bytes: number, usage: number, label: string): GPUBuffer {
    // Bindings need a non-zero size that is a multiple of 4.
    return device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage, label });
  }

  function uniform(words: number[]): GPUBuffer {
    const data = new Uint32Array(12);
    data.set(words);
    const buf = device.createBuffer({ size: data.byteLength, usage: UNIFORM, label: 'score params' });
    device.queue.writeBuffer(buf, 0, data);
    return buf;
  }

  async function upload(gallery: Float32Array, n: number, dim: number): Promise<ResidentGallery> {
    alive();
    checkGalleryArgs(gallery, n, dim);
    const dim4 = Math.ceil(dim / 4);
    const rowBytes = dim4 * 16;
    const chunkRows = Math.floor(chunkBytes / rowBytes);
    if (chunkRows < 1) {
      throw new CosfaceError('BAD_INPUT', `a gallery row of ${dim} floats exceeds the device's storage binding limit (${chunkBytes} bytes)`);
    }
    const chunks: Chunk[] = [];
    try {
      for (let base = 0; base < n; base += chunkRows) {
        const rows = Math.min(chunkRows, n - base);
        const buffer = storage(rows * rowBytes, STORAGE_IN, `gallery rows ${base}..${base + rows}`);
        chunks.push({ buffer, base, rows });
        const data = padRows(gallery.subarray(base * dim, (base + rows) * dim), rows, dim, dim4);
        device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
      }
    } catch (e) {
      for (const c of chunks) c.buffer.destroy();
      throw new CosfaceError('GPU_ERROR', `cannot upload a gallery of ${n} x ${dim} floats: ${(e as Error).message}`, { cause: e });
    }
    let released = false;
    const resident: ResidentGallery = {
      n,
      dim,
      bytes: n * rowBytes,
      score: async (queries, q, k) => {
        alive();
        if (released) throw new CosfaceError('GPU_ERROR', 'this resident gallery has been disposed');
        checkQueryArgs(queries, q, dim, k);
        return scoreChunks(chunks, queries, q, n, dim, k);
      },
      sumAll: async () => {
        alive();
        if (released) throw new CosfaceError('GPU_ERROR', 'this resident gallery has been disposed');
        return sumChunks(chunks, dim4);
      },
      dispose: () => {
        if (released) return;
        released = true;
        residents.delete(resident);
        for (const c of chunks) c.buffer.destroy();
      },
    };
    residents.add(resident);
    return resident;
  }

  async function sumChunks(chunks: Chunk[], dim4: number): Promise<number> {
    if (chunks.length === 0) return 0;
    const pipe = await pipelines.get(spec('readSum'));
    const blocks = TARGET_BLOCKS * 4;
    const temps: GPUBuffer[] = [];
    const make = (b: GPUBuffer) => (temps.push(b), b);
    try {
      const bytes = chunks.length * blocks * 4;
      const out = make(storage(bytes, STORAGE_OUT, 'read sums'));
      const read = make(device.createBuffer({ size: out.size, usage: READBACK, label: 'read sums readback' }));
      const encoder = device.createCommandEncoder({ label: 'readSum' });
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipe);
      chunks.forEach((c, ci) => {
        const params = make(uniform([dim4, c.rows, 0, 0, 0, blocks, 0, ci * blocks, 0, 0, 0, 0]));
        pass.setBindGroup(0, device.createBindGroup({
          layout: pipe.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: c.buffer } },
            { binding: 5, resource: { buffer: params } },
            { binding: 6, resource: { buffer: out } },
          ],
        }));
        pass.dispatchWorkgroups(blocks);
      });
      pass.end();
      encoder.copyBufferToBuffer(out, 0, read, 0, out.size);
      device.queue.submit([encoder.finish()]);
      await read.mapAsync(MAP_READ);
      const sums = new Float32Array(read.getMappedRange(), 0, bytes / 4);
      let total = 0;
      for (const v of sums) total += v;
      read.unmap();
      return total;
    } finally {
      for (const b of temps) b.destroy();
    }
  }

  async function scoreChunks(chunks: Chunk[], queries: Float32Array, q: number, n: number, dim: number, k: number): Promise<TopK> {
    const kOut = Math.min(k, n);
    if (q === 0 || n === 0) return { k: kOut, scores: new Float32Array(0), indices: new Int32Array(0) };
    const parts = kOut <= KMAX ? await topKOnGpu(chunks, queries, q, dim, kOut) : await topKFromRawScores(chunks, queries, q, dim, kOut);
    const badRow = parts.reduce((m, p) => (p.badRow >= 0 && (m < 0 || p.badRow < m) ? p.badRow : m), -1);
    if (badRow >= 0) throw badRowError(badRow);
    return mergeTopK(parts, q, kOut, kOut);
  }

  /** k <= KMAX: score and merge passes per chunk, query group by query group; one list per chunk. */
  async function topKOnGpu(chunks: Chunk[], queries: Float32Array, q: number, dim: number, k: number): Promise<PartialTopK[]> {
    const dim4 = Math.ceil(dim / 4);
    const [scorePipe, mergePipe] = await Promise.all([pipelines.get(spec('score')), pipelines.get(spec('merge'))]);
    const plan = chunks.map((c) => {
      const rowsPerThread = Math.max(1, Math.ceil(c.rows / (WG * TARGET_BLOCKS)));
      return { rowsPerThread, blocks: Math.ceil(c.rows / (WG * rowsPerThread)) };
    });
    const maxBlocks = Math.max(...plan.map((p) => p.blocks));
    // Queries per submission: the block lists (qn x blocks x k) and the queries must fit a binding.
    const fitting = Math.floor(maxBinding / Math.max(maxBlocks * k * 4, dim4 * 16));
    const qPerRound = Math.max(QB, Math.floor(Math.min(fitting, 65535 * QB) / QB) * QB);
    const parts: PartialTopK[] = chunks.map(() => ({ scores: new Float32Array(q * k), indices: new Int32Array(q * k), badRow: -1 }));
    for (let q0 = 0; q0 < q; q0 += qPerRound) {
      const qn = Math.min(qPerRound, q - q0);
      const temps: GPUBuffer[] = [];
      const make = (b: GPUBuffer) => (temps.push(b), b);
      try {
        const qBuf = make(storage(qn * dim4 * 16, STORAGE_IN, 'score queries'));
        const qData = padRows(queries.subarray(q0 * dim, (q0 + qn) * dim), qn, dim, dim4);
        device.queue.writeBuffer(qBuf, 0, qData.buffer, qData.byteOffset, qData.byteLength);
        const partS = make(storage(qn * maxBlocks * k * 4, STORAGE_OUT, 'score block lists'));
        const partI = make(storage(qn * maxBlocks * k * 4, STORAGE_OUT, 'score block rows'));
        const outBytes = chunks.length * qn * k * 4;
        const outS = make(storage(outBytes, STORAGE_OUT, 'score lists'));
        const outI = make(storage(outBytes, STORAGE_OUT, 'score rows'));
        const bad = make(storage(chunks.length * 4, STORAGE_OUT, 'score bad rows'));
        device.queue.writeBuffer(bad, 0, new Uint32Array(Math.ceil(chunks.length / 4) * 4).fill(EMPTY));
        const read = make(device.createBuffer({ size: 2 * outBytes + Math.ceil(chunks.length / 4) * 16, usage: READBACK, label: 'score readback' }));
        const encoder = device.createCommandEncoder({ label: 'score' });
        const pass = encoder.beginComputePass({ label: 'score' });
        chunks.forEach((c, ci) => {
          const { rowsPerThread, blocks } = plan[ci]!;
          const params = make(uniform([dim4, c.rows, qn, k, rowsPerThread, blocks, c.base, ci * qn * k, ci, 0, 0, 0]));
          pass.setPipeline(scorePipe);
          pass.setBindGroup(0, device.createBindGroup({
            layout: scorePipe.getBindGroupLayout(0),
            entries: [
              { binding: 0, resource: { buffer: c.buffer } },
              { binding: 1, resource: { buffer: qBuf } },
              { binding: 2, resource: { buffer: partS } },
              { binding: 3, resource: { buffer: partI } },
              { binding: 4, resource: { buffer: bad } },
              { binding: 5, resource: { buffer: params } },
            ],
          }));
          pass.dispatchWorkgroups(Math.ceil(qn / QB), blocks);
          pass.setPipeline(mergePipe);
          pass.setBindGroup(0, device.createBindGroup({
            layout: mergePipe.getBindGroupLayout(0),
            entries: [
              { binding: 2, resource: { buffer: partS } },
              { binding: 3, resource: { buffer: partI } },
              { binding: 5, resource: { buffer: params } },
              { binding: 6, resource: { buffer: outS } },
              { binding: 7, resource: { buffer: outI } },
            ],
          }));
          pass.dispatchWorkgroups(Math.min(qn, 65535), Math.ceil(qn / 65535));
        });
        pass.end();
        encoder.copyBufferToBuffer(outS, 0, read, 0, outBytes);
        encoder.copyBufferToBuffer(outI, 0, read, outBytes, outBytes);
        encoder.copyBufferToBuffer(bad, 0, read, 2 * outBytes, Math.ceil(chunks.length / 4) * 16);
        const units = (qn * chunks.reduce((t, c) => t + c.rows, 0)) / 1e6;
        const t0 = performance.now();
        device.queue.submit([encoder.finish()]);
        await topKWait.settle(units, t0, () => read.mapAsync(MAP_READ));
        const mapped = read.getMappedRange();
        const s = new Float32Array(mapped, 0, outBytes / 4);
        const ix = new Int32Array(mapped, outBytes, outBytes / 4); // EMPTY (2^32 - 1) reads as -1
        const badRows = new Uint32Array(mapped, 2 * outBytes, chunks.length);
        chunks.forEach((c, ci) => {
          const part = parts[ci]!;
          part.scores.set(s.subarray(ci * qn * k, (ci + 1) * qn * k), q0 * k);
          part.indices.set(ix.subarray(ci * qn * k, (ci + 1) * qn * k), q0 * k);
          if (badRows[ci] !== EMPTY && part.badRow < 0) part.badRow = c.base + badRows[ci]!;
        });
        read.unmap();
      } finally {
        for (const b of temps) b.destroy();
      }
    }
    return parts;
  }

  /** k > KMAX: raw scores of row ranges read back and selected on the CPU (slow, but any k). */
  async function topKFromRawScores(chunks: Chunk[], queries: Float32Array, q: number, dim: number, k: number): Promise<PartialTopK[]> {
    const dim4 = Math.ceil(dim / 4);
    const pipe = await pipelines.get(spec('scores'));
    const part: PartialTopK = { scores: new Float32Array(q * k).fill(-Infinity), indices: new Int32Array(q * k).fill(-1), badRow: -1 };
    for (let q0 = 0; q0 < q; q0 += 65535) {
      const qn = Math.min(65535, q - q0);
      const rowsPerRound = Math.max(1, Math.floor(Math.min(RAW_SCORE_BYTES, maxBinding) / (qn * 4)));
      const qBuf = storage(qn * dim4 * 16, STORAGE_IN, 'score queries');
      try {
        const qData = padRows(queries.subarray(q0 * dim, (q0 + qn) * dim), qn, dim, dim4);
        device.queue.writeBuffer(qBuf, 0, qData.buffer, qData.byteOffset, qData.byteLength);
        const sub: PartialTopK = { scores: new Float32Array(qn * k).fill(-Infinity), indices: new Int32Array(qn * k).fill(-1), badRow: -1 };
        for (const c of chunks) {
          for (let r0 = 0; r0 < c.rows; r0 += rowsPerRound) {
            const rowsN = Math.min(rowsPerRound, c.rows - r0);
            const out = storage(qn * rowsN * 4, STORAGE_OUT, 'raw scores');
            const read = device.createBuffer({ size: out.size, usage: READBACK, label: 'raw scores readback' });
            const params = uniform([dim4, c.rows, qn, k, 0, 0, c.base, 0, 0, r0, rowsN, 0]);
            try {
              const encoder = device.createCommandEncoder({ label: 'raw scores' });
              const pass = encoder.beginComputePass();
              pass.setPipeline(pipe);
              pass.setBindGroup(0, device.createBindGroup({
                layout: pipe.getBindGroupLayout(0),
                entries: [
                  { binding: 0, resource: { buffer: c.buffer } },
                  { binding: 1, resource: { buffer: qBuf } },
                  { binding: 5, resource: { buffer: params } },
                  { binding: 6, resource: { buffer: out } },
                ],
              }));
              pass.dispatchWorkgroups(Math.ceil(rowsN / WG), qn);
              pass.end();
              encoder.copyBufferToBuffer(out, 0, read, 0, out.size);
              device.queue.submit([encoder.finish()]);
              await read.mapAsync(MAP_READ);
              offerRaw(sub, new Float32Array(read.getMappedRange(), 0, qn * rowsN), qn, rowsN, k, c.base + r0);
              read.unmap();
            } finally {
              out.destroy();
              read.destroy();
              params.destroy();
            }
          }
        }
        part.scores.set(sub.scores, q0 * k);
        part.indices.set(sub.indices, q0 * k);
        if (sub.badRow >= 0 && (part.badRow < 0 || sub.badRow < part.badRow)) part.badRow = sub.badRow;
      } finally {
        qBuf.destroy();
      }
    }
    return [part];
  }

  return {
    adapter: gpu.adapterName,
    async score(queries, q, gallery, n, dim, k) {
      alive();
      // Every argument checked before anything is uploaded.
      checkGalleryArgs(gallery, n, dim);
      checkQueryArgs(queries, q, dim, k);
      if (q === 0 || n === 0) return { k: Math.min(k, n), scores: new Float32Array(0), indices: new Int32Array(0) };
      const resident = await upload(gallery, n, dim);
      try {
        return await resident.score(queries, q, k);
      } finally {
        resident.dispose();
      }
    },
    upload,
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const r of [...residents]) r.dispose();
    },
  };
}
