// `cosface bench score`: exact top-k over N unit vectors on the WASM and WebGPU scorers, in ms,
// GB/s (gallery bytes read per second) and GFLOP/s, each beside a plain memory-read loop over the
// same gallery in the same runtime (the bandwidth a scan cannot beat) and the ratio between them.
import { cpus, loadavg } from 'node:os';
import { SPLIT_MIN_MACS, WasmGallery, WasmScorer, type WasmPoolGallery } from '../backend/wasm/wasm-score.js';
import { wasmExactRows } from '../store/default-scorer.js';
import { arrayRows } from '../store/exact-scorer.js';
import { VectorMatrix } from '../store/vector-matrix.js';
import { defaultWorkerCount } from '../backend/wasm/wasm-pool.js';
import { loadWasmBuild } from '../backend/wasm/wasm-kernels.js';
import { createWebGpuScorer, type WebGpuScorer } from '../backend/webgpu/webgpu-score.js';
import { CosfaceError } from '../errors.js';

export type ScoreBenchBackend = 'wasm' | 'webgpu';

export interface ScoreBenchOptions {
  sizes?: number[];
  dims?: number[];
  queries?: number[];
  k?: number;
  /** Timed runs per cell; the median is reported (default 5). */
  runs?: number;
  backends?: ScoreBenchBackend[];
  /** Galleries above this many bytes are skipped (default 2.5 GiB), with a note. */
  maxGalleryBytes?: number;
  /** Worker threads of the 'pool' rows (default os.availableParallelism()). */
  workers?: number;
  /** Also time a store's exact scan ('store' and 'store-array' rows, Q = 1 only; default true). */
  store?: boolean;
  /** Progress lines (default: none). */
  progress?: (line: string) => void;
}

/** One memory-read loop over a gallery: its median time and bandwidth. */
export interface ReadLoop {
  name: string;
  ms: number;
  gbPerS: number;
}

export interface ScoreBenchRow {
  backend: ScoreBenchBackend;
  n: number;
  dim: number;
  q: number;
  k: number;
  /**
   * Where the gallery lives: 'array' = a plain Float32Array, copied chunk by chunk into linear
   * memory on every call (score()); 'resident' = copied once into linear memory (WasmGallery) or,
   * for WebGPU, into GPU buffers; 'pool' = copied once into a shared memory that every worker of
   * the pool scans in place (WasmPoolGallery: rows split over the workers, top-k merged).
   * 'store' = a SQLite store's exact scan (VectorMatrix.search, what `identify --exact` runs) over
   * its default rows (a WasmPoolGallery on the WASM score() pool); 'store-array' = the same over
   * rows in a plain SharedArrayBuffer scored by score() per call, as the store did before.
   */
  gallery: 'array' | 'resident' | 'pool' | 'store' | 'store-array';
  /** Threads that scanned: 1 on the calling thread; the pool's workers for 'pool' (1 for jobs too small to split). */
  threads: number;
  /** Median wall time of one score call (WebGPU: gallery resident, includes submit and readback). */
  ms: number;
  runsMs: number[];
  /** Gallery bytes (n * dim * 4) per second. */
  gbPerS: number;
  /** 2 * q * n * dim floating-point operations per second. */
  gflops: number;
  /**
   * The fastest read loop of the same runtime over the same gallery (on one thread or on all the
   * pool's workers, whichever reads faster): the bandwidth limit.
   */
  limit: ReadLoop;
  /** gbPerS / limit.gbPerS. */
  ratio: number;
}

