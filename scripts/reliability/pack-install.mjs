// Packs cosface as `npm publish` would (`npm pack`) and installs the tarball into an empty project
// OFFLINE, the way a user's `npm install cosface` lays it out (node_modules/cosface, the bin
// symlinked into node_modules/.bin). Used by test/install/pack-install.test.ts and by
// `npm run reliability`.
//
// Offline: a project without a lockfile needs every dependency's registry metadata, which
// `npm ci` never caches; so the project gets a lockfile made from ours (the production part of
// the tree, the tarball as the one new entry), and `npm ci --offline` takes every package from the
// npm cache by its integrity.
//
// scripts: 'real' runs the dependencies' install scripts (better-sqlite3 and hnswlib-node compile
// from source: about 80 s on 2 busy cores); 'copy' skips them and copies the compiled addons from
// our own node_modules (same versions, built by our `npm ci` with the same scripts), which keeps
// the check that runs inside `npm test` at a few seconds.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const NATIVE_BUILDS = ['better-sqlite3/build', 'hnswlib-node/build'];

/** @returns {{ project: string, tarball: string, files: string[], seconds: { pack: number, install: number } }} */
export function packAndInstall({ repo, dir, scripts = 'copy' }) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const env = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
  mkdirSync(dir, { recursive: true });
  let t = performance.now();
  // --ignore-scripts: `prepare` would rebuild everything; dist/ and build/ are already built.
  const packed = JSON.parse(execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: repo, env, encoding: 'utf8' }));
  const pack = (performance.now() - t) / 1000;
  const tarball = path.join(dir, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);

  const project = path.join(dir, 'project');
  mkdirSync(project, { recursive: true });
  const lock = JSON.parse(readFileSync(path.join(repo, 'package-lock.json'), 'utf8'));
  const root = lock.packages[''];
  const spec = `file:${path.relative(project, tarball)}`;
  const packages = {
    '': { name: 'pack-install', version: '1.0.0', dependencies: { cosface: spec } },
    'node_modules/cosface': { version: root.version, resolved: spec, license: root.license, dependencies: root.dependencies, bin: root.bin, engines: root.engines },
  };
  for (const [k, v] of Object.entries(lock.packages)) {
    if (k === '' || v.dev || v.devOptional || v.link || !k.startsWith('node_modules/')) continue;
    packages[k] = v;
  }
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'pack-install', version: '1.0.0', private: true, dependencies: { cosface: spec } }, null, 2));
  writeFileSync(path.join(project, 'package-lock.json'), JSON.stringify({ name: 'pack-install', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));

  t = performance.now();
  execFileSync(npm, ['ci', '--offline', ...(scripts === 'real' ? [] : ['--ignore-scripts'])], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (scripts !== 'real') {
    for (const b of NATIVE_BUILDS) {
      const from = path.join(repo, 'node_modules', b);
      if (!existsSync(from)) throw new Error(`pack-install: ${from} missing (run npm ci first)`);
      cpSync(from, path.join(project, 'node_modules', b), { recursive: true });
    }
  }
  const install = (performance.now() - t) / 1000;
  return { project, tarball, files, seconds: { pack, install } };
}

/** Every file under dir, relative, '/'-separated. */
export function listFiles(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(p, base) : [path.relative(base, p).split(path.sep).join('/')];
  });
}
