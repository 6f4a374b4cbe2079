// The edge store's exact scan (ExactVectorIndex, one thread, the WASM `score` kernel) per query,
// in one run: the path it had before (the rows in JS arrays, copied into linear memory on every
// call: f32 copied whole, f16/int8 decoded in JS 512 rows at a time, then copied), the index as it
// is now (the rows resident in linear memory and scanned in place: f32 by scoreTopK, f16 and int8
// by scoreTopKF16 / scoreTopKI8, which decode as they read), and the bare scan of resident f32
// rows (scoreResident: what an f32 query costs with no copy and no id lookup). Answers of the old and the new path are compared on every probe (ids and
// scores must be identical). Medians of several rounds, each round timing every path on the same
// probes in turn.
// Run: npx tsx src/bench/edge-scan-bench.ts [--sizes 1000,10000,50000] [--dim 128] [--storages f32,int8] [--probes 200] [--rounds 5] [--k 1]
import { parseArgs } from 'node:util';
import { loadWasmModule, WasmKernels } from '../backend/wasm/wasm-kernels.js';
import { badRowError, mergeTopK, scoreOnInstance, scoreResident, type PartialTopK } from '../backend/wasm/wasm-topk.js';
import { gaussian, mulberry32 } from '../random.js';
import { toUnitVector } from '../store/embedding.js';
import { ExactVectorIndex, toHalf, type VectorStorage } from '../store/exact-vector-index.js';

const { values: a } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,10000,50000' },
    dim: { type: 'string', default: '128' },
    storages: { type: 'string', default: 'f32,int8' },
    probes: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '5' },
    k: { type: 'string', default: '1' },
  },
});
const DIM = Number(a.dim);
const PROBES = Number(a.probes);
const ROUNDS = Number(a.rounds);
const K = Number(a.k);

const rnd = mulberry32(20261206);
const gauss = gaussian(rnd);
const unit = (v: Float32Array) => toUnitVector(v, v.length);

/** The search of ExactVectorIndex before its rows were resident: JS arrays, copied per call. */
class CopyPerCall {
  private rows: Float32Array | null = null;
  private f16: Uint16Array | null = null;
  private i8: Int8Array | null = null;
  private scales: Float32Array | null = null;
  private readonly decoded: Float32Array;

  constructor(private readonly kernels: WasmKernels, readonly storage: VectorStorage, readonly n: number, gallery: Float32Array) {
    const d = DIM;
    if (storage === 'f32') this.rows = gallery.slice();
    else if (storage === 'f16') this.f16 = Uint16Array.from(gallery, toHalf);
    else {
      this.i8 = new Int8Array(n * d);
      this.scales = new Float32Array(n);
      for (let r = 0; r < n; r++) {
        let max = 0;
        for (let i = 0; i < d; i++) max = Math.max(max, Math.abs(gallery[r * d + i]!));
        const scale = max > 0 ? max / 127 : 1;
        for (let i = 0; i < d; i++) this.i8[r * d + i] = Math.round(gallery[r * d + i]! / scale);
        this.scales[r] = scale;
      }
    }
    this.decoded = new Float32Array(512 * d);
  }

  search(query: Float32Array, k: number): { rows: number[]; scores: number[] } {
    const d = DIM;
    const kOut = Math.min(k, this.n);
    let top;
    if (this.rows) {
      const part = scoreOnInstance(this.kernels, query, 1, this.rows, this.n, d, kOut, 0);
      if (part.badRow >= 0) throw badRowError(part.badRow);
      top = mergeTopK([part], 1, kOut, kOut);
    } else {
      const parts: PartialTopK[] = [];
      for (let r0 = 0; r0 < this.n; r0 += 512) {
        const rows = Math.min(512, this.n - r0);
        this.decode(r0, rows);
        const part = scoreOnInstance(this.kernels, query, 1, this.decoded.subarray(0, rows * d), rows, d, Math.min(kOut, rows), r0);
        if (rows < kOut) {
          const s = new Float32Array(kOut).fill(-Infinity);
          const ix = new Int32Array(kOut).fill(-1);
          s.set(part.scores);
          ix.set(part.indices);
          parts.push({ scores: s, indices: ix, badRow: -1 });
        } else parts.push(part);
      }
      top = mergeTopK(parts, 1, kOut, kOut);
    }
    return { rows: Array.from(top.indices), scores: Array.from(top.scores) };
  }

