// The store commands as a user runs them: the real `cosface` process (the command table in
// src/commands/index.ts), real files, JSON on stdout, "error CODE: message" and exit code 2.
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';
import { dbFingerprint, tempDir } from '../store/helpers.js';
import { aligned, makeEnrollDir } from './helpers.js';

const run = promisify(execFile);
const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
const cli = path.join(repoRoot, 'src/cli.ts');

async function cosface(args: string[], cwd = repoRoot, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(tsx, [cli, ...args], { cwd, maxBuffer: 16 << 20, env: { ...process.env, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const dir = tempDir('cli');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const backend = ['--backend', 'wasm', '--workers', '2'];

describe('cosface store commands (a real process)', () => {
  it('enroll creates ./cosface.db in the working directory by default; identify answers from it in JSON', async () => {
    makeEnrollDir(path.join(dir, 'people'), { brody: [aligned('Adrien_Brody_0002.png')], sorkin: [aligned('Aaron_Sorkin_0001.png')] });
    const e = await cosface(['enroll', 'people', '--gallery', 'g', '--json', ...backend], dir);
    expect(e.code).toBe(0);
    expect(JSON.parse(e.stdout)).toMatchObject({ added: 2, identitiesAdded: 2, createdGallery: true, db: path.join(dir, 'cosface.db') });
    expect(e.stderr).toMatch(/enrolling \[#+\] 2\/2 100%/);
    expect(existsSync(path.join(dir, 'cosface.db'))).toBe(true);

    const i = await cosface(['identify', aligned('Adrien_Brody_0003.png'), '--gallery', 'g', '--threshold', '0.3', '--json', ...backend], dir);
    expect(i.code).toBe(0);
    const body = JSON.parse(i.stdout) as { faces: { box: number[]; candidates: { identity: string; score: number }[]; match: string | null }[] };
    expect(body.faces).toHaveLength(1);
    expect(Object.keys(body.faces[0]!).sort()).toEqual(['box', 'candidates', 'match']);
    expect(body.faces[0]!.match).toBe('brody');
    expect(body.faces[0]!.candidates.map((c) => c.identity)).toEqual(['brody', 'sorkin']);
  }, 60_000);

  it('errors print "error CODE: message", exit 2 and leave the database as it was', async () => {
    const db = path.join(dir, 'cosface.db');
    const before = dbFingerprint(db);
    const r = await cosface(['identify', aligned('Adrien_Brody_0003.png'), '--gallery', 'nobody', '--db', db, ...backend]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error GALLERY_NOT_FOUND: gallery "nobody" not found/m);
    const s = await cosface(['gallery', 'stats', 'g', '--db', db]);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/gallery "g": 2 identities, 2 faces/);
    expect(dbFingerprint(db)).toBe(before);
    const h = await cosface(['--help']);
    expect(h.stdout).toMatch(/cosface enroll <dir> --gallery <name>/);
  }, 60_000);

  it('COSFACE_DB chooses the store: an embedded Postgres (pglite:<dir>) is created, migrated and answers the same errors', async () => {
    const pgDir = path.join(dir, 'pg');
    const env = { COSFACE_DB: `pglite:${pgDir}` };
    const k = await cosface(['keys', 'create', '--name', 'ci', '--json'], dir, env);
    expect(k.code).toBe(0);
    expect(JSON.parse(k.stdout)).toMatchObject({ id: 1, name: 'ci', gallery: null });
    expect(existsSync(pgDir)).toBe(true);
    const r = await cosface(['identify', aligned('Adrien_Brody_0003.png'), '--gallery', 'nobody', ...backend], dir, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error GALLERY_NOT_FOUND: gallery "nobody" not found/m);
  }, 60_000);
});
