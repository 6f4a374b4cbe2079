// The WebAssembly backend over any set of workers (Node worker threads, browser Web Workers):
// graphs planned once on the calling thread, then laid out in the linear memory of every worker.
// Samples go to the workers through one queue per backend, in pieces that shrink as the queue
// drains (guided self-scheduling): a worker takes the next piece when it finishes one, so a worker
// slowed by other processes on its core takes fewer samples instead of holding up the whole batch,
// and concurrent calls (a server's requests) share all workers. A lone sample runs split over all
// workers layer by layer where they share a memory (Node; browsers keep one worker per sample).
import { CosfaceError } from '../../errors.js';
import type { Graph } from '../../graph/ir.js';
import { numel } from '../../graph/ir.js';
import type { Backend, CompiledGraph } from '../backend.js';
import { planGraph } from './wasm-plan.js';
import type { WasmWorkers } from './wasm-protocol.js';
import { warpOnPool } from './wasm-warp.js';

export interface WasmBackendCore extends Backend {
  readonly name: 'wasm';
  readonly workers: number;
}

let nextGraphId = 1;

/** One call's samples waiting for workers: [next, end) not yet handed out. */
interface Job {
  graphId: number;
  input: Float32Array;
  inSize: number;
  outSize: number;
  next: number;
  end: number;
  out: Float32Array;
  /** Pieces handed out and not yet answered. */
  running: number;
  failed: boolean;
  resolve: (out: Float32Array) => void;
  reject: (e: unknown) => void;
}

/**
 * Hands the samples of queued calls to the workers. A piece is ceil(remaining / (2 x workers))
 * samples of the oldest call: large first (few messages), single samples at the end, so the
 * workers finish within about one sample of each other whatever their speed. An idle worker gets
 * a piece at once; a busy one gets a second piece queued behind its current one (so it does not
 * sit idle for the round trip of a message) while the pieces are still larger than one sample.
 * Where the workers share a memory (WasmWorkers.canSplit), a single sample left while every worker
 * is free (a batch of one, or the last sample of a batch) runs on all of them at once, each taking
 * its share of every layer's output rows, with a barrier between layers (1-2 us; measured on 2
 * cores: 8.2 ms a face against 15.1 on one worker). That pays only while every worker has a core:
 * where other processes take them, a barrier waits for a descheduled worker at each of ~50 layers
 * (measured under load: 15-65 ms a face against 10 on one worker). So the scheduler times both
 * ways for each graph (LoneSampleChoice) and runs a lone sample the way that has been faster,
 * trying the other way now and then so that the choice follows the machine's load.
 */
/**
 * Per graph: recent times of a lone sample run split over all workers and run on one worker
 * (exponentially weighted), and which way to run the next one. The first run each way is a
 * warm-up (compilation, first touch of the memory: several times the steady time) and is not
 * counted; until both ways have a time the way without one runs; then the faster way, except
 * every EXPLORE_EVERY-th sample, which runs the other way and replaces its time.
 */
export class LoneSampleChoice {
  static readonly EXPLORE_EVERY = 16;
  private static readonly WEIGHT = 0.5;
  private split: number | undefined;
  private solo: number | undefined;
  private splitWarm = false;
  private soloWarm = false;
  private lone = 0;

  /** Whether the next lone sample should run split. */
  next(): boolean {
    const n = this.lone++;
    if (this.split === undefined) return true;
    if (this.solo === undefined) return false;
    const faster = this.split < this.solo;
    return n % LoneSampleChoice.EXPLORE_EVERY === 0 ? !faster : faster;
  }

  record(split: boolean, ms: number): void {
    if (split ? !this.splitWarm : !this.soloWarm) {
      if (split) this.splitWarm = true;
      else this.soloWarm = true;
      return;
    }
    const old = split ? this.split : this.solo;
    const other = split ? this.solo : this.split;
    // The slower way is only run to explore: its new time replaces the old one (which may date
    // from a moment when other threads held the cores), so a change of load flips the choice at once.
    const slower = old !== undefined && other !== undefined && old >= other;
    const est = old === undefined || slower ? ms : old + LoneSampleChoice.WEIGHT * (ms - old);
    if (split) this.split = est;
    else this.solo = est;
  }
}

export class SampleScheduler {
  /** Pieces sent to each worker and not yet answered (0, 1 or 2). */
  private readonly inFlight: number[];
  private readonly queue: Job[] = [];
  private readonly lone = new Map<number, LoneSampleChoice>();

  private choice(graphId: number): LoneSampleChoice {
    let c = this.lone.get(graphId);
    if (!c) this.lone.set(graphId, (c = new LoneSampleChoice()));
    return c;
  }

  constructor(private readonly pool: WasmWorkers) {
    this.inFlight = new Array<number>(pool.size).fill(0);
  }

