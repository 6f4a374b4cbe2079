// The package as a user gets it: `npm pack`, installed from the tarball into an empty project
// offline, then the `cosface` bin run through npx and through node_modules/.bin (a symlink to
// dist/src/cli.js, which is how npm links every bin). The README's first command for npm users
// (enroll the shipped examples, identify a probe) runs from the installed package.
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';
import { tempDir } from '../store/helpers.js';
// @ts-expect-error: a plain .mjs script without types
import { packAndInstall } from '../../scripts/reliability/pack-install.mjs';

const exec = promisify(execFile);
const dir = tempDir('pack');
let project = '';
let files: string[] = [];

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // npm_config_offline: npx must take cosface from the project, never look it up in a registry.
    const r = await exec(cmd, args, { cwd: project, env: { ...process.env, npm_config_offline: 'true', COSFACE_WEBGPU: undefined }, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(() => {
  const r = packAndInstall({ repo: repoRoot, dir, scripts: process.env.COSFACE_PACK_INSTALL_SCRIPTS === 'real' ? 'real' : 'copy' }) as { project: string; files: string[] };
  project = r.project;
  files = r.files;
}, 300_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm pack, install the tarball offline, run the bin', () => {
  it('ships what the installed command needs, and no tests or sources', () => {
    for (const f of ['dist/src/cli.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/backend/wasm/wasm-worker.js', 'build/cosface.wasm', 'build/cosface-relaxed.wasm',
      'models/mobilefacenet-arcface.tflite', 'models/blazeface-back.json', 'models/facemesh.bin', 'migrations/sqlite/0000_init.sql', 'migrations/sqlite/meta/_journal.json', 'migrations/pg/0001_init.sql',
      'examples/probes/kit_with_rose.jpg', 'README.md', 'package.json', 'scripts/hnswlib-avx2.mjs', 'scripts/hnswlib-patches.mjs',
      'dist/web/index.html', 'dist/web/app.js', 'dist/web/cosface.js', 'dist/web/wasm-worker.js', 'dist/web/style.css']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('src/') || (f.startsWith('dist/src/') && f.endsWith('.map')))).toEqual([]);
  });

  it('npx cosface --help and node_modules/.bin/cosface --help print the usage', async () => {
    const npx = await run('npx', ['cosface', '--help']);
    expect(npx.code).toBe(0);
    expect(npx.stdout).toMatch(/^cosface: face embeddings/);
    expect(npx.stdout).toMatch(/cosface enroll <dir> --gallery <name>/);
    // One spelling, the README's: `eval orl`, `bench search` (the hyphenated aliases still run, unlisted).
    expect(npx.stdout).toMatch(/cosface eval orl --data/);
    expect(npx.stdout).toMatch(/cosface bench search \[--sizes/);
    expect(npx.stdout).not.toMatch(/eval-orl|bench-search/);
    const bin = await run(path.join(project, 'node_modules/.bin/cosface'), ['--help']);
    expect(bin.code).toBe(0);
    expect(bin.stdout).toBe(npx.stdout);
  }, 60_000);

  it('cosface info names the version and a working backend, with nothing on stderr', async () => {
    const r = await run('npx', ['cosface', 'info', '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { version: string; backend: string };
    expect(info.version).toBe('0.1.0');
    expect(['wasm', 'webgpu']).toContain(info.backend);
    expect(r.stderr).toBe(''); // no Dawn notices either (src/backend/webgpu/device.ts, probeAdapter)
  }, 60_000);

  it("the README's first command for npm users: enroll the shipped examples, identify Kit and Rose", async () => {
    const ex = 'node_modules/cosface/examples';
    const e = await run('npx', ['cosface', 'enroll', `${ex}/gallery`, '--gallery', 'demo', '--backend', 'wasm', '--json']);
    expect(e.stderr).not.toMatch(/error/);
    expect(e.code).toBe(0);
    expect(JSON.parse(e.stdout)).toMatchObject({ identitiesAdded: 5, db: path.join(project, 'cosface.db') });
    const i = await run('npx', ['cosface', 'identify', `${ex}/probes/kit_with_rose.jpg`, '--gallery', 'demo', '--threshold', '0.3', '--backend', 'wasm', '--json']);
    expect(i.code).toBe(0);
    const body = JSON.parse(i.stdout) as { faces: { match: string | null }[] };
    expect(body.faces.map((f) => f.match).sort()).toEqual(['kit_harington', 'rose_leslie']);
  }, 120_000);
});
