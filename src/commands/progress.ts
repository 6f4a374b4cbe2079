// Progress of a long command on stderr. On a terminal: one bar redrawn in place (\r) with counts,
// rate and ETA, at most ten times a second. Elsewhere (a pipe, a log file): one complete line with
// a newline every few seconds and at the end, so logs stay readable. Quiet: nothing.

/** Where progress goes: stderr, and whether it is a terminal. */
export interface ProgressSink {
  err(text: string): void;
  readonly errIsTTY: boolean;
}

export interface ProgressOptions {
  /** Print nothing (--quiet). */
  quiet?: boolean;
  /** What is counted, for the rate ("photos" gives "3.2 photos/s"; default: "/s" alone). */
  unit?: string;
  /** Seconds between lines when stderr is not a terminal (default 5). */
  everySeconds?: number;
  /** The clock, in milliseconds (tests pass their own). */
  now?: () => number;
  /** Bar width in characters (default 28). */
  width?: number;
}

export class ProgressBar {
  private done = 0;
  private readonly start: number;
  private lastDraw = -Infinity;
  private finished = false;
  private readonly now: () => number;
  private readonly everyMs: number;

  constructor(
    private readonly io: ProgressSink,
    private total: number,
    private readonly label: string,
    private readonly opts: ProgressOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.start = this.now();
    this.everyMs = (opts.everySeconds ?? 5) * 1000;
  }

  /** The total changed (a walk found more files, or some turned out to need no work). */
  setTotal(total: number): void {
    this.total = total;
    this.done = Math.min(this.done, total);
  }

  get count(): number {
    return this.done;
  }

  tick(n = 1): void {
    this.done = Math.min(this.total, this.done + n);
    if (this.opts.quiet || this.finished) return;
    if (this.done >= this.total) {
      this.finish();
      return;
    }
    const now = this.now();
    if (this.io.errIsTTY) {
      if (now - this.lastDraw >= 100) {
        this.lastDraw = now;
        this.io.err(`\r${this.line(now)}\x1b[K`);
      }
    } else if (now - this.lastDraw >= this.everyMs) {
      this.lastDraw = now;
      this.io.err(`${this.line(now)}\n`);
    }
  }

  /** The last line, complete, once (also when the work stops early). */
  finish(): void {
    if (this.opts.quiet || this.finished) return;
    this.finished = true;
    const now = this.now();
    this.io.err(this.io.errIsTTY ? `\r${this.line(now)}\x1b[K\n` : `${this.line(now)}\n`);
  }

  line(now = this.now()): string {
    const w = this.opts.width ?? 28;
    const frac = this.total === 0 ? 1 : this.done / this.total;
    const filled = Math.round(frac * w);
    const elapsed = (now - this.start) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const unit = this.opts.unit ? ` ${this.opts.unit}/s` : '/s';
    const rateText = this.done > 0 && elapsed > 0 ? ` ${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)}${unit}` : '';
    const eta = this.done > 0 && this.done < this.total ? ` ETA ${clock((elapsed / this.done) * (this.total - this.done))}` : '';
    return `${this.label} [${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${this.done}/${this.total} ${Math.floor(frac * 100)}%${rateText}${eta} (${clock(elapsed)})`;
  }
}

/** Seconds as m:ss or h:mm:ss. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The process's stderr. */
export const stderrSink: ProgressSink = {
  err: (s) => void process.stderr.write(s),
  get errIsTTY() {
    return !!process.stderr.isTTY;
  },
};
