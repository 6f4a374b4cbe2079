// cosface dedupe end to end with the real face pipeline on the photo fixtures: people (a person
// per folder of the examples, two faces of one photo never one person), near-duplicate photos, bad
// files counted with a reason, the JSON contract, a second run that embeds nothing and recognises
// a renamed file, the errors that leave no database behind; enroll following symlinked photos and
// gallery duplicates on the same pipeline.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dedupeCommands } from '../../src/commands/dedupe-commands.js';
import type { EnrollSummary } from '../../src/commands/store-commands.js';
import { repoRoot } from '../helpers/fixtures.js';
import { tempDir } from '../store/helpers.js';
import { captureIo, commands, expectCode, photo, runJson, sharedPipeline } from './helpers.js';

interface FaceRef {
  photo: string;
  box: number[];
}
interface DedupeJson {
  photos: number;
  faces: number;
  people: { id: string; name?: string; faces: FaceRef[] }[];
  unclustered: FaceRef[];
  nearDuplicates: string[][];
  skipped: { photo: string; reason: string }[];
  library: { embedded: number; reused: number; copies: number; moved: number; photos: number; faces: number };
  threshold: number;
  report?: string;
}

let shared: Awaited<ReturnType<typeof sharedPipeline>>;
const io = captureIo();
let dedupe: (a: string[]) => Promise<void>;
let store: ReturnType<typeof commands>;
let dir: string;
let lib: string;
let db: string;

const gallery = (p: string) => join(repoRoot, 'examples/gallery', p);

