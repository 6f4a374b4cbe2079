// Where the time of a bulk run goes (decode, detect, landmarks, align, embed, database write, index
// add): code that runs a stage wraps it in `timed(timer, stage, fn)`, which costs one comparison
// when no timer is passed. A stage's time is the wall time during which at least one call of it
// was in progress, so calls that overlap (several photos decoding while another embeds) are not
// counted twice; with pipelining the stages overlap one another and their shares add up to more
// than 100%.

/** Receives the start and end of each stage call (StageTimes implements it). */
export interface StageTimer {
  begin(stage: string): void;
  end(stage: string): void;
}

/** Runs fn as one call of stage: untimed (one comparison) without a timer. */
export async function timed<T>(timer: StageTimer | undefined, stage: string, fn: () => Promise<T>): Promise<T> {
  if (!timer) return fn();
  timer.begin(stage);
  try {
    return await fn();
  } finally {
    timer.end(stage);
  }
}

/** The synchronous form of timed(). */
export function timedSync<T>(timer: StageTimer | undefined, stage: string, fn: () => T): T {
  if (!timer) return fn();
  timer.begin(stage);
  try {
    return fn();
  } finally {
    timer.end(stage);
  }
}

export interface StageShare {
  stage: string;
  /** Wall time with at least one call of the stage in progress, ms. */
  ms: number;
  /** ms over the run's wall time. */
  share: number;
  /** Calls of the stage. */
  calls: number;
}

interface Acc {
  active: number;
  since: number;
  ms: number;
  calls: number;
}

/** Accumulates stage times (union of each stage's call intervals) with performance.now(). */
export class StageTimes implements StageTimer {
  private readonly acc = new Map<string, Acc>();
  private readonly t0 = performance.now();

  begin(stage: string): void {
    let a = this.acc.get(stage);
    if (!a) this.acc.set(stage, (a = { active: 0, since: 0, ms: 0, calls: 0 }));
    if (a.active++ === 0) a.since = performance.now();
    a.calls++;
  }

  end(stage: string): void {
    const a = this.acc.get(stage);
    if (!a || a.active === 0) throw new Error(`StageTimes: end(${stage}) without begin`);
    if (--a.active === 0) a.ms += performance.now() - a.since;
  }

  /** Milliseconds since the timer was made. */
  elapsedMs(): number {
    return performance.now() - this.t0;
  }

  /** Each stage's time and share of wallMs (default: the time since the timer was made), in first-use order. */
  shares(wallMs = this.elapsedMs()): StageShare[] {
    return [...this.acc].map(([stage, a]) => ({ stage, ms: a.ms, share: wallMs > 0 ? a.ms / wallMs : 0, calls: a.calls }));
  }
}
