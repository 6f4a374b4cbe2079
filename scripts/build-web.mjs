// Bundles the browser build with esbuild into dist/web/ (at `npm run build`, never at request time):
// cosface.js (the library: src/web/index.ts), wasm-worker.js (the WASM backend's Web Worker), app.js
// (the page at /app, which imports ./cosface.js like any user would) and the page's static files.
// Node-only modules must not reach these bundles: a static `node:` import fails the build.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist/web');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  // Minified, without source maps: what the package ships and the app serves.
  sourcemap: false,
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  // Reached only by dynamic imports on Node paths (device.ts loads Dawn, read-tfjs reads files);
  // a browser never executes them.
  external: ['node:*', 'webgpu'],
};

await build({
  ...common,
  entryPoints: { cosface: path.join(root, 'src/web/index.ts'), 'wasm-worker': path.join(root, 'src/web/wasm-worker.ts') },
  outdir: out,
});

// The page imports the library module at run time instead of a second copy of it.
const libraryAsExternal = {
  name: 'library-as-external',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/index\.js$/ }, () => ({ path: './cosface.js', external: true }));
  },
};
await build({ ...common, entryPoints: { app: path.join(root, 'src/web/page/main.ts') }, outdir: out, plugins: [libraryAsExternal] });

for (const f of ['index.html', 'style.css']) copyFileSync(path.join(root, 'src/web/page', f), path.join(out, f));

for (const f of ['cosface.js', 'wasm-worker.js', 'app.js']) {
  const text = readFileSync(path.join(out, f), 'utf8');
  const m = /(?:^|[;}\s])import\s*[^(][^;]*?from\s*["'](node:[^"']+|sharp|webgpu)["']|(?:^|[;}\s])import\s*["'](node:[^"']+)["']/m.exec(text);
  if (m) throw new Error(`dist/web/${f} statically imports ${m[1] ?? m[2]}: a Node-only module reached the browser build`);
}
