// Waiting for GPU results without taking the CPU from the driver.
//
// Dawn's Node binding (the `webgpu` package) keeps a setImmediate loop calling ProcessEvents for
// as long as any GPU promise (mapAsync, onSubmittedWorkDone, popErrorScope) is pending: the main
// thread spins at 100% until the work is done. On a CPU adapter (lavapipe) the shaders run on
// the same cores, so a 2-core machine lost about a third of its compute to that loop (perf: 40% of
// the process's samples in V8/N-API/malloc during a batch). A GpuWait learns how long one unit
// of a kind of submission takes (an exponential moving average of submit-to-result time) and
// sleeps through most of the expected time on a plain timer before asking Dawn for the result,
// so the loop only runs for the last stretch. It converges: if it oversleeps, the measured time
// is the sleep and the estimate shrinks toward the real one. COSFACE_GPU_WAIT=spin turns it off
// (to measure the difference).
const FRACTION = 0.85; // of the expected time spent asleep
const MIN_SLEEP_MS = 2; // below this, timer granularity makes sleeping pointless
const SMOOTHING = 0.3;

export class GpuWait {
  private msPerUnit = 0;

  /** Sleeps through most of the time `units` of work are expected to take (nothing until measured). */
  async before(units: number): Promise<void> {
    if (process.env.COSFACE_GPU_WAIT === 'spin') return;
    const ms = this.msPerUnit * units * FRACTION;
    if (ms >= MIN_SLEEP_MS) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Records that `units` of work took `ms` from submission to result. */
  record(units: number, ms: number): void {
    if (!(units > 0) || !(ms >= 0)) return;
    const sample = ms / units;
    this.msPerUnit = this.msPerUnit === 0 ? sample : this.msPerUnit + SMOOTHING * (sample - this.msPerUnit);
  }
}
