// cosface calibrate on an LFW-style pair list made of the aligned fixtures (8 people x 2): the
// thresholds the data supports are stored, the stricter FARs are reported as unsupported, and
// identify/verify then decide at a calibrated FAR.
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollSummary } from '../../src/commands/store-commands.js';
import { alignedDir } from '../helpers/fixtures.js';
import { tempDir } from '../store/helpers.js';
import { BACKENDS, testDb, type TestDb } from '../helpers/backends.js';
import { aligned, captureIo, commands, expectCode, makeEnrollDir, photo, runJson, sharedPipeline } from './helpers.js';

interface CalibrateJson {
  genuinePairs: number;
  impostorPairs: number;
  thresholds: { far: number; threshold: number; falseAccepts: number; tar: number | null }[];
  unsupported: { far: number; impostorPairsNeeded: number }[];
  noFace: { count: number };
}

let shared: Awaited<ReturnType<typeof sharedPipeline>>;
const io = captureIo();
let cmd: ReturnType<typeof commands>;
let dir: string;
/** The aligned crops in LFW's layout: one folder per person. */
let lfw: string;
const files = readdirSync(alignedDir).filter((f) => f.endsWith('.png')).sort();
const person = (f: string) => f.replace(/_\d+\.png$/, '');

/** Writes fold,img_a,img_b,same lines: the 8 genuine pairs and the first `impostors` impostor pairs. */
function writePairs(path: string, impostors: number): void {
  const lines = ['fold,img_a,img_b,same'];
  let imp = 0;
  files.forEach((a, i) =>
    files.slice(i + 1).forEach((b) => {
      const same = person(a) === person(b);
      if (!same && imp++ >= impostors) return;
      lines.push(`${(lines.length % 2) + 1},${person(a)}/${a},${person(b)}/${b},${same ? 1 : 0}`);
    }),
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
}

beforeAll(async () => {
  shared = await sharedPipeline();
  cmd = commands(io, shared.opener);
  dir = tempDir('calib');
  lfw = join(dir, 'lfw');
  for (const f of files) {
    mkdirSync(join(lfw, person(f)), { recursive: true });
    copyFileSync(join(alignedDir, f), join(lfw, person(f), f));
  }
  writePairs(join(dir, 'few.csv'), 40);
  writePairs(join(dir, 'all.csv'), 1000);
}, 60_000);
afterAll(async () => {
  await shared?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.each(BACKENDS)('cosface calibrate on %s', (backend) => {
  let tdb: TestDb;
  let db: string;
  beforeAll(async () => {
    tdb = await testDb(backend, 'calib');
    db = tdb.location;
  });
  afterAll(() => tdb?.dispose());

  it('40 impostor pairs support no FAR down to 1e-2; --all-pairs (112 impostor pairs) supports 1e-2 and says the rest are unsupported', async () => {
    const few = await runJson<CalibrateJson>(io, cmd.calibrate, ['--data', lfw, '--pairs', join(dir, 'few.csv'), '--db', db]);
    expect(few).toMatchObject({ genuinePairs: 8, impostorPairs: 40, thresholds: [], noFace: { count: 0 } });
    expect(few.unsupported.map((u) => u.far)).toEqual([1e-2, 1e-3, 1e-4, 1e-5, 1e-6]);
    expect(few.unsupported[0]!.impostorPairsNeeded).toBe(100);

    const all = await runJson<CalibrateJson>(io, cmd.calibrate, ['--data', lfw, '--pairs', join(dir, 'few.csv'), '--all-pairs', '--db', db]);
    expect(all).toMatchObject({ genuinePairs: 8, impostorPairs: 112 });
    expect(all.thresholds.map((t) => t.far)).toEqual([1e-2]);
    const t = all.thresholds[0]!;
    expect(t.falseAccepts).toBe(1); // floor(0.01 * 112)
    expect(t.threshold).toBeGreaterThan(0);
    expect(t.threshold).toBeLessThan(0.5);
    expect(all.unsupported.map((u) => u.far)).toEqual([1e-3, 1e-4, 1e-5, 1e-6]);
    // The text form names the unsupported FARs.
    io.clear();
    await cmd.calibrate(['--data', lfw, '--pairs', join(dir, 'all.csv'), '--db', db]);
    expect(io.stdout).toMatch(/FAR 1e-2: threshold 0\.\d{4}/);
    expect(io.stdout).toMatch(/FAR 1e-3: not supported by the data \(needs at least 1000 impostor pairs\)/);
  }, 60_000);

  it('identify and verify then decide at the calibrated FAR, by default the strictest calibrated one', async () => {
    const people = makeEnrollDir(join(dir, `people-${backend}`), { obama: [photo('obama_small.jpg')], brody: [aligned('Adrien_Brody_0002.png')] });
    const s = await runJson<EnrollSummary>(io, cmd.enroll, [people, '--gallery', 'g', '--db', db]);
    expect(s.added).toBe(2);
    const r = await runJson<{ faces: { match: string | null }[]; far: number; threshold: number }>(io, cmd.identify, [aligned('Adrien_Brody_0003.png'), '--gallery', 'g', '--far', '1e-2', '--db', db]);
    expect(r.faces[0]!.match).toBe('brody');
    expect(r.far).toBe(1e-2);
    io.clear();
    await cmd.identify([aligned('Adrien_Brody_0003.png'), '--gallery', 'g', '--db', db]);
    expect(io.stderr).toMatch(/FAR 0\.0001 is not calibrated .* deciding at FAR 0\.01/);
    expect(io.stdout).toMatch(/match: brody/);
    const v = await runJson<{ same: boolean; far: number }>(io, cmd.verify, [aligned('Adrien_Brody_0002.png'), aligned('Aaron_Sorkin_0001.png'), '--db', db]);
    expect(v).toMatchObject({ same: false, far: 1e-2 });
    await expectCode(cmd.verify, [aligned('Adrien_Brody_0002.png'), aligned('Adrien_Brody_0003.png'), '--far', '1e-4', '--db', db], 'NOT_CALIBRATED');
  }, 60_000);

  it('a missing pair list or image fails before anything is embedded or stored', async () => {
    const before = await tdb.fingerprint();
    const opened = shared.opened();
    await expectCode(cmd.calibrate, ['--data', lfw, '--pairs', join(dir, 'nope.csv'), '--db', db], 'BAD_INPUT');
    mkdirSync(join(dir, 'bad'), { recursive: true });
    writeFileSync(join(dir, 'bad', 'pairs.csv'), 'fold,img_a,img_b,same\n1,x.png,y.png,0\n2,x.png,y.png,1\n');
    expect(await expectCode(cmd.calibrate, ['--data', join(dir, 'bad'), '--db', db], 'BAD_INPUT')).toContain('x.png');
    writeFileSync(join(dir, 'bad', 'pairs.csv'), 'fold,img_a,img_b,same\n1,x.png\n');
    await expectCode(cmd.calibrate, ['--data', join(dir, 'bad'), '--db', db], 'BAD_INPUT');
    await expectCode(cmd.calibrate, ['--db', db], 'BAD_INPUT');
    // --all-pairs needs one folder per person.
    writeFileSync(join(dir, 'flat.csv'), `fold,img_a,img_b,same\n1,${files[0]},${files[2]},0\n2,${files[0]},${files[1]},1\n`);
    expect(await expectCode(cmd.calibrate, ['--data', alignedDir, '--pairs', join(dir, 'flat.csv'), '--all-pairs', '--db', db], 'BAD_INPUT')).toMatch(/one folder/);
    expect(shared.opened()).toBe(opened);
    expect(await tdb.fingerprint()).toBe(before);
  });
});
