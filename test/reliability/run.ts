// `npm run reliability`: the full reliability suite, the same code as the short run inside
// `npm test` (test/reliability/reliability.test.ts) with the full counts. Prints each check's
// numbers and exits non-zero on any lost write, half-written request, index disagreement, 5xx
// or bad-input case that did not give its documented code with the data unchanged.
//   npm run reliability -- [--kills 100] [--snapshot-kills 10] [--delete-kills 10] [--seed 1]
//                          [--big 20000] [--clients 6] [--skip-pack] [--json out.json]
import { rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { casesTable, runBadInputMatrix } from './bad-input.js';
import { crashProblems, runCrashSuite } from './crash.js';
import { assertBuilt, repoRoot, tempDir } from './harness.js';
import { runBusy, runTwoWriters } from './two-writers.js';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '100' },
    'snapshot-kills': { type: 'string', default: '10' },
    'delete-kills': { type: 'string', default: '10' },
    big: { type: 'string', default: '20000' },
    clients: { type: 'string', default: '6' },
    seed: { type: 'string', default: '1' },
    'skip-pack': { type: 'boolean' },
    json: { type: 'string' },
    table: { type: 'boolean' },
  },
});
assertBuilt();
const t0 = performance.now();
const say = (l: string) => process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${l}\n`);
const dirs: string[] = [];
const dir = (p: string) => {
  const d = tempDir(p);
  dirs.push(d);
  return d;
};
let failed = 0;
const summary: Record<string, unknown> = { loadAtStart: loadavg()[0] };

try {
  say(`crash safety: ${values.kills} kills under load, ${values['snapshot-kills']} during snapshot writes, ${values['delete-kills']} during gallery deletes`);
  const crash = await runCrashSuite({
    dir: dir('crash'),
    kills: Number(values.kills),
    snapshotKills: Number(values['snapshot-kills']),
    deleteKills: Number(values['delete-kills']),
    bigGalleryFaces: Number(values.big),
    doomedFaces: 5000,
    clients: Number(values.clients),
    seed: Number(values.seed),
    log: say,
  });
  summary.crash = crash;
  const problems = crashProblems(crash);
  failed += problems;
  say(
    `crash safety: ${crash.kills} kills under load + ${crash.snapshotKills} during snapshot writes (${crash.snapshotKillsMidWrite} left a half-written snapshot) + ${crash.deleteKills} during gallery deletes (${crash.deleteKillsBeforeAnswer} before the answer); ` +
      `${crash.ackedFaces} acknowledged faces (${crash.photoFaces} by photo), ${crash.ackedDeletes} acknowledged deletes, ${crash.unackedRequests} requests failed or cut off; ` +
      `lost faces ${crash.lostFaces.length}, lost deletes ${crash.lostDeletes.length}, half-written requests ${crash.halfWritten.length}, index/database disagreements ${crash.disagreements.length}, search misses ${crash.searchMisses.length}, 5xx ${crash.serverErrors.length}; answers ${JSON.stringify(crash.statuses)}`,
  );
  for (const p of [...crash.lostFaces, ...crash.lostDeletes, ...crash.halfWritten, ...crash.disagreements, ...crash.searchMisses, ...crash.serverErrors].slice(0, 20)) say(`  PROBLEM ${p}`);

  say('bad-input matrix over HTTP and the CLI');
  const bad = await runBadInputMatrix({ dir: dir('bad'), cli: 'all' });
  summary.badInput = bad;
  const badFailed = bad.filter((r) => !r.ok || !r.unchanged);
  failed += badFailed.length;
  say(`bad input: ${bad.length} cases (${bad.filter((r) => r.surface === 'HTTP').length} HTTP, ${bad.filter((r) => r.surface === 'CLI').length} CLI): ${bad.length - badFailed.length} gave their documented code with the database unchanged`);
  for (const r of badFailed) say(`  PROBLEM ${r.surface} ${r.name}: expected ${r.expected}, got ${r.got}${r.unchanged ? '' : ', database changed'}`);
  if (values.table) process.stdout.write(`\n${casesTable(bad)}\n\n`);

  say('two writers: cosface enroll beside cosface serve on one database');
  const two = await runTwoWriters({ dir: dir('two'), log: say });
  summary.twoWriters = two;
  const twoProblems = (two.cli.code === 0 || two.cli.error?.startsWith('BUSY') ? 0 : 1) + two.lost.length + two.serverMisses.length + (two.consistency.ok ? 0 : 1) + Object.keys(two.httpStatuses).filter((s) => Number(s) >= 500 && s !== '503').length;
  failed += twoProblems;
  say(`two writers: CLI exit ${two.cli.code} (${two.cli.added ?? 0} faces), ${two.httpAcked} HTTP enrollments acknowledged, lost ${two.lost.length}, CLI faces the server missed ${two.serverMisses.length}, index ${two.consistency.ok ? 'agrees' : 'DISAGREES'}`);
  const busy = await runBusy({ dir: dir('busy'), log: say });
  summary.busy = busy;
  const busyOk = busy.http.status === 503 && busy.http.code === 'BUSY' && busy.cli.code === 2 && busy.cli.error === 'BUSY' && busy.afterRelease.http === 201 && busy.afterRelease.cli === 0 && busy.unchanged;
  if (!busyOk) failed++;
  say(`write lock held past the busy timeout: HTTP ${busy.http.status} ${busy.http.code}, CLI exit ${busy.cli.code} ${busy.cli.error}, database ${busy.unchanged ? 'unchanged' : 'CHANGED'}; after release HTTP ${busy.afterRelease.http}, CLI exit ${busy.afterRelease.cli}`);

  if (!values['skip-pack']) {
    say('npm pack + offline install with the dependencies\' real install scripts');
    // @ts-expect-error: a plain .mjs script without types
    const { packAndInstall } = (await import('../../scripts/reliability/pack-install.mjs')) as { packAndInstall: (o: object) => { project: string; seconds: { pack: number; install: number } } };
    const { execFileSync } = await import('node:child_process');
    const p = packAndInstall({ repo: repoRoot, dir: dir('pack'), scripts: 'real' });
    const help = execFileSync('npx', ['cosface', '--help'], { cwd: p.project, env: { ...process.env, npm_config_offline: 'true' }, encoding: 'utf8' });
    const info = execFileSync('npx', ['cosface', 'info', '--json'], { cwd: p.project, env: { ...process.env, npm_config_offline: 'true' }, encoding: 'utf8' });
    const ok = /^cosface: face embeddings/.test(help) && (JSON.parse(info) as { version: string }).version.length > 0;
    if (!ok) failed++;
    say(`pack ${p.seconds.pack.toFixed(1)} s, install ${p.seconds.install.toFixed(1)} s; npx cosface --help ${ok ? 'ok' : 'FAILED'}; info ${info.trim()}`);
  }
} catch (e) {
  failed++;
  say(`ERROR ${(e as Error).stack ?? String(e)}`);
} finally {
  summary.loadAtEnd = loadavg()[0];
  summary.seconds = (performance.now() - t0) / 1000;
  if (values.json) writeFileSync(values.json, JSON.stringify(summary, null, 2));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
say(`${failed === 0 ? 'PASS' : `FAIL (${failed} problems)`} in ${((performance.now() - t0) / 1000).toFixed(0)} s (load average ${(summary.loadAtStart as number).toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end)`);
process.exit(failed === 0 ? 0 : 1);
