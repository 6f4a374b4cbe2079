// The edge store (SqliteMeta + ExactScanIndex on the in-process WASM kernels), driven here
// through drizzle's better-sqlite3 driver (synchronous like bun-sqlite and durable-sqlite), against
// the Node store (SqliteMeta + hnswlib): same answers, same error codes, same database format in
// both directions, and deletes and restarts that stick.
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWasmModule } from '../../src/backend/wasm/wasm-kernels.js';
import * as schema from '../../src/db/schema.js';
import { isCosfaceError } from '../../src/errors.js';
import { openEdgeStore, type EdgeStore } from '../../src/store/edge/open-edge-store.js';
import type { SyncSqliteDb } from '../../src/store/sqlite/sqlite-meta.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { mulberry32 } from '../helpers/fixtures.js';
import { gaussian } from '../../src/random.js';
import { tempDir } from './helpers.js';

const DIM = 128;

function openEdge(path: string, storage: 'f32' | 'int8' = 'f32'): EdgeStore {
  const sqlite = new Database(path);
  const db = drizzle(sqlite, { schema }) as unknown as SyncSqliteDb;
  return openEdgeStore(db, { wasm: loadWasmModule('simd'), location: path, storage, closeDb: () => sqlite.close() });
}

/** persons x 2 enrolled templates near a centre each, and one probe per person. */
function people(persons: number, seed: number) {
  const rnd = mulberry32(seed);
  const gauss = gaussian(rnd);
  const centres = Array.from({ length: persons }, () => Float32Array.from({ length: DIM }, gauss));
  const near = (c: Float32Array) => Array.from(c, (x) => x + 0.6 * gauss());
  return { templates: centres.map((c) => [near(c), near(c)]), probes: centres.map(near) };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isCosfaceError(e) ? e.code : `other: ${(e as Error).message}`;
  }
}

describe('edge store (exact scan, synchronous drizzle SQLite)', () => {
  const dir = tempDir('edge-store');
  const data = people(400, 3);
  let node: Store;
  let edge: EdgeStore;

  beforeAll(async () => {
    node = await openStore(join(dir, 'node.db'), { synchronous: 'normal', exactBelow: 100 });
    edge = openEdge(join(dir, 'edge.db'));
    for (const s of [node, edge.store]) {
      await s.createGallery('g', { modelId: 'm', dimension: DIM });
      for (let p = 0; p < data.templates.length; p++) await s.addIdentity('g', { externalId: `p${p}` });
      await s.addFaces('g', data.templates.flatMap((t, p) => t.map((embedding) => ({ identity: `p${p}`, face: { embedding } }))));
    }
  }, 120_000);
  afterAll(async () => {
    await node?.close();
    await edge?.store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('identifies every probe as the Node store does (hnswlib there, exact scan here): same top-1, scores within 1e-5', async () => {
    let differ = 0;
    for (let p = 0; p < data.probes.length; p++) {
      const a = await node.identify('g', data.probes[p]!, { k: 3 });
      const b = await edge.store.identify('g', data.probes[p]!, { k: 3 });
      expect(a.method).toBe('hnsw');
      expect(b.method).toBe('exact');
      if (a.candidates[0]!.identity !== b.candidates[0]!.identity) differ++;
      expect(Math.abs(a.candidates[0]!.score - b.candidates[0]!.score)).toBeLessThanOrEqual(1e-5);
    }
    expect(differ).toBe(0);
  });

  it('gives the same error codes as the Node store for bad input', async () => {
    const cases: [string, (s: Store) => Promise<unknown>][] = [
      ['wrong length', (s) => s.identify('g', [1, 2, 3])],
      ['NaN', (s) => s.identify('g', Array.from({ length: DIM }, () => NaN))],
      ['zero', (s) => s.addFace('g', 'p0', { embedding: new Array(DIM).fill(0) })],
      ['unknown gallery', (s) => s.identify('nope', data.probes[0]!)],
      ['unknown identity', (s) => s.addFace('g', 'nobody', { embedding: data.probes[0]! })],
      ['duplicate identity', (s) => s.addIdentity('g', { externalId: 'p1' })],
      ['duplicate gallery', (s) => s.createGallery('g', { modelId: 'm', dimension: DIM })],
      ['uncalibrated far', (s) => s.identify('g', data.probes[0]!, { far: 0.001 })],
      ['bad k', (s) => s.identify('g', data.probes[0]!, { k: 0 })],
      ['unknown face', (s) => s.deleteFace('g', 987654)],
      ['empty batch', (s) => s.addFaces('g', [])],
    ];
    for (const [name, f] of cases) expect(await codeOf(f(edge.store)), name).toBe(await codeOf(f(node)));
  });

  it('deletes take effect at once and survive a reopen; a Node store opens the edge database and answers the same', async () => {
    const probe = data.probes[10]!;
    const before = await edge.store.identify('g', probe, { k: 1 });
    expect(before.candidates[0]!.identity).toBe('p10');
    await edge.store.deleteIdentity('g', 'p10');
    expect((await edge.store.identify('g', probe, { k: 5 })).candidates.map((c) => c.identity)).not.toContain('p10');
    await edge.store.close();
    edge = openEdge(join(dir, 'edge.db'));
    expect(edge.migrated).toEqual([]);
    const after = await edge.store.identify('g', probe, { k: 5 });
    expect(after.candidates.map((c) => c.identity)).not.toContain('p10');
    await edge.store.close();
    const asNode = await openStore(join(dir, 'edge.db'), { indexDir: null });
    const viaNode = await asNode.identify('g', probe, { k: 5, exact: true });
    expect(viaNode.candidates.map((c) => c.identity)).toEqual(after.candidates.map((c) => c.identity));
    await asNode.close();
    edge = openEdge(join(dir, 'edge.db'));
  });

  it('an edge store opens a database the Node store wrote, and int8 storage gives the same top-1 after the exact re-score', async () => {
    await node.checkpoint();
    const int8 = openEdge(join(dir, 'node.db'), 'int8');
    expect(int8.migrated).toEqual([]);
    for (let p = 1; p < data.probes.length; p += 3) {
      const a = await node.identify('g', data.probes[p]!, { k: 1, exact: true });
      const b = await int8.store.identify('g', data.probes[p]!, { k: 1 });
      expect(b.candidates[0]!.identity).toBe(a.candidates[0]!.identity);
      expect(Math.abs(a.candidates[0]!.score - b.candidates[0]!.score)).toBeLessThanOrEqual(1e-5);
    }
    await int8.store.close();
  });
});