export interface ScoreBenchResult {
  rows: ScoreBenchRow[];
  /** Read loops per (backend, n, dim). */
  readLoops: { backend: ScoreBenchBackend; n: number; dim: number; loops: ReadLoop[] }[];
  env: { node: string; cpu: string; cores: number; loadavg: number[]; loadavgAfter: number[]; wasm: string; workers: number; adapter: string | null };
  k: number;
  runs: number;
  skipped: string[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** n unit vectors of dim floats from a fast seeded generator (uniform directions are not needed for timing). */
export function unitVectors(n: number, dim: number, seed: number): Float32Array {
  const out = new Float32Array(n * dim);
  let s = seed >>> 0 || 1;
  for (let r = 0; r < n; r++) {
    let norm = 0;
    const o = r * dim;
    for (let d = 0; d < dim; d++) {
      // xorshift32
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const v = (s >>> 0) / 4294967296 - 0.5;
      out[o + d] = v;
      norm += v * v;
    }
    const inv = 1 / Math.sqrt(norm);
    for (let d = 0; d < dim; d++) out[o + d]! *= inv;
  }
  return out;
}

/** A JS loop summing the gallery, four accumulators to keep the add latency off the critical path. */
function jsReadSum(a: Float32Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const n4 = a.length & ~3;
  for (let i = 0; i < n4; i += 4) {
    s0 += a[i]!;
    s1 += a[i + 1]!;
    s2 += a[i + 2]!;
    s3 += a[i + 3]!;
  }
  for (let i = n4; i < a.length; i++) s0 += a[i]!;
  return s0 + s1 + s2 + s3;
}

async function timeRuns(runs: number, fn: () => Promise<unknown> | unknown): Promise<number[]> {
  await fn(); // warm-up: JIT, pipeline creation, first-touch of pages
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
  }
  return ms;
}

/**
 * runs rounds of each function in turn, each timed run right after an untimed one of the same
 * function (so every timing finds the workers awake and the same data as warm as it can be, as
 * consecutive runs of one cell would); returns each one's times.
 */
async function timeRoundRobin(runs: number, fns: (() => Promise<unknown> | unknown)[]): Promise<number[][]> {
  const ms = fns.map(() => [] as number[]);
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < fns.length; i++) {
      await fns[i]!();
      const t = performance.now();
      await fns[i]!();
      ms[i]!.push(performance.now() - t);
    }
  }
  return ms;
}

/** Linear memory the WASM read loop can take: one 2 GiB buffer at most (32-bit memory, with room). */
const WASM_READ_MAX_BYTES = 2 ** 31;

