// `cosface enroll` pipelined (photos read and decoded ahead, the networks run once per group of
// photos, a group's rows written while the next one embeds) must enroll exactly what the
// photo-by-photo schedule enrolls: the same rows in the same order with the same embeddings, boxes
// and landmarks, and the same report. Also: --stats reports the stage split; facesInPhotos gives
// each photo's own faces.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EnrollSummary } from '../../src/commands/store-commands.js';
import { tempDir } from '../store/helpers.js';
import { openStore } from '../../src/store/index.js';
import { aligned, captureIo, commands, expectCode, makeEnrollDir, photo, runJson, sharedPipeline, writeNonFaces } from './helpers.js';

const repoRoot = join(import.meta.dirname, '../..');
const gallery = (who: string) => readdirSync(join(repoRoot, 'examples/gallery', who)).map((f) => join(repoRoot, 'examples/gallery', who, f));

let shared: Awaited<ReturnType<typeof sharedPipeline>>;
const io = captureIo();
let cmd: ReturnType<typeof commands>;
let dir: string;
let people: string;

beforeAll(async () => {
  shared = await sharedPipeline();
  cmd = commands(io, shared.opener);
  dir = tempDir('enroll-pipe');
  const bad = await writeNonFaces(join(dir, 'bad'));
  // The committed example gallery, a group photo (six faces), a photo without a face, a truncated
  // JPEG, and one photo twice (the second copy is skipped, whichever group it falls in).
  people = makeEnrollDir(join(dir, 'people'), {
    alex_lacamoire: gallery('alex_lacamoire'),
    biden: [...gallery('biden'), photo('biden-400.jpg')],
    kit_harington: gallery('kit_harington'),
    obama: [...gallery('obama'), bad.grey, photo('obama_small.jpg')],
    rose_leslie: gallery('rose_leslie'),
    table: [photo('t1.jpg'), bad.broken],
    zz_copy: [photo('obama_small.jpg')],
  });
}, 60_000);
afterAll(async () => {
  await shared?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every face row as enroll wrote it (no timestamps), in id order, with its identity's external id. */
function faceRows(db: string): unknown[] {
  const sqlite = new Database(db, { readonly: true });
  try {
    return sqlite
      .prepare(
        `select f.id, i.external_id, f.photo_path, f.photo_hash, f.box, f.keypoints, f.quality, hex(f.embedding) as embedding
         from faces f join identities i on i.id = f.identity_id order by f.id`,
      )
      .all();
  } finally {
    sqlite.close();
  }
}

describe('facesInPhotos (the server batches concurrent photos through it)', () => {
  it('finds in several photos at once exactly the faces each gives alone; a broken photo gives its error', async () => {
    const { pipeline } = await shared.opener({ backend: 'wasm', note: () => undefined });
    const photos = [readFileSync(photo('t1.jpg')), readFileSync(photo('obama_small.jpg')), readFileSync(photo('biden-400.jpg')).subarray(0, 300), readFileSync(photo('biden-400.jpg'))];
    const together = await pipeline.facesInPhotos(photos);
    expect(together.map((r) => (r instanceof Error ? -1 : r.length))).toEqual([6, 1, -1, 1]);
    expect(together[2]).toMatchObject({ code: 'BAD_IMAGE' });
    for (const i of [0, 1, 3]) expect(together[i]).toEqual(await pipeline.facesInPhoto(photos[i]!));
  }, 60_000);
});

describe('cosface enroll, pipelined and photo by photo', () => {
  it('enrolls the same faces, rows and report in both schedules, whatever the group size', async () => {
    const runs: { s: EnrollSummary; rows: unknown[] }[] = [];
    for (const [name, flags] of [
      ['seq', ['--pipeline', 'off']],
      ['pipe3', ['--pipeline', 'on', '--batch', '3']],
    ] as const) {
      const db = join(dir, `${name}.db`);
      const s = await runJson<EnrollSummary>(io, cmd.enroll, [people, '--gallery', 'g', '--db', db, ...flags]);
      runs.push({ s, rows: faceRows(db) });
    }
    const [seq, pipe] = runs as [(typeof runs)[0], (typeof runs)[0]];
    expect(seq.s.photos).toBe(15);
    expect(seq.s.added).toBe(12); // 9 gallery photos, biden-400, t1 (its largest face), obama_small once
    expect(seq.s.skipped).toBe(1);
    expect(seq.s.noFace).toHaveLength(1);
    expect(seq.s.badImages.map((b) => b.code)).toEqual(['BAD_IMAGE']);
    expect(seq.s.multipleFaces).toEqual([{ photo: join(people, 'table', 't1.jpg'), faces: 6 }]);
    expect(seq.rows).toHaveLength(12);
    expect(pipe.rows).toEqual(seq.rows);
    const { stats: seqStats, db: _a, ...seqRest } = seq.s;
    const { stats: pipeStats, db: _b, ...pipeRest } = pipe.s;
    expect(pipeRest).toEqual(seqRest);
    expect(seqStats!.schedule).toBe('sequential');
    expect(pipeStats!.schedule).toBe('pipelined');
    expect(pipeStats!.batch).toBe(3);
    expect(seqStats!.facesFound).toBe(pipeStats!.facesFound);
    for (const st of [seqStats!, pipeStats!]) {
      expect(st.stages.map((x) => x.stage)).toEqual(expect.arrayContaining(['read', 'decode', 'open', 'detect', 'landmarks', 'align', 'embed', 'write', 'index']));
      for (const x of st.stages) expect(x.ms).toBeGreaterThanOrEqual(0);
      expect(st.photosPerSec).toBeGreaterThan(0);
    }
    // Photo by photo, one stage runs at a time: the stages never add up to more than the run.
    expect(seqStats!.stages.reduce((a, x) => a + x.share, 0)).toBeLessThanOrEqual(1.0001);
  }, 60_000);

  it('prints the speed and stage split with --stats; rejects a bad --pipeline or --batch before writing', async () => {
    // A second run over the gallery the first test filled: only the two photos without a face are
    // decoded and run (the grey square reaches the detector; the truncated JPEG fails to decode).
    io.clear();
    await cmd.enroll([people, '--gallery', 'g', '--db', join(dir, 'pipe3.db'), '--stats', '--quiet']);
    expect(io.stdout).toMatch(/skipped: 13 already enrolled/);
    expect(io.stdout).toMatch(/speed: [\d.]+ photos\/s, 0\.00 faces\/s .*pipelined, 8 photos per network call/);
    expect(io.stdout).toMatch(/^ {2}detect +[\d.]+ s +[\d.]+%$/m);
    expect(io.stdout).not.toMatch(/^ {2}embed/m);
    await expectCode(cmd.enroll, [people, '--gallery', 'g', '--db', join(dir, 'x.db'), '--pipeline', 'maybe'], 'BAD_INPUT');
    await expectCode(cmd.enroll, [people, '--gallery', 'g', '--db', join(dir, 'x.db'), '--batch', '0'], 'BAD_INPUT');
    expect(existsSync(join(dir, 'x.db'))).toBe(false);
  }, 60_000);

  it("creates a photo's new identity in the transaction of its face: refused (MIGRATING), neither is written", async () => {
    const db = join(dir, 'pipe3.db');
    const store = await openStore(db);
    try {
      await store.beginMigration('g', { modelId: 'new', dimension: 256 }, { owner: 'test' });
    } finally {
      await store.close();
    }
    const more = makeEnrollDir(join(dir, 'more'), { brody: [aligned('Adrien_Brody_0002.png')], sorkin: [aligned('Aaron_Sorkin_0001.png')] });
    // Pipelined one photo per group: the first group's write fails while the second group runs.
    for (const flags of [['--pipeline', 'on', '--batch', '1'], ['--pipeline', 'off']]) await expectCode(cmd.enroll, [more, '--gallery', 'g', '--db', db, ...flags, '--quiet'], 'MIGRATING');
    const after = await openStore(db);
    try {
      expect((await after.getGallery('g')).identities).toBe(6);
      for (const who of ['brody', 'sorkin']) await expect(after.getIdentity('g', who)).rejects.toMatchObject({ code: 'IDENTITY_NOT_FOUND' });
    } finally {
      await after.close();
    }
  }, 60_000);
});
