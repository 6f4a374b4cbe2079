// The short run of the reliability suite (`npm run reliability` is the long one, with the same code):
// a real `cosface serve` killed with SIGKILL under concurrent HTTP load, during an index snapshot
// write and during a gallery delete; the bad-input matrix over HTTP and the CLI.
// Uses the built CLI (dist/src/cli.js), as a user runs it.
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runBadInputMatrix } from './bad-input.js';
import { crashProblems, runCrashSuite } from './crash.js';
import { assertBuilt, tempDir } from './harness.js';
import { runBusy, runTwoWriters } from './two-writers.js';

const dirs: string[] = [];
const dir = (p: string) => {
  const d = tempDir(p);
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
assertBuilt();

describe('reliability (short run; npm run reliability for the full one)', () => {
  it('5 SIGKILLs under concurrent enrollment, 1 during a snapshot write, 1 during a gallery delete: nothing acknowledged lost, nothing half written, index agrees', async () => {
    const r = await runCrashSuite({ dir: dir('crash'), kills: 5, snapshotKills: 1, deleteKills: 1, bigGalleryFaces: 2000, doomedFaces: 500, clients: 4, seed: 12 });
    expect(r.kills).toBe(5);
    expect(r.ackedFaces).toBeGreaterThan(20);
    expect({ lost: r.lostFaces, lostDeletes: r.lostDeletes, half: r.halfWritten, disagreements: r.disagreements, searchMisses: r.searchMisses, serverErrors: r.serverErrors }).toEqual({
      lost: [],
      lostDeletes: [],
      half: [],
      disagreements: [],
      searchMisses: [],
      serverErrors: [],
    });
    expect(crashProblems(r)).toBe(0);
    // The aimed snapshot kill lands inside the write (a temporary file is left behind).
    expect(r.snapshotKillsMidWrite).toBeGreaterThanOrEqual(1);
  }, 240_000);

  it('every bad input gets its documented status and code, and the database is unchanged', async () => {
    const results = await runBadInputMatrix({ dir: dir('bad'), cli: 'short' });
    expect(results.length).toBeGreaterThan(38);
    expect(results.filter((r) => !r.ok || !r.unchanged)).toEqual([]);
  }, 240_000);

  it('two writers: a CLI enroll while the server takes enrollments into the same gallery; both finish, nothing lost, the server sees the CLI\'s faces at once', async () => {
    const r = await runTwoWriters({ dir: dir('two') });
    expect(r.cli).toMatchObject({ code: 0, added: 9 });
    expect(r.httpAcked).toBeGreaterThan(5);
    expect(Object.keys(r.httpStatuses).sort()).toEqual(['200', '201']);
    expect(r.lost).toEqual([]);
    expect(r.serverMisses).toEqual([]);
    expect(r.consistency.ok).toBe(true);
  }, 240_000);

  it('a write lock held past the busy timeout: HTTP 503 BUSY, CLI exit 2 BUSY, nothing written; both work once it is released', async () => {
    const r = await runBusy({ dir: dir('busy') });
    expect(r).toEqual({ http: { status: 503, code: 'BUSY' }, cli: { code: 2, error: 'BUSY' }, afterRelease: { http: 201, cli: 0 }, unchanged: true });
  }, 240_000);
});
