// The app and what the edge runtimes load must not reach a Node built-in or a native addon:
// bundling them for esbuild's neutral platform lists every such import with the chain that pulls it in.
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs script without types
import { forbiddenImports } from '../../scripts/check-neutral.mjs';

// The app, the edge store and server, and the whole workerd entry (its own cloudflare: modules aside).
const ENTRIES = ['src/server/app.ts', 'src/runtime/edge-server.ts', 'src/store/edge/open-edge-store.ts', 'src/runtime/workerd.ts'];

describe('runtime-neutral import graph', () => {
  it('createApp, the edge store and the workerd entry use no node: module and no native addon', async () => {
    const hits = (await forbiddenImports(ENTRIES)) as { module: string; chain: string[] }[];
    expect(hits.map((h) => `${h.module} <- ${h.chain.join(' <- ')}`)).toEqual([]);
  }, 60_000);

  it('the check does see a Node built-in (src/server/server.ts uses @hono/node-server and node:net)', async () => {
    const hits = (await forbiddenImports(['src/server/server.ts'])) as { module: string }[];
    expect(hits.some((h) => h.module.startsWith('node:'))).toBe(true);
    expect(hits.some((h) => h.module === 'better-sqlite3' || h.module === 'hnswlib-node')).toBe(true);
  }, 60_000);
});
