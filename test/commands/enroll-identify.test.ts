// The store commands end to end with the real face pipeline on the photo fixtures: enroll a folder
// of people (progress, no-face and unreadable photos reported, resumable), identify, verify,
// gallery list/stats/delete, and the errors that must leave the database as it was.
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollSummary } from '../../src/commands/store-commands.js';
import { tempDir } from '../store/helpers.js';
import { BACKENDS, testDb, type TestDb } from '../helpers/backends.js';
import { aligned, captureIo, commands, expectCode, makeEnrollDir, photo, runJson, sharedPipeline, writeNonFaces } from './helpers.js';

interface IdentifyJson {
  faces: { box: number[]; candidates: { identity: string; score: number }[]; match: string | null }[];
  threshold: number | null;
}
interface VerifyJson {
  score: number;
  same: boolean | null;
  threshold: number | null;
  a: { faces: number };
}

let shared: Awaited<ReturnType<typeof sharedPipeline>>;
const io = captureIo();
let cmd: ReturnType<typeof commands>;

beforeAll(async () => {
  shared = await sharedPipeline();
  cmd = commands(io, shared.opener);
}, 60_000);
afterAll(async () => {
  await shared?.close();
});

describe.each(BACKENDS)('store commands on %s', (backend) => {
  let tdb: TestDb;
  let dir: string;
  let db: string;
  let people: string;
  let bad: { grey: string; broken: string };
  /** A location of this backend that holds no database. */
  const elsewhere = (name: string) => (backend === 'sqlite' ? join(dir, `${name}.db`) : `pglite:${join(dir, name)}`);
  const elsewherePath = (name: string) => (backend === 'sqlite' ? join(dir, `${name}.db`) : join(dir, name));

  beforeAll(async () => {
    tdb = await testDb(backend, 'cmd');
    dir = tempDir('cmd');
    db = tdb.location;
    bad = await writeNonFaces(join(dir, 'bad'));
    people = makeEnrollDir(join(dir, 'people'), {
      obama: [photo('obama_small.jpg'), bad.grey],
      biden: [photo('biden-400.jpg'), bad.broken],
      brody: [aligned('Adrien_Brody_0002.png')],
      sorkin: [aligned('Aaron_Sorkin_0001.png')],
    });
    writeFileSync(join(people, 'notes.txt'), 'not a photo in an identity folder');
  }, 60_000);
  afterAll(async () => {
    await tdb?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const dbArgs = () => ['--db', db];

  describe('cosface enroll', () => {
    it('enrolls one face per photo into a new gallery, reports photos without a face and unreadable ones, shows progress', async () => {
      const s = await runJson<EnrollSummary>(io, cmd.enroll, [people, '--gallery', 'people', ...dbArgs()]);
      expect(s.createdGallery).toBe(true);
      expect(s.photos).toBe(6);
      expect(s.identityFolders).toBe(4);
      expect(s.added).toBe(4);
      expect(s.identitiesAdded).toBe(4);
      expect(s.skipped).toBe(0);
      expect(s.noFace).toEqual([join(people, 'obama', 'grey.png')]);
      expect(s.badImages.map((b) => [b.photo, b.code])).toEqual([[join(people, 'biden', 'broken.jpg'), 'BAD_IMAGE']]);
      expect(s.badImages[0]!.message).toContain('broken.jpg');
      expect(s.ignored).toEqual([join(people, 'notes.txt')]);
      expect(s.gallerySize).toEqual({ identities: 4, faces: 4 });
      // Not a terminal: one progress line per tenth, ending complete.
      const last = io.stderr.trim().split('\n').pop()!;
      expect(last).toMatch(/^enrolling \[#+\] 6\/6 100%/);
    }, 60_000);

    it('is resumable: a second run skips every enrolled photo and adds only a new one', async () => {
      const before = await tdb.fingerprint();
      const again = await runJson<EnrollSummary>(io, cmd.enroll, [people, '--gallery', 'people', ...dbArgs()]);
      expect(again).toMatchObject({ added: 0, skipped: 4, createdGallery: false, gallerySize: { identities: 4, faces: 4 } });
      expect(await tdb.fingerprint()).toBe(before);
      copyFileSync(aligned('Adrien_Brody_0003.png'), join(people, 'brody', 'Adrien_Brody_0003.png'));
      const more = await runJson<EnrollSummary>(io, cmd.enroll, [people, '--gallery', 'people', ...dbArgs()]);
      expect(more).toMatchObject({ added: 1, skipped: 4, identitiesAdded: 1, gallerySize: { identities: 4, faces: 5 } });
    }, 60_000);

    it('refuses a missing folder, a folder without photos, a missing --gallery and a bad backend, before touching the database', async () => {
      const before = await tdb.fingerprint();
      await expectCode(cmd.enroll, [join(dir, 'nope'), '--gallery', 'people', ...dbArgs()], 'BAD_INPUT');
      await expectCode(cmd.enroll, [join(dir, 'bad'), '--gallery', 'people', ...dbArgs()], 'BAD_INPUT');
      await expectCode(cmd.enroll, [people, ...dbArgs()], 'BAD_INPUT');
      await expectCode(cmd.enroll, [people, '--gallery', 'other', '--backend', 'cuda', ...dbArgs()], 'UNKNOWN_BACKEND');
      await expectCode(cmd.enroll, [people, '--gallery', 'other', '--workers', '0', ...dbArgs()], 'BAD_INPUT');
      expect(await tdb.fingerprint()).toBe(before);
      await expectCode(cmd.enroll, [people, '--gallery', 'other', '--backend', 'cuda', '--db', elsewhere('fresh')], 'UNKNOWN_BACKEND');
      expect(existsSync(elsewherePath('fresh'))).toBe(false);
    });
  });

  describe('cosface identify', () => {
    it('names the enrolled person in another photo, with ranked candidates and a match at the threshold', async () => {
      const r = await runJson<IdentifyJson>(io, cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'people', '--threshold', '0.3', ...dbArgs()]);
      expect(r.faces).toHaveLength(1);
      const f = r.faces[0]!;
      expect(f.box).toHaveLength(4);
      expect(f.candidates.map((c) => c.identity)).toHaveLength(4);
      expect(f.candidates[0]!.identity).toBe('obama');
      expect(f.candidates[0]!.score).toBeGreaterThan(0.5);
      for (let i = 1; i < f.candidates.length; i++) expect(f.candidates[i]!.score).toBeLessThanOrEqual(f.candidates[i - 1]!.score);
      expect(f.match).toBe('obama');
      expect(r.threshold).toBe(0.3);
      // --k limits the candidates; a threshold above the best score answers "unknown".
      const strict = await runJson<IdentifyJson>(io, cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'people', '--k', '2', '--threshold', '0.999', ...dbArgs()]);
      expect(strict.faces[0]!.candidates).toHaveLength(2);
      expect(strict.faces[0]!.match).toBeNull();
      // Text output says the same.
      io.clear();
      await cmd.identify([photo('obama-240p.jpg'), '--gallery', 'people', '--threshold', '0.3', ...dbArgs()]);
      expect(io.stdout).toMatch(/match: obama/);
    }, 60_000);

    it('every face of a group photo is identified; none of these strangers is enrolled', async () => {
      const r = await runJson<IdentifyJson>(io, cmd.identify, [photo('t1.jpg'), '--gallery', 'people', '--threshold', '0.35', ...dbArgs()]);
      expect(r.faces).toHaveLength(6);
      for (const f of r.faces) expect(f.match).toBeNull();
    }, 60_000);

    it('fails with a stable code and changes nothing: unknown gallery, no face, bad image, uncalibrated FAR, no database', async () => {
      const before = await tdb.fingerprint();
      expect(await expectCode(cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'nobody', ...dbArgs()], 'GALLERY_NOT_FOUND')).toContain('nobody');
      expect(await expectCode(cmd.identify, [bad.grey, '--gallery', 'people', '--threshold', '0.3', ...dbArgs()], 'NO_FACE')).toContain('grey.png');
      expect(await expectCode(cmd.identify, [bad.broken, '--gallery', 'people', '--threshold', '0.3', ...dbArgs()], 'BAD_IMAGE')).toContain('broken.jpg');
      await expectCode(cmd.identify, [join(dir, 'missing.jpg'), '--gallery', 'people', ...dbArgs()], 'BAD_IMAGE');
      await expectCode(cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'people', '--far', '1e-3', ...dbArgs()], 'NOT_CALIBRATED');
      await expectCode(cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'people', '--far', '1e-3', '--threshold', '0.3', ...dbArgs()], 'BAD_INPUT');
      await expectCode(cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'people', '--k', '0', ...dbArgs()], 'BAD_INPUT');
      expect(await tdb.fingerprint()).toBe(before);
      await expectCode(cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'people', '--db', elsewhere('none')], 'GALLERY_NOT_FOUND');
      expect(existsSync(elsewherePath('none'))).toBe(false);
    }, 60_000);
  });

  describe('cosface verify', () => {
    it('scores the largest face of each photo: the same man twice, then two different men', async () => {
      const same = await runJson<VerifyJson>(io, cmd.verify, [photo('obama-240p.jpg'), photo('obama_small.jpg'), '--threshold', '0.3', ...dbArgs()]);
      expect(same.same).toBe(true);
      expect(same.score).toBeGreaterThan(0.5);
      const diff = await runJson<VerifyJson>(io, cmd.verify, [photo('obama-240p.jpg'), photo('biden-400.jpg'), '--threshold', '0.3', ...dbArgs()]);
      expect(diff.same).toBe(false);
      expect(diff.score).toBeLessThan(0.3);
      // Without a threshold or a calibration: the score, no decision.
      io.clear();
      await cmd.verify([photo('obama-240p.jpg'), aligned('Aaron_Sorkin_0001.png'), ...dbArgs()]);
      expect(io.stdout).toMatch(/^score -?0\.\d{4}: no decision/);
      expect(io.stderr).toMatch(/no calibrated threshold/);
    }, 60_000);

    it('a photo without a face or an unreadable one is an error naming it', async () => {
      expect(await expectCode(cmd.verify, [photo('obama-240p.jpg'), bad.grey, '--threshold', '0.3'], 'NO_FACE')).toContain('grey.png');
      expect(await expectCode(cmd.verify, [bad.broken, photo('obama-240p.jpg')], 'BAD_IMAGE')).toContain('broken.jpg');
      await expectCode(cmd.verify, [photo('obama-240p.jpg')], 'BAD_INPUT');
    }, 60_000);
  });

  describe('cosface gallery', () => {
    it('lists galleries, shows stats with an index/database consistency check, deletes', async () => {
      const list = await runJson<{ galleries: { name: string; identities: number; faces: number }[] }>(io, cmd.gallery, ['list', ...dbArgs()]);
      expect(list.galleries.map((g) => [g.name, g.identities, g.faces])).toEqual([['people', 4, 5]]);
      const stats = await runJson<{ faces: number; identities: number; modelId: string; dimension: number; index: { live: number }; consistency: { missingFromIndex: number[]; extraInIndex: number[] } }>(
        io, cmd.gallery, ['stats', 'people', '--check', ...dbArgs()],
      );
      expect(stats).toMatchObject({ identities: 4, faces: 5, modelId: 'mobilefacenet-arcface', dimension: 128, index: { live: 5 } });
      expect(stats.consistency.missingFromIndex).toEqual([]);
      expect(stats.consistency.extraInIndex).toEqual([]);
      io.clear();
      await cmd.gallery(['stats', 'people', ...dbArgs()]);
      expect(io.stdout).toMatch(/gallery "people": 4 identities, 5 faces/);

      const before = await tdb.fingerprint();
      await expectCode(cmd.gallery, ['stats', 'nobody', ...dbArgs()], 'GALLERY_NOT_FOUND');
      await expectCode(cmd.gallery, ['delete', 'nobody', ...dbArgs()], 'GALLERY_NOT_FOUND');
      await expectCode(cmd.gallery, ['rename', 'people', ...dbArgs()], 'BAD_INPUT');
      expect(await tdb.fingerprint()).toBe(before);

      const del = await runJson<{ deleted: string; faces: number }>(io, cmd.gallery, ['delete', 'people', ...dbArgs()]);
      expect(del).toEqual({ deleted: 'people', identities: 4, faces: 5 });
      expect((await runJson<{ galleries: unknown[] }>(io, cmd.gallery, ['list', ...dbArgs()])).galleries).toEqual([]);
      await expectCode(cmd.identify, [photo('obama-240p.jpg'), '--gallery', 'people', ...dbArgs()], 'GALLERY_NOT_FOUND');
    }, 60_000);
  });
});
