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
// The estimate falls at once to any shorter time measured and rises halfway to a longer one. A call
// that overslept (the result was there as soon as the sleep ended) measured only its own sleep, an
// upper bound: the estimate is then forgotten, so the next call does not sleep and measures the real
// time (throttled, see settle). (Before, the estimate fell to the sleep, FRACTION of itself, per call:
// after a first batch that included the driver's shader compile, seconds on lavapipe, the following
// ~20 batches slept through most of those seconds: 0.2 faces/s measured at batch 1, 2026-12-06.)
// COSFACE_GPU_WAIT=spin turns it off (to measure the difference).
//
// The loop that is left, from waking to the result, is throttled too (quietTicks): Dawn's binding
// looks up the global setImmediate for every tick, so while a GpuWait awaits Dawn's promises the
// global setImmediate is swapped for one that runs its callback on a 1 ms timer. Dawn then polls
// a thousand times a second instead of spinning, and the result arrives at most a millisecond late
// (on software adapters only, for every wait: see settle).
// Measured on lavapipe (2 cores, batch 16, alternating, 2026-12-06): 50.9 / 53.7 / 66.5 faces/s
// spinning against 67.1 / 69.8 / 75.0 throttled. Other code that calls setImmediate during a wait
// gets the same millisecond's delay; the original is back as soon as no GpuWait is waiting.
const FRACTION = 0.8; // of the expected time spent asleep
// No sleep below this: a timer wakes a millisecond or two late, and when that lateness is more than
// the (1 - FRACTION) margin of a short batch the estimate would settle above the real time (a GPU
// batch of a few ms would get slower). From 20 ms up the margin is 4 ms or more.
const MIN_SLEEP_MS = 20;
const RISE = 0.5;
// A result that arrives sooner than this after the sleep was already there (the throttled poll ticks
// once a millisecond; an overslept batch on lavapipe was seen 1.3-1.8 ms after waking): see settle.
const OVERSLEPT_MS = 3;

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
   * quiet: throttle Dawn's polling while awaiting results (quietTicks). Only for software
   * adapters (lavapipe, SwiftShader), where the spinning poller takes a core from the "GPU" itself;
   * on a real GPU it would only delay the process's other setImmediate callbacks.
   */
  constructor(private readonly quiet = false) {}

  /** Sleeps through most of the time `units` of work are expected to take (nothing until measured); true when it slept. */
  async before(units: number): Promise<boolean> {
    if (spinRequested()) return false;
    const ms = this.expected(units) * FRACTION;
    if (ms < MIN_SLEEP_MS) return false;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return true;
  }

  /**
   * The whole wait for one submission made at `submittedAt` (performance.now()): sleeps, then
   * awaits `result` (the Dawn promises: error scopes, mapAsync) with Dawn's ticks throttled
   * (quietTicks) on software adapters, and learns the time taken.
   */
  async settle<T>(units: number, submittedAt: number, result: () => Promise<T>): Promise<T> {
    // On a software adapter every wait is throttled, short work too: Dawn's spinning poller takes one
    // of the cores the shaders run on, which made a 16-20 ms batch of 1 on lavapipe take 30-76 ms
    // (2026-12-06), against which a millisecond of polling granularity is small; and a time learned
    // while spinning is too long, so the sleeps after it overshoot.
    const expected = this.expected(units);
    const quiet = this.quiet && !spinRequested();
    const slept = await this.before(units);
    const woke = performance.now();
    const out = quiet ? await quietTicks(result) : await result();
    const done = performance.now();
    // Overslept: the result was ready on waking (within a quarter of the margin the sleep meant to
    // leave, and at least OVERSLEPT_MS).
    if (slept && done - woke < Math.max(OVERSLEPT_MS, 0.25 * (1 - FRACTION) * expected)) this.ms.delete(units);
    else this.record(units, done - submittedAt);
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
