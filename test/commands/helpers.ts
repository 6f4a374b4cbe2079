// Test helpers for the CLI store commands: one real face pipeline shared by every command of a
// test file (the commands open and close theirs per call otherwise), captured output, and a
// temporary enrollment folder built from the photo fixtures.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { expect } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { openCliPipeline, storeCommands, type CommandIo, type PipelineOpener, type PipelineSession } from '../../src/commands/store-commands.js';
import { repoRoot } from '../helpers/fixtures.js';

export const photo = (f: string) => join(repoRoot, 'test/fixtures/photos', f);
export const aligned = (f: string) => join(repoRoot, 'test/fixtures/aligned', f);

export interface Captured extends CommandIo {
  stdout: string;
  stderr: string;
  clear(): void;
}

export function captureIo(tty = false): Captured {
  const c: Captured = {
    stdout: '',
    stderr: '',
    errIsTTY: tty,
    out: (s) => void (c.stdout += s),
    err: (s) => void (c.stderr += s),
    clear: () => {
      c.stdout = '';
      c.stderr = '';
    },
  };
  return c;
}

/** The real pipeline on the WASM backend (two workers), opened once; counts how often commands asked for it. */
export async function sharedPipeline(): Promise<{ opener: PipelineOpener; opened: () => number; close: () => Promise<void> }> {
  const session: PipelineSession = await openCliPipeline({ backend: 'wasm', workers: 2, note: () => undefined });
  let count = 0;
  return {
    opener: async () => {
      count++;
      return { pipeline: session.pipeline, describe: session.describe, close: async () => undefined };
    },
    opened: () => count,
    close: () => session.close(),
  };
}

export function commands(io: CommandIo, opener: PipelineOpener) {
  return storeCommands({ io, openPipeline: opener });
}

/** Runs a command and returns its parsed JSON stdout. */
export async function runJson<T>(io: Captured, cmd: (a: string[]) => Promise<void>, args: string[]): Promise<T> {
  io.clear();
  await cmd([...args, '--json']);
  return JSON.parse(io.stdout) as T;
}

/** Runs a command that must fail with a CosfaceError of this code; returns the message. */
export async function expectCode(cmd: (a: string[]) => Promise<void>, args: string[], code: string): Promise<string> {
  try {
    await cmd(args);
  } catch (e) {
    if (!isCosfaceError(e)) throw e;
    expect(e.code).toBe(code);
    return e.message;
  }
  throw new Error(`expected error ${code}, the command succeeded`);
}

/** A grey square without a face, and the first 100 bytes of a JPEG (truncated). */
export async function writeNonFaces(dir: string): Promise<{ grey: string; broken: string }> {
  mkdirSync(dir, { recursive: true });
  const grey = join(dir, 'grey.png');
  await sharp({ create: { width: 96, height: 96, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toFile(grey);
  const broken = join(dir, 'broken.jpg');
  const { readFileSync } = await import('node:fs');
  writeFileSync(broken, readFileSync(photo('biden-400.jpg')).subarray(0, 100));
  return { grey, broken };
}

/** identity folder -> files copied in. */
export function makeEnrollDir(dir: string, layout: Record<string, string[]>): string {
  for (const [who, files] of Object.entries(layout)) {
    mkdirSync(join(dir, who), { recursive: true });
    for (const f of files) copyFileSync(f, join(dir, who, f.split('/').pop()!));
  }
  return dir;
}