export async function benchScore(opts: ScoreBenchOptions = {}): Promise<ScoreBenchResult> {
  const sizes = opts.sizes ?? [100_000, 1_000_000];
  const dims = opts.dims ?? [128, 512];
  const queryCounts = opts.queries ?? [1, 64];
  const k = opts.k ?? 10;
  const runs = opts.runs ?? 5;
  const backends = opts.backends ?? ['wasm', 'webgpu'];
  const maxBytes = opts.maxGalleryBytes ?? 2.5 * 2 ** 30;
  const progress = opts.progress ?? (() => undefined);
  const loadBefore = loadavg();
  const skipped: string[] = [];
  const rows: ScoreBenchRow[] = [];
  const readLoops: ScoreBenchResult['readLoops'] = [];

  let wasm: WasmScorer | null = null;
  let wasmName = 'not run';
  let gpu: WebGpuScorer | null = null;
  const workers = opts.workers ?? defaultWorkerCount();
  if (backends.includes('wasm')) {
    // The calling thread scores plain (non-shared) galleries and WasmGallery; the pool's workers
    // scan the 'pool' rows. The read loops run both ways, so each ratio is like for like.
    wasm = await WasmScorer.create({ workers });
    wasmName = `${loadWasmBuild().simd === 'relaxed' ? 'relaxed SIMD' : 'SIMD'}, calling thread and ${workers} worker${workers === 1 ? '' : 's'}`;
  }
  if (backends.includes('webgpu')) {
    try {
      gpu = await createWebGpuScorer();
    } catch (e) {
      if (!(e instanceof CosfaceError && e.code === 'NO_ADAPTER')) throw e;
      skipped.push(`webgpu: ${e.message}`);
    }
  }
  try {
    for (const dim of dims) {
      for (const n of sizes) {
        const bytes = n * dim * 4;
        if (bytes > maxBytes) {
          skipped.push(`N=${n} dim=${dim}: ${(bytes / 2 ** 30).toFixed(1)} GiB gallery above the ${(maxBytes / 2 ** 30).toFixed(1)} GiB limit`);
          continue;
        }
        progress(`score bench: generating ${n} x ${dim} unit vectors`);
        let gallery: Float32Array | null = unitVectors(n, dim, n ^ dim);
        const allQueries = unitVectors(Math.max(...queryCounts), dim, 12345);

        if (wasm) {
          // Every read loop and every cell of this gallery is timed round-robin (one run of each
          // in turn, runs times), so each ratio compares runs taken under the same load.
          const timed: { name: string; fn: () => Promise<unknown> | unknown }[] = [{ name: 'JS loop', fn: () => jsReadSum(gallery!) }];
          let resident: WasmGallery | null = null;
          let pooled: WasmPoolGallery | null = null;
          if (bytes <= WASM_READ_MAX_BYTES) {
            try {
              // The same values copied once into linear memory, read there by sumFloats: the
              // bytes the resident scan reads, in the same memory.
              resident = WasmGallery.create(gallery, n, dim);
              timed.push({ name: 'WASM loop', fn: () => resident!.sumAll() });
            } catch (e) {
              skipped.push(`WASM read loop at N=${n} dim=${dim}: ${(e as Error).message}`);
            }
          } else {
            skipped.push(`WASM read loop at N=${n} dim=${dim}: the gallery does not fit one linear memory`);
          }
          if (resident) {
            try {
              pooled = wasm.upload(gallery, n, dim);
              timed.push({ name: `WASM loop, ${workers} worker${workers === 1 ? '' : 's'}`, fn: () => pooled!.sumAll() });
            } catch (e) {
              skipped.push(`WASM pool gallery at N=${n} dim=${dim}: ${(e as Error).message}`);
            }
          }
          const loopCount = timed.length;
          const matrices: VectorMatrix[] = [];
          if (opts.store !== false && queryCounts.includes(1)) {
            // Faces with ids 1..n in the store's matrix: over its default rows, and over a plain array
            // that score() reads per call (the store's exact scan before its rows went resident).
            const scorer = wasm;
            for (const factory of [await wasmExactRows(), arrayRows((qs, q, g, rows, d, kk) => scorer.score(qs, q, g, rows, d, kk))]) {
              const m = await VectorMatrix.create(factory, dim, n);
              for (let r0 = 0; r0 < n; r0 += 10_000) {
                const faces = [];
                for (let r = r0; r < Math.min(n, r0 + 10_000); r++) faces.push({ id: r + 1, v: gallery.subarray(r * dim, (r + 1) * dim) });
                await m.add(faces);
              }
              matrices.push(m);
            }
          }
          const cells: { gallery: ScoreBenchRow['gallery']; threads: number; q: number }[] = [];
          for (const q of queryCounts) {
            const queries = allQueries.subarray(0, q * dim);
            cells.push({ gallery: 'array', threads: 1, q });
            timed.push({ name: `array Q=${q}`, fn: () => wasm!.score(queries, q, gallery!, n, dim, k) });
            if (resident) {
              cells.push({ gallery: 'resident', threads: 1, q });
              timed.push({ name: `resident Q=${q}`, fn: () => resident!.score(queries, q, k) });
            }
            if (pooled) {
              cells.push({ gallery: 'pool', threads: pooled.threadsFor(q), q });
              timed.push({ name: `pool Q=${q}`, fn: () => pooled!.score(queries, q, k) });
            }
            if (q === 1 && matrices.length === 2) {
              const split = n * dim >= SPLIT_MIN_MACS ? defaultWorkerCount() : 1;
              cells.push({ gallery: 'store', threads: split, q });
              timed.push({ name: 'store Q=1', fn: () => matrices[0]!.search(queries, k) });
              cells.push({ gallery: 'store-array', threads: split, q });
              timed.push({ name: 'store-array Q=1', fn: () => matrices[1]!.search(queries, k) });
            }
          }
          progress(`score bench: wasm N=${n} dim=${dim}: ${timed.length} timings round-robin, ${runs} runs`);
          const times = await timeRoundRobin(runs, timed.map((t) => t.fn));
          const loops: ReadLoop[] = timed.slice(0, loopCount).map((t, i) => {
            const ms = median(times[i]!);
            return { name: t.name, ms, gbPerS: bytes / ms / 1e6 };
          });
          readLoops.push({ backend: 'wasm', n, dim, loops });
          const limit = loops.reduce((a, b) => (b.gbPerS > a.gbPerS ? b : a));
          cells.forEach((c, i) => rows.push(makeRow('wasm', c.gallery, c.threads, n, dim, c.q, k, times[loopCount + i]!, limit)));
          for (const m of matrices) await m.dispose();
          resident?.dispose();
          resident = null;
          await pooled?.dispose();
          pooled = null;
        }

        if (gpu) {
          progress(`score bench: webgpu upload N=${n} dim=${dim}`);
          const resident = await gpu.upload(gallery, n, dim);
          // The GPU holds its copy now: let the JS one go before the next, larger gallery.
          gallery = null;
          try {
            const gMs = median(await timeRuns(runs, () => resident.sumAll()));
            const limit: ReadLoop = { name: 'WGSL read pass', ms: gMs, gbPerS: bytes / gMs / 1e6 };
            readLoops.push({ backend: 'webgpu', n, dim, loops: [limit] });
            for (const q of queryCounts) {
              progress(`score bench: webgpu N=${n} dim=${dim} Q=${q}`);
              const queries = allQueries.subarray(0, q * dim);
              const runsMs = await timeRuns(runs, () => resident.score(queries, q, k));
              rows.push(makeRow('webgpu', 'resident', 1, n, dim, q, k, runsMs, limit));
            }
          } finally {
            resident.dispose();
          }
        }
      }
    }
  } finally {
    await wasm?.dispose();
    gpu?.dispose();
  }
  return {
    rows,
    readLoops,
    env: {
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      loadavg: loadBefore,
      loadavgAfter: loadavg(),
      wasm: wasmName,
      workers,
      adapter: gpu?.adapter ?? null,
    },
    k,
    runs,
    skipped,
  };
}

