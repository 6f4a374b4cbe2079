// The CosFace paper's hyperparameter bounds (section 3.4): the largest useful margin m for C
// classes spread evenly in d dimensions, and the smallest scale s that lets the expected minimum
// class posterior P reach P. Backs `cosface loss bounds --classes C --dim d [--posterior P] [--json]`.
import { CosfaceError } from '../errors.js';

export interface MarginBound {
  /** Upper bound on m, or null where the paper gives only "much smaller than C/(C-1)". */
  mMax: number | null;
  /** Which case of the paper applies, in words. */
  reason: string;
}

export function marginUpperBound(classes: number, dim: number): MarginBound {
  if (!Number.isInteger(classes) || classes < 2) throw new CosfaceError('BAD_INPUT', `loss bounds: classes must be an integer >= 2, got ${classes}`);
  if (!Number.isInteger(dim) || dim < 2) throw new CosfaceError('BAD_INPUT', `loss bounds: dim must be an integer >= 2, got ${dim}`);
  if (dim === 2) return { mMax: 1 - Math.cos((2 * Math.PI) / classes), reason: `d = 2: C weight vectors evenly on the circle, m <= 1 - cos(2 pi / C)` };
  if (classes <= dim + 1) return { mMax: classes / (classes - 1), reason: `C <= d + 1: weights at the vertices of a regular simplex, m <= C / (C - 1)` };
  return {
    mMax: null,
    reason: `C = ${classes} > d + 1 = ${dim + 1}: the paper gives no closed form, only that m is much smaller than C / (C - 1) = ${(classes / (classes - 1)).toFixed(4)}`,
  };
}

/** s >= (C - 1) / C * ln((C - 1) P / (1 - P)) for an expected minimum class posterior P in (0, 1). */
export function scaleLowerBound(classes: number, posterior: number): number {
  if (!Number.isInteger(classes) || classes < 2) throw new CosfaceError('BAD_INPUT', `loss bounds: classes must be an integer >= 2, got ${classes}`);
  if (!(posterior > 0 && posterior < 1)) throw new CosfaceError('BAD_INPUT', `loss bounds: posterior must be in (0, 1), got ${posterior}`);
  return ((classes - 1) / classes) * Math.log(((classes - 1) * posterior) / (1 - posterior));
}

export interface LossBounds {
  classes: number;
  dim: number;
  posterior: number;
  mMax: number | null;
  sMin: number;
  reason: string;
}

export function lossBounds(classes: number, dim: number, posterior = 0.9): LossBounds {
  const m = marginUpperBound(classes, dim);
  return { classes, dim, posterior, mMax: m.mMax, sMin: scaleLowerBound(classes, posterior), reason: m.reason };
}

/** The CLI text for `cosface loss bounds`: JSON { mMax, sMin } or two lines for people. */
export function formatLossBounds(b: LossBounds, json: boolean): string {
  if (json) return JSON.stringify({ mMax: b.mMax, sMin: b.sMin });
  const m = b.mMax === null ? `mMax: none (${b.reason})` : `mMax: ${b.mMax.toFixed(6)} (${b.reason})`;
  return `${m}\nsMin: ${b.sMin.toFixed(6)} (C = ${b.classes}, expected minimum posterior P = ${b.posterior})`;
}

/** Parses `--classes C --dim d [--posterior P] [--json]` and returns the text to print. */
export function lossBoundsCommand(argv: readonly string[]): string {
  let classes = NaN;
  let dim = NaN;
  let posterior = 0.9;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new CosfaceError('BAD_INPUT', `loss bounds: ${a} needs a value`);
      return Number(v);
    };
    if (a === '--classes') classes = val();
    else if (a === '--dim') dim = val();
    else if (a === '--posterior') posterior = val();
    else if (a === '--json') json = true;
    else throw new CosfaceError('BAD_INPUT', `loss bounds: unknown argument ${a}; usage: --classes C --dim d [--posterior P] [--json]`);
  }
  return formatLossBounds(lossBounds(classes, dim, posterior), json);
}

const isMain = process.argv[1] !== undefined && /loss-bounds\.[mc]?[jt]s$/.test(process.argv[1]);
if (isMain) {
  try {
    console.log(lossBoundsCommand(process.argv.slice(2)));
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
  }
}