  /** Runs n samples of a compiled graph over the workers; resolves with n * outSize floats in order. */
  run(graphId: number, input: Float32Array, n: number, inSize: number, outSize: number): Promise<Float32Array> {
    return new Promise<Float32Array>((resolve, reject) => {
      this.queue.push({ graphId, input, inSize, outSize, next: 0, end: n, out: new Float32Array(n * outSize), running: 0, failed: false, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    const workers = this.inFlight.length;
    // A single sample left and every worker free: all of them run it together, layer by layer.
    const head = this.queue[0];
    if (head && this.pool.canSplit && head.end - head.next === 1 && this.inFlight.every((c) => c === 0)) {
      if (this.choice(head.graphId).next()) {
        this.sendSplit(head);
        return;
      }
      this.send(0, head, 1, true);
      return;
    }
    for (let depth = 0; depth < 2; depth++) {
      for (let w = 0; w < workers && this.queue.length > 0; w++) {
        if (this.inFlight[w]! !== depth) continue;
        const job = this.queue[0]!;
        const left = job.end - job.next;
        const count = Math.max(1, Math.ceil(left / (2 * workers)));
        // Queue behind a running piece only while pieces are large: the last single samples go
        // to whichever worker is free first.
        if (depth > 0 && count === 1) return;
        this.send(w, job, count);
      }
    }
  }

  private take(job: Job, count: number): { start: number; slice: Float32Array } {
    const start = job.next;
    job.next += count;
    if (job.next >= job.end) this.queue.shift();
    return { start, slice: job.input.slice(start * job.inSize, (start + count) * job.inSize) };
  }

  /** lone: a single sample with every worker free, timed for LoneSampleChoice. */
  private send(w: number, job: Job, count: number, lone = false): void {
    const { start, slice } = this.take(job, count);
    const t0 = performance.now();
    const answer = this.pool.request<Float32Array>(w, { type: 'run', graphId: job.graphId, input: slice, n: count }, [slice.buffer as ArrayBuffer]);
    if (lone) void answer.then(() => this.choice(job.graphId).record(false, performance.now() - t0), () => undefined);
    this.track(w, job, start, answer);
  }

  private sendSplit(job: Job): void {
    const { start, slice } = this.take(job, 1);
    const t0 = performance.now();
    const answers: Promise<unknown>[] = [];
    for (let w = 0; w < this.inFlight.length; w++) {
      const body = { type: 'runSplit' as const, graphId: job.graphId, input: w === 0 ? slice : null };
      const answer = this.pool.request<Float32Array | null>(w, body, w === 0 ? [slice.buffer as ArrayBuffer] : []);
      answers.push(answer);
      this.track(w, job, start, answer);
    }
    void Promise.all(answers).then(() => this.choice(job.graphId).record(true, performance.now() - t0), () => undefined);
  }

  /** Counts a request against worker w and the job, and places its rows (if any) when it answers. */
  private track(w: number, job: Job, start: number, answer: Promise<Float32Array | null>): void {
    job.running++;
    this.inFlight[w]!++;
    answer
      .then(
        (part) => {
          if (part && !job.failed) job.out.set(part, start * job.outSize);
        },
        (e: unknown) => {
          if (!job.failed) {
            job.failed = true;
            // The rest of this call is not worth running.
            const i = this.queue.indexOf(job);
            if (i >= 0) this.queue.splice(i, 1);
            job.reject(e);
          }
        },
      )
      .finally(() => {
        this.inFlight[w]!--;
        job.running--;
        if (!job.failed && job.running === 0 && job.next >= job.end) job.resolve(job.out);
        this.pump();
      });
  }
}

class WasmCompiledGraph implements CompiledGraph {
  private disposed = false;
  private readonly inSize: number;
  private readonly outSize: number;

  constructor(readonly graph: Graph, private readonly pool: WasmWorkers, private readonly scheduler: SampleScheduler, private readonly graphId: number) {
    this.inSize = numel(graph.input.shape);
    this.outSize = numel(graph.output.shape);
  }

  async run(input: Float32Array, n: number): Promise<Float32Array> {
    if (this.disposed) throw new CosfaceError('WASM_ERROR', 'this compiled graph has been disposed');
    if (!Number.isInteger(n) || n < 1) throw new CosfaceError('EMPTY_BATCH', `batch size must be an integer >= 1, got ${n}`);
    if (input.length !== n * this.inSize) {
      throw new CosfaceError('BAD_INPUT', `input holds ${input.length} floats, expected ${n} x ${this.inSize}`);
    }
    return this.scheduler.run(this.graphId, input, n, this.inSize, this.outSize);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // Fire and forget: a pool that is already closed has nothing left to free.
    this.pool.broadcast({ type: 'release', graphId: this.graphId }).catch(() => undefined);
  }
}

/** The backend on started workers; dispose() closes them. */
export function wasmBackendOnWorkers(pool: WasmWorkers): WasmBackendCore {
  const workers = pool.size;
  const simd = pool.simd === 'relaxed' ? 'relaxed SIMD' : 'SIMD';
  const scheduler = new SampleScheduler(pool);
  return {
    name: 'wasm',
    workers,
    describe: () => `wasm (${simd}, ${workers} worker${workers === 1 ? '' : 's'}${pool.canSplit ? ', one face split over them' : ''})`,
    async compile(graph: Graph): Promise<CompiledGraph> {
      const plan = planGraph(graph);
      const graphId = nextGraphId++;
      await pool.broadcast({ type: 'compile', graphId, plan });
      return new WasmCompiledGraph(graph, pool, scheduler, graphId);
    },
    warp: (img, transforms, outW, outH, warpOpts) => warpOnPool(pool, img, transforms, outW, outH, warpOpts),
    dispose: () => pool.close(),
  };
}
