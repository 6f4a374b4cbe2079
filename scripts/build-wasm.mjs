// Builds the AssemblyScript kernels (assembly/ -> build/cosface.wasm) with asc's release target.
// Runs on `npm ci` (through `prepare`), so a fresh clone has the WASM backend.
import { existsSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(path.join(root, 'assembly/index.ts'))) {
  console.log('build-wasm: no assembly/index.ts yet, skipping');
  process.exit(0);
}
mkdirSync(path.join(root, 'build'), { recursive: true });
const asc = path.join(root, 'node_modules/assemblyscript/bin/asc.js');
execFileSync(process.execPath, [asc, 'assembly/index.ts', '--target', 'release'], { cwd: root, stdio: 'inherit' });
