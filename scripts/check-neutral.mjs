// Walks the import graph of runtime-neutral entry modules (bundling them with esbuild for the
// neutral platform) and reports every import of a Node built-in (`node:*`, `fs`, ...) or a native
// addon, with the chain of imports that reaches it. `node scripts/check-neutral.mjs [entry...]`
// exits 1 when there is any; test/edge/neutral-imports.test.ts runs it on the app.
import { builtinModules } from 'node:module';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const NATIVE_PACKAGES = ['better-sqlite3', 'hnswlib-node', 'sharp', 'webgpu', 'onnxruntime-node', 'bindings', 'node-gyp-build'];
const root = resolve(fileURLToPath(import.meta.url), '../..');
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Every forbidden import reachable from the entries: { module, chain: [entry, ..., importer] }. */
export async function forbiddenImports(entries) {
  const parents = new Map(); // file -> importer that first reached it
  const hits = [];
  const plugin = {
    name: 'neutral-check',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind === 'entry-point' || args.pluginData === 'inner') return undefined;
        const p = args.path;
        const pkg = p.startsWith('@') ? p.split('/').slice(0, 2).join('/') : p.split('/')[0];
        if (p.startsWith('node:') || builtins.has(p) || NATIVE_PACKAGES.includes(pkg) || p.endsWith('.node')) {
          hits.push({ module: p, importer: args.importer });
          return { path: p, external: true };
        }
        // Other runtimes' own modules (cloudflare:sockets) are not Node's: leave them out.
        if (/^[a-z]+:/.test(p) && !p.startsWith('node:')) return { path: p, external: true };
        const r = await build.resolve(p, { resolveDir: args.resolveDir, kind: args.kind, importer: args.importer, pluginData: 'inner' });
        // An optional dependency that is not installed (pg-native) cannot be in the graph.
        if (r.errors.length > 0) return { path: p, external: true };
        if (r.path && !parents.has(r.path)) parents.set(r.path, args.importer);
        return r;
      });
    },
  };
  await esbuild.build({
    entryPoints: entries,
    bundle: true,
    write: false,
    platform: 'neutral',
    format: 'esm',
    mainFields: ['module', 'main'],
    conditions: ['workerd', 'worker', 'browser', 'import'],
    loader: { '.wasm': 'binary' },
    outdir: '/tmp/neutral-check',
    logLevel: 'silent',
    plugins: [plugin],
  });
  return hits.map((h) => {
    const chain = [];
    for (let f = h.importer; f; f = parents.get(f)) chain.unshift(relative(root, f));
    return { module: h.module, chain };
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const entries = process.argv.slice(2);
  const hits = await forbiddenImports(entries.length ? entries : ['src/server/app.ts']);
  for (const h of hits) console.log(`${h.module}  <-  ${h.chain.join('  <-  ')}`);
  console.log(hits.length === 0 ? 'runtime-neutral: no Node built-ins or native addons' : `${hits.length} forbidden imports`);
  process.exit(hits.length === 0 ? 0 : 1);
}