function makeRow(backend: ScoreBenchBackend, where: ScoreBenchRow['gallery'], threads: number, n: number, dim: number, q: number, k: number, runsMs: number[], limit: ReadLoop): ScoreBenchRow {
  const ms = median(runsMs);
  const gbPerS = (n * dim * 4) / ms / 1e6;
  return { backend, gallery: where, threads, n, dim, q, k, ms, runsMs, gbPerS, gflops: (2 * q * n * dim) / ms / 1e6, limit, ratio: gbPerS / limit.gbPerS };
}

export function formatScoreBench(r: ScoreBenchResult): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  const lines: string[] = [];
  lines.push(`### Exact top-${r.k} scoring: ${r.env.cpu} (${r.env.cores} cores), Node ${r.env.node}`);
  lines.push('');
  lines.push(
    `WASM: ${r.env.wasm}; WebGPU: ${r.env.adapter ?? 'not run'}. Median of ${r.runs} runs after one warm-up (WASM: the read loops and ` +
      `cells of one gallery timed round-robin, one run of each in turn, each right after an untimed run of the same, so that they share ` +
      `the load and each finds its workers awake). GB/s = gallery bytes ` +
      `(N x dim x 4) per second; read limit = the fastest plain read loop over the same gallery in the same runtime ` +
      `(WASM rows: a JS loop over the Float32Array, a WASM SIMD loop over the resident copy in linear memory, and the same loop split ` +
      `over the pool's workers; WebGPU rows: a WGSL pass summing the resident buffers). Gallery 'array': score() on a plain ` +
      `Float32Array, which copies it into linear memory chunk by chunk on every call; 'resident': WasmGallery (copied once, scanned ` +
      `in place on the calling thread) or the GPU buffers; 'pool': WasmPoolGallery (copied once into a shared memory, rows split ` +
      `over the workers); 'store': a SQLite store's exact scan (what identify --exact runs) over its resident rows, 'store-array' ` +
      `the same over a plain array scored per call (the store before). Per-query gain = (ms of Q = 1 x Q) / ms of this Q, same gallery kind. ` +
      `WebGPU times include submit and readback. ` +
      `Load average (1/5/15 min) before: ${r.env.loadavg.map((x) => f(x)).join(' / ')}, after: ${r.env.loadavgAfter.map((x) => f(x)).join(' / ')}.`,
  );
  lines.push('');
  lines.push('| backend | gallery | threads | N | dim | Q | ms | GB/s | GFLOP/s | read limit GB/s | of limit | per-query gain |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of r.rows) {
    const one = r.rows.find((o) => o.backend === row.backend && o.gallery === row.gallery && o.n === row.n && o.dim === row.dim && o.q === 1);
    const gain = row.q > 1 && one ? `${f((one.ms * row.q) / row.ms, 1)}x` : '';
    lines.push(
      `| ${row.backend} | ${row.gallery} | ${row.threads} | ${row.n.toLocaleString('en-US')} | ${row.dim} | ${row.q} | ${f(row.ms)} | ${f(row.gbPerS, 1)} | ${f(row.gflops, 1)} | ` +
        `${f(row.limit.gbPerS, 1)} (${row.limit.name}) | ${row.q === 1 ? `${f(row.ratio * 100, 0)}%` : ''} | ${gain} |`,
    );
  }
  lines.push('');
  lines.push('| read loop | N | dim | ms | GB/s |');
  lines.push('|---|---|---|---|---|');
  for (const rl of r.readLoops) {
    for (const l of rl.loops) lines.push(`| ${rl.backend}: ${l.name} | ${rl.n.toLocaleString('en-US')} | ${rl.dim} | ${f(l.ms)} | ${f(l.gbPerS, 1)} |`);
  }
  for (const s of r.skipped) lines.push(`\nSkipped: ${s}`);
  return lines.join('\n');
}

