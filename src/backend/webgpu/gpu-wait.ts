// Waiting for GPU results without taking the CPU from the driver.
//
// Dawn's Node binding (the `webgpu` package) keeps a setImmediate loop calling ProcessEvents for
// as long as any GPU promise (mapAsync, onSubmittedWorkDone, popErrorScope) is pending: the main
// thread spins at 100% until the work is done. On a CPU adapter (lavapipe) the shaders run on
// the same cores, so a 2-core machine lost about a third of its compute to that loop (perf: 40% of
// the process's samples in V8/N-API/malloc during a batch). A GpuWait learns how long one kind
// of a kind of submission takes, per size (an exponential moving average of submit-to-result
// time for each number of units, e.g. each batch size: time is not proportional to size) and
// sleeps through most of the expected time on a plain timer before asking Dawn for the result,
// so the loop only runs for the last stretch. A size not seen yet borrows the time of the largest
// smaller size seen (more work never takes less time), so the first guess is short, not long.
// The estimate falls at once to any shorter time measured (after an oversleep the measurement is
// the sleep, FRACTION of the estimate, so it converges from above within a few calls; a smoothed
// average would creep down by a few percent a call) and rises halfway to a longer one.
// COSFACE_GPU_WAIT=spin turns it off (to measure the difference).
//
// The loop that is left, from waking to the result, is throttled too (quietTicks): Dawn's binding
// looks up the global setImmediate for every tick, so while a GpuWait awaits Dawn's promises the
// global setImmediate is swapped for one that runs its callback on a 1 ms timer. Dawn then polls
// a thousand times a second instead of spinning, and the result arrives at most a millisecond late
// (only for work long enough to sleep through, MIN_SLEEP_MS; shorter work is awaited as before).
// Measured on lavapipe (2 cores, batch 16, alternating, 2026-12-06): 50.9 / 53.7 / 66.5 faces/s
// spinning against 67.1 / 69.8 / 75.0 throttled. Other code that calls setImmediate during a wait
// gets the same millisecond's delay; the original is back as soon as no GpuWait is waiting.
const FRACTION = 0.8; // of the expected time spent asleep
// No sleep below this: a timer wakes a millisecond or two late, and when that lateness is more than
// the (1 - FRACTION) margin of a short batch the estimate would settle above the real time (a GPU
// batch of a few ms would get slower). From 20 ms up the margin is 4 ms or more.
const MIN_SLEEP_MS = 20;
const RISE = 0.5;

const MAX_SIZES = 64;

type Immediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;
const host = globalThis as { setImmediate?: Immediate; setTimeout: (callback: (...args: unknown[]) => void, ms: number, ...args: unknown[]) => unknown };
let quietDepth = 0;
let realImmediate: Immediate | undefined;

/**
 * Runs `wait` with the global setImmediate deferred by a 1 ms timer (see the header), so a poller
 * that re-arms itself with setImmediate (Dawn's) ticks once a millisecond instead of spinning.
 * Nested and concurrent waits share one swap; the original returns when the last one ends.
 * Where there is no setImmediate (browsers) it just awaits.
 */
export async function quietTicks<T>(wait: () => Promise<T>): Promise<T> {
  if (typeof host.setImmediate !== 'function') return wait();
  if (quietDepth++ === 0) {
    realImmediate = host.setImmediate;
    host.setImmediate = (callback, ...args) => host.setTimeout(callback, 1, ...args);
  }
  try {
    return await wait();
  } finally {
    if (--quietDepth === 0) {
      host.setImmediate = realImmediate;
      realImmediate = undefined;
    }
  }
}

function spinRequested(): boolean {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.COSFACE_GPU_WAIT === 'spin';
}

export class GpuWait {
  private readonly ms = new Map<number, number>();

  /**
   * quiet: throttle Dawn's polling while awaiting long work (quietTicks). Only for software
   * adapters (lavapipe, SwiftShader), where the spinning poller takes a core from the "GPU" itself;
   * on a real GPU it would only delay the process's other setImmediate callbacks.
   */
  constructor(private readonly quiet = false) {}

  /** Sleeps through most of the time `units` of work are expected to take (nothing until measured). */
  async before(units: number): Promise<void> {
    if (spinRequested()) return;
    const ms = this.expected(units) * FRACTION;
    if (ms >= MIN_SLEEP_MS) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /**
   * The whole wait for one submission made at `submittedAt` (performance.now()): sleeps, then
   * awaits `result` (the Dawn promises: error scopes, mapAsync) with Dawn's ticks throttled
   * (quietTicks) when the work is long enough to sleep through, and learns the time taken.
   */
  async settle<T>(units: number, submittedAt: number, result: () => Promise<T>): Promise<T> {
    // Work expected to be short (the same threshold as the sleep, or not measured yet) is
    // awaited unthrottled: there the millisecond of polling granularity would be a large share.
    const quiet = this.quiet && !spinRequested() && this.expected(units) * FRACTION >= MIN_SLEEP_MS;
    await this.before(units);
    const out = quiet ? await quietTicks(result) : await result();
    this.record(units, performance.now() - submittedAt);
    return out;
  }

  /** Records that `units` of work took `ms` from submission to result. */
  record(units: number, ms: number): void {
    if (!(units > 0) || !(ms >= 0) || !Number.isFinite(ms)) return;
    const old = this.ms.get(units);
    if (old === undefined && this.ms.size >= MAX_SIZES) this.ms.delete(this.ms.keys().next().value!);
    this.ms.set(units, old === undefined || ms < old ? ms : old + RISE * (ms - old));
  }

  private expected(units: number): number {
    const exact = this.ms.get(units);
    if (exact !== undefined) return exact;
    let best = 0;
    let bestUnits = 0;
    for (const [u, ms] of this.ms) if (u < units && u > bestUnits) [bestUnits, best] = [u, ms];
    return best;
  }
}