beforeAll(async () => {
  shared = await sharedPipeline();
  dedupe = dedupeCommands({ io, openPipeline: shared.opener }).dedupe;
  store = commands(io, shared.opener);
  dir = tempDir('dedupe');
  db = join(dir, 'lib.db');
  lib = join(dir, 'photos');
  // The examples' people through a folder link, a probe with two of them, a copy and a half-size
  // re-encode of one photo, and files that are not photos.
  mkdirSync(join(lib, 'trip'), { recursive: true });
  symlinkSync(join(repoRoot, 'examples/gallery'), join(lib, 'people'));
  copyFileSync(join(repoRoot, 'examples/probes/kit_with_rose.jpg'), join(lib, 'trip', 'kit_with_rose.jpg'));
  copyFileSync(gallery('obama/obama2.jpg'), join(lib, 'trip', 'obama2-copy.jpg'));
  await sharp(gallery('rose_leslie/img2.jpg')).resize({ width: 200 }).jpeg({ quality: 70 }).toFile(join(lib, 'trip', 'rose-small.jpg'));
  writeFileSync(join(lib, 'trip', 'notes.txt'), 'not a photo');
  writeFileSync(join(lib, 'trip', 'cut.jpg'), readFileSync(photo('biden-400.jpg')).subarray(0, 300));
  symlinkSync(lib, join(lib, 'trip', 'loop'));
}, 60_000);
afterAll(async () => {
  await shared?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const personOf = (r: DedupeJson, photoEnd: string, i = 0) => r.people.find((p) => p.faces.some((f) => f.photo.endsWith(photoEnd)) && i-- === 0)?.id;

describe('cosface dedupe', () => {
  let first: DedupeJson;
  it('groups every face into people, finds near duplicates, and counts bad files with a reason', async () => {
    first = await runJson<DedupeJson>(io, dedupe, [lib, '--db', db, '--backend', 'wasm']);
    expect(Object.keys(first)).toEqual(expect.arrayContaining(['photos', 'faces', 'people', 'unclustered', 'nearDuplicates', 'skipped']));
    expect(first.photos).toBe(12); // 9 of the gallery, 3 in trip/
    // obama2-copy.jpg has the bytes of obama2.jpg: embedded once, counted as a copy.
    expect(first.library).toMatchObject({ embedded: 11, reused: 0, copies: 1, photos: 11 });
    // Paths are the folder as given joined with the path below it (through the link).
    expect(first.people.flatMap((p) => p.faces.map((f) => f.photo))).toContain(join(lib, 'people', 'obama', 'obama.jpg'));
    // One person per example folder with more than one photo; alex (one photo) joins nobody.
    for (const [a, b] of [['obama/obama.jpg', 'obama/obama2.jpg'], ['biden/biden.jpg', 'biden/biden2.jpg'], ['kit_harington/john1.jpg', 'kit_harington/john2.jpg'], ['rose_leslie/img1.jpg', 'rose-small.jpg']]) {
      expect(personOf(first, a!)).toBeDefined();
      expect(personOf(first, a!)).toBe(personOf(first, b!));
    }
    expect(new Set(['obama/obama.jpg', 'biden/biden.jpg', 'john1.jpg', 'rose_leslie/img1.jpg'].map((p) => personOf(first, p))).size).toBe(4);
    expect(first.unclustered.map((f) => f.photo)).toContain(join(lib, 'people', 'alex_lacamoire', 'img1.jpg'));
    // Cannot-link: kit and rose share a photo and stay two people, each with their own face of it.
    const withRose = first.people.filter((p) => p.faces.some((f) => f.photo.endsWith('kit_with_rose.jpg')));
    expect(withRose.map((p) => p.id).sort()).toEqual([personOf(first, 'john1.jpg'), personOf(first, 'rose_leslie/img1.jpg')].sort());
    for (const p of first.people) expect(new Set(p.faces.map((f) => f.photo)).size).toBe(p.faces.length);
    expect(first.people.map((p) => p.faces.length)).toEqual([...first.people.map((p) => p.faces.length)].sort((a, b) => b - a));
    for (const f of first.people[0]!.faces) expect(f.box).toHaveLength(4);
    // The copy and the smaller re-encode.
    expect(first.nearDuplicates.map((g) => [...g].sort())).toEqual(
      expect.arrayContaining([
        [join(lib, 'people', 'obama', 'obama2.jpg'), join(lib, 'trip', 'obama2-copy.jpg')].sort(),
        [join(lib, 'people', 'rose_leslie', 'img2.jpg'), join(lib, 'trip', 'rose-small.jpg')].sort(),
      ]),
    );
    expect(first.nearDuplicates).toHaveLength(2);
    const why = Object.fromEntries(first.skipped.map((s) => [s.photo, s.reason]));
    expect(why).toEqual({
      [join(lib, 'trip', 'notes.txt')]: 'not an image',
      [join(lib, 'trip', 'cut.jpg')]: 'not a decodable image',
      [join(lib, 'trip', 'loop')]: 'symlink loop',
    });
    // Piped progress: whole lines only (13 photos by their first bytes: cut.jpg fails to decode).
    expect(io.stderr).toMatch(/^dedupe \[#{28}\] 13\/13 100% [\d.]+ photos\/s \(\d+:\d\d\)$/m);
    expect(io.stderr).not.toContain('\r');
  }, 120_000);

  it('a second run embeds nothing; a renamed photo keeps its faces and person', async () => {
    renameSync(join(lib, 'trip', 'kit_with_rose.jpg'), join(lib, 'trip', 'renamed.jpg'));
    const again = await runJson<DedupeJson>(io, dedupe, [lib, '--db', db, '--quiet']);
    expect(shared.opened()).toBe(1); // the pipeline was not even opened again
    // 11 contents the library held before this run, and the copy again.
    expect(again.library).toMatchObject({ embedded: 0, reused: 11, copies: 1, moved: 1, photos: 11 });
    expect(io.stderr).toBe('');
    const people = (r: DedupeJson) => r.people.map((p) => p.faces.map((f) => `${f.photo.replace('kit_with_rose', 'renamed')}|${f.box}`).sort().join(';')).sort();
    expect(people(again)).toEqual(people(first));
    expect(again.nearDuplicates.length).toBe(2);
  }, 60_000);

  it('a named person keeps the name in later runs; bad person ids are refused', async () => {
    const people = dedupeCommands({ io, openPipeline: shared.opener }).people;
    const obama = personOf(first, 'obama/obama.jpg')!;
    io.clear();
    await people(['name', obama, 'Barack Obama', '--db', db]);
    expect(io.stdout).toContain(`${obama} is now "Barack Obama"`);
    const named = await runJson<DedupeJson>(io, dedupe, [lib, '--db', db, '--quiet']);
    expect(named.people.find((p) => p.id === obama)!.name).toBe('Barack Obama');
    expect(named.people.filter((p) => p.name !== undefined)).toHaveLength(1);
    await expectCode(people, ['name', 'person-999', 'X', '--db', db], 'NOT_FOUND');
    await expectCode(people, ['name', 'obama', 'X', '--db', db], 'BAD_INPUT');
    await expectCode(people, ['name', obama, ' X', '--db', db], 'BAD_INPUT');
  }, 60_000);

  it('photos added later join the people found before: ids kept, nothing re-clustered', async () => {
    const grow = join(dir, 'grow');
    mkdirSync(grow);
    for (const f of ['biden/biden.jpg', 'biden/biden2.jpg', 'obama/obama.jpg', 'obama/obama2.jpg']) copyFileSync(gallery(f), join(grow, f.replace('/', '-')));
    const gdb = join(dir, 'grow.db');
    const before = await runJson<DedupeJson>(io, dedupe, [grow, '--db', gdb, '--quiet']);
    expect(before.people).toHaveLength(2);
    copyFileSync(join(repoRoot, 'examples/probes/obama1.jpg'), join(grow, 'later-obama1.jpg'));
    copyFileSync(gallery('kit_harington/john1.jpg'), join(grow, 'later-kit.jpg'));
    const after = await runJson<DedupeJson>(io, dedupe, [grow, '--db', gdb, '--quiet']);
    expect(after.library.embedded).toBe(2);
    const ids = (r: DedupeJson) => Object.fromEntries(r.people.map((p) => [p.id, p.faces.map((f) => f.photo.split('/').pop()).sort()]));
    const obama = personOf(before, 'obama-obama.jpg')!;
    const biden = personOf(before, 'biden-biden.jpg')!;
    expect(ids(after)).toEqual({ [obama]: ['later-obama1.jpg', 'obama-obama.jpg', 'obama-obama2.jpg'], [biden]: ['biden-biden.jpg', 'biden-biden2.jpg'] });
    expect(after.unclustered.map((f) => f.photo.split('/').pop())).toEqual(['later-kit.jpg']);
  }, 60_000);

  it('a missing folder, an empty folder, an unknown option: a clear error and no database created', async () => {
    const fresh = join(dir, 'fresh.db');
    expect(await expectCode(dedupe, [join(dir, 'nope'), '--db', fresh], 'BAD_INPUT')).toContain('nope: no such file or folder');
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'empty', 'readme.txt'), 'no photos here');
    expect(await expectCode(dedupe, [join(dir, 'empty'), '--db', fresh], 'BAD_INPUT')).toMatch(/no photos .* 1 file left out .*readme.txt: not an image/);
    await expectCode(dedupe, [lib, '--db', fresh, '--threshold', '2'], 'BAD_INPUT');
    await expectCode(dedupe, [lib, '--db', fresh, '--far', '1e-4'], 'NOT_CALIBRATED');
    await expectCode(dedupe, [], 'BAD_INPUT');
    expect(existsSync(join(dir, 'nope'))).toBe(false);
    // NOT_CALIBRATED needs the store's calibration table, so only that one opened (created) it.
    rmSync(fresh, { force: true });
  });
});

describe('cosface enroll and gallery duplicates', () => {
  it('enrolls photos that are symbolic links, and lists the same person enrolled under two names', async () => {
    const people = join(dir, 'links');
    for (const [who, files] of Object.entries({ obama: ['obama/obama.jpg'], barack: ['obama/obama2.jpg'], biden: ['biden/biden.jpg'], kit: ['kit_harington/john1.jpg'] })) {
      mkdirSync(join(people, who), { recursive: true });
      for (const f of files) symlinkSync(gallery(f), join(people, who, f.split('/').pop()!));
    }
    const gdb = join(dir, 'gallery.db');
    const s = await runJson<EnrollSummary>(io, store.enroll, [people, '--gallery', 'g', '--db', gdb, '--quiet']);
    expect(s).toMatchObject({ photos: 4, added: 4, identitiesAdded: 4 });
    const d = await runJson<{ pairs: { a: { identity: string }; b: { identity: string }; score: number }[]; threshold: number }>(io, store.gallery, ['duplicates', 'g', '--db', gdb, '--threshold', '0.4']);
    expect(d.threshold).toBe(0.4);
    expect(d.pairs.map((p) => [p.a.identity, p.b.identity])).toEqual([['barack', 'obama']]);
    expect(d.pairs[0]!.score).toBeGreaterThan(0.4);
    await expectCode(store.gallery, ['duplicates', 'g', '--db', gdb], 'NOT_CALIBRATED');
    await expectCode(store.gallery, ['duplicates', 'nope', '--db', gdb, '--threshold', '0.4'], 'GALLERY_NOT_FOUND');
  }, 60_000);
});