export interface BenchScoreCommandOptions {
  json: boolean;
  sizes?: number[];
  dims?: number[];
  queries?: number[];
  k?: number;
  runs?: number;
  backends?: ScoreBenchBackend[];
  /** Where the report goes (default stdout); progress goes to stderr. */
  write?: (text: string) => void;
}

/** `cosface bench score`: runs benchScore and prints a markdown table (or JSON). */
export async function benchScoreCommand(opts: BenchScoreCommandOptions): Promise<ScoreBenchResult> {
  const write = opts.write ?? ((t: string) => process.stdout.write(t));
  for (const [name, list] of [['sizes', opts.sizes], ['dims', opts.dims], ['queries', opts.queries]] as const) {
    if (list && (list.length === 0 || list.some((v) => !Number.isInteger(v) || v < 1))) {
      throw new CosfaceError('BAD_INPUT', `bench score: ${name} must be positive integers, got ${JSON.stringify(list)}`);
    }
  }
  if (opts.backends) {
    const bad = opts.backends.filter((b) => b !== 'wasm' && b !== 'webgpu');
    if (bad.length) throw new CosfaceError('UNKNOWN_BACKEND', `bench score: unknown backend ${bad.join(', ')} (valid: wasm, webgpu)`);
  }
  const result = await benchScore({
    sizes: opts.sizes,
    dims: opts.dims,
    queries: opts.queries,
    k: opts.k,
    runs: opts.runs,
    backends: opts.backends,
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  write(opts.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatScoreBench(result)}\n`);
  return result;
}
