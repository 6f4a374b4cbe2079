// A dedupe run killed with SIGKILL part-way resumes: the rerun embeds exactly the photos the killed
// run had not committed (none twice), and ends with the same people, unclustered faces and
// near-duplicate groups as a run that was never interrupted. Real processes, a real SQLite file.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dedupeCommands } from '../../src/commands/dedupe-commands.js';
import { captureIo, runJson, sharedPipeline } from '../commands/helpers.js';
import { repoRoot } from '../helpers/fixtures.js';
import { tempDir } from '../store/helpers.js';

interface FaceRef {
  photo: string;
  box: number[];
}
interface DedupeJson {
  photos: number;
  people: { id: string; faces: FaceRef[] }[];
  unclustered: FaceRef[];
  nearDuplicates: string[][];
  library: { embedded: number; photos: number; faces: number };
}

let dir: string;
let photos: string;
const PHOTOS = 9; // examples/gallery: 9 portraits of 5 people

beforeAll(() => {
  dir = tempDir('resume');
  photos = join(dir, 'photos');
  for (const sub of readdirSync(join(repoRoot, 'examples/gallery')).map((p) => `examples/gallery/${p}`)) {
    const to = join(photos, sub.split('/').pop()!);
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(join(repoRoot, sub))) copyFileSync(join(repoRoot, sub, f), join(to, f));
  }
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const args = (db: string) => [photos, '--db', db, '--batch', '2', '--backend', 'wasm', '--workers', '2', '--json', '--quiet'];

function cosface(argv: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli.ts'), ...argv], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
}

function committed(db: string): number {
  try {
    const c = new Database(db, { readonly: true, fileMustExist: true });
    try {
      return (c.prepare('SELECT count(*) AS n FROM library_photos').get() as { n: number }).n;
    } finally {
      c.close();
    }
  } catch {
    return 0; // not created, or the tables not migrated yet
  }
}

/** Faces as "photo|x,y,w,h" (whole pixels) per person, people sorted: a partition to compare. */
const partition = (r: DedupeJson) =>
  r.people.map((p) => p.faces.map((f) => `${f.photo}|${f.box.map(Math.round).join(',')}`).sort().join(' ')).sort();

describe('dedupe after SIGKILL', () => {
  it('resumes where it stopped: no photo embedded twice, the same clusters as an uninterrupted run', async () => {
    const db = join(dir, 'killed.db');
    const first = cosface(['dedupe', ...args(db)]);
    let stderr = '';
    first.stderr.on('data', (b: Buffer) => (stderr += b));
    const exited = new Promise<number | null>((res) => first.on('exit', (code) => res(code)));
    // Kill it once at least two batches are committed.
    const t0 = Date.now();
    while (committed(db) < 4) {
      if (first.exitCode !== null) throw new Error(`the first run ended before it could be killed: ${stderr}`);
      if (Date.now() - t0 > 90_000) throw new Error('no batch committed in 90 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    first.kill('SIGKILL');
    await exited;
    const before = committed(db);
    expect(before).toBeGreaterThanOrEqual(4);
    expect(before).toBeLessThan(PHOTOS);

    const second = cosface(['dedupe', ...args(db)]);
    let out = '';
    second.stdout.on('data', (b: Buffer) => (out += b));
    second.stderr.on('data', (b: Buffer) => (stderr += b));
    const code = await new Promise<number | null>((res) => second.on('exit', (c) => res(c)));
    expect(code, stderr).toBe(0);
    const resumed = JSON.parse(out) as DedupeJson;
    expect(resumed.photos).toBe(PHOTOS);
    expect(resumed.library.embedded).toBe(PHOTOS - before); // only what the killed run had not committed
    const c = new Database(db, { readonly: true });
    const rows = c.prepare('SELECT count(*) AS n, count(DISTINCT content_hash) AS d FROM library_photos').get() as { n: number; d: number };
    const faces = (c.prepare('SELECT count(*) AS n FROM library_faces').get() as { n: number }).n;
    c.close();
    expect(rows).toEqual({ n: PHOTOS, d: PHOTOS });

    // The same photos, never interrupted (in this process, same backend and workers).
    const shared = await sharedPipeline();
    try {
      const io = captureIo();
      const whole = await runJson<DedupeJson>(io, dedupeCommands({ io, openPipeline: shared.opener }).dedupe, args(join(dir, 'whole.db')).filter((a) => a !== '--json'));
      expect(whole.library.embedded).toBe(PHOTOS);
      expect(faces).toBe(whole.library.faces);
      expect(partition(resumed)).toEqual(partition(whole));
      expect(resumed.people.length).toBeGreaterThanOrEqual(4);
      expect(resumed.unclustered.map((f) => f.photo).sort()).toEqual(whole.unclustered.map((f) => f.photo).sort());
      expect(resumed.nearDuplicates).toEqual(whole.nearDuplicates);
    } finally {
      await shared.close();
    }
  }, 240_000);
});