  private decode(r0: number, rows: number): void {
    const d = DIM;
    if (this.f16) {
      for (let i = 0, j = r0 * d, end = rows * d; i < end; i++, j++) this.decoded[i] = HALF[this.f16[j]!]!;
      return;
    }
    for (let r = 0; r < rows; r++) {
      const s = this.scales![r0 + r]!;
      for (let i = 0; i < d; i++) this.decoded[r * d + i] = this.i8![(r0 + r) * d + i]! * s;
    }
  }
}

const HALF = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? sign * m * 2 ** -24 : e === 0x1f ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

const module = loadWasmModule('simd');
console.log(`edge exact scan per query: dim ${DIM}, k ${K}, ${PROBES} probes x ${ROUNDS} rounds, medians of the rounds' means (µs), plain SIMD build, one thread`);
console.log('| faces | storage | before: copy per call | now: resident | now / before | bare resident scan (f32) | copy share of before | answers identical |');
console.log('|---|---|---|---|---|---|---|---|');
for (const n of a.sizes!.split(',').map(Number)) {
  const gallery = new Float32Array(n * DIM);
  for (let r = 0; r < n; r++) gallery.set(unit(Float32Array.from({ length: DIM }, gauss)), r * DIM);
  const probes = Array.from({ length: PROBES }, () => unit(Float32Array.from({ length: DIM }, gauss)));
  for (const storage of a.storages!.split(',') as VectorStorage[]) {
    // Separate instances, as in the store: the old path's kernels scratch, the index's own arena.
    const oldKernels = new WasmKernels(module);
    const old = new CopyPerCall(oldKernels, storage, n, gallery);
    const idxKernels = new WasmKernels(module);
    const idx = new ExactVectorIndex(idxKernels, { dimension: DIM, storage });
    for (let r = 0; r < n; r++) idx.add(r, gallery.subarray(r * DIM, (r + 1) * DIM));
    // The bare scan: the f32 rows resident in a third instance.
    const bareKernels = new WasmKernels(module);
    const gPtr = bareKernels.allocF32(gallery);
    const bareBase = bareKernels.mark();
    let identical = true;
    for (const p of probes) {
      const o = old.search(p, K);
      const m = idx.search(p, K);
      if (o.rows.join() !== m.ids.join() || o.scores.join() !== m.scores.join()) identical = false;
    }
    const before: number[] = [];
    const now: number[] = [];
    const bare: number[] = [];
    let sink = 0;
    for (let round = 0; round < ROUNDS; round++) {
      let t = performance.now();
      for (const p of probes) sink += old.search(p, K).scores[0]!;
      before.push(((performance.now() - t) * 1000) / PROBES);
      t = performance.now();
      for (const p of probes) sink += idx.search(p, K).scores[0]!;
      now.push(((performance.now() - t) * 1000) / PROBES);
      t = performance.now();
      for (const p of probes) {
        bareKernels.reset(bareBase);
        sink += scoreResident(bareKernels, p, 1, gPtr, n, DIM, Math.min(K, n)).scores[0]!;
      }
      bare.push(((performance.now() - t) * 1000) / PROBES);
    }
    if (!Number.isFinite(sink)) throw new Error('non-finite scores');
    const b = median(before), m = median(now), s = median(bare);
    console.log(`| ${n} | ${storage} | ${b.toFixed(1)} | ${m.toFixed(1)} | ${(m / b).toFixed(2)} | ${s.toFixed(1)} | ${storage === 'f32' ? `${(((b - s) / b) * 100).toFixed(0)}%` : 'n/a'} | ${identical ? 'yes' : 'NO'} |`);
  }
}
