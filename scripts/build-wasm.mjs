// Builds the AssemblyScript kernels (assembly/ -> build/) with asc: the release target
// (build/cosface.wasm, 128-bit SIMD) and the relaxed target (build/cosface-relaxed.wasm, SIMD plus
// relaxed-SIMD fused multiply-add, used where the runtime validates it: Node >= 22, or Node 20
// with --experimental-wasm-relaxed-simd), and both again over an imported shared memory
// (build/cosface-shared.wasm, build/cosface-relaxed-shared.wasm: several workers running one face
// layer by layer: runPart in src/backend/wasm/wasm-runner.ts). Runs on `npm ci` (through `prepare`), so a fresh clone
// has the WASM backend.
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
for (const target of ['release', 'relaxed', 'shared', 'relaxed-shared']) {
  execFileSync(process.execPath, [asc, 'assembly/index.ts', '--target', target], { cwd: root, stdio: 'inherit' });
}
