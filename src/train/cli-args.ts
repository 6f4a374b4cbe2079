// Minimal `--name value` / `--flag` parsing for the training commands, with exact messages.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CosfaceError } from '../errors.js';

export class Flags {
  private readonly values = new Map<string, string | true>();
  private readonly used = new Set<string>();

  constructor(private readonly command: string, argv: readonly string[], booleans: readonly string[] = []) {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith('--')) throw new CosfaceError('BAD_INPUT', `${command}: unexpected argument ${JSON.stringify(a)}`);
      const name = a.slice(2);
      if (booleans.includes(name)) this.values.set(name, true);
      else {
        const v = argv[++i];
        if (v === undefined) throw new CosfaceError('BAD_INPUT', `${command}: --${name} needs a value`);
        this.values.set(name, v);
      }
    }
  }

  string(name: string, dflt?: string): string {
    this.used.add(name);
    const v = this.values.get(name);
    if (v === undefined || v === true) {
      if (dflt === undefined) throw new CosfaceError('BAD_INPUT', `${this.command}: --${name} is required`);
      return dflt;
    }
    return v;
  }

  number(name: string, dflt: number): number {
    const raw = this.values.has(name) ? this.string(name) : String(dflt);
    this.used.add(name);
    const v = Number(raw);
    if (!Number.isFinite(v)) throw new CosfaceError('BAD_INPUT', `${this.command}: --${name} must be a number, got ${JSON.stringify(raw)}`);
    return v;
  }

  numbers(name: string, dflt: number[]): number[] {
    this.used.add(name);
    const raw = this.values.get(name);
    if (raw === undefined || raw === true) return dflt;
    const out = raw.split(',').map(Number);
    if (out.some((v) => !Number.isFinite(v))) throw new CosfaceError('BAD_INPUT', `${this.command}: --${name} must be comma-separated numbers, got ${JSON.stringify(raw)}`);
    return out;
  }

  choice<T extends string>(name: string, choices: readonly T[], dflt: T): T {
    const v = this.string(name, dflt);
    if (!choices.includes(v as T)) throw new CosfaceError('BAD_INPUT', `${this.command}: --${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  flag(name: string): boolean {
    this.used.add(name);
    return this.values.get(name) === true;
  }

  /** Fails on any flag that no getter asked for (typos). */
  done(): void {
    const unknown = [...this.values.keys()].filter((k) => !this.used.has(k));
    if (unknown.length) throw new CosfaceError('BAD_INPUT', `${this.command}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => '--' + u).join(', ')}`);
  }
}

/** Runs main() when this module is the entry script; prints CosfaceErrors without a stack. */
export function runMain(moduleUrl: string, main: (argv: string[]) => Promise<void>): void {
  const entry = process.argv[1];
  if (!entry) return;
  const strip = (p: string) => p.replace(/\.[mc]?[jt]s$/, '');
  if (strip(path.resolve(entry)) !== strip(fileURLToPath(moduleUrl))) return;
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof CosfaceError ? `${e.code}: ${e.message}` : e);
    process.exitCode = 1;
  });
}
