// The edge exact scan with its rows (float32, float16, int8) resident in WASM linear memory (blocks
// of a WasmArena, several galleries in one kernel instance, scanned in place): the arena's blocks
// never overlap and freed room is reused; f32 answers equal an independent brute-force scan after
// adds, replacements and deletes, for several galleries side by side; every storage gives the same
// score bits as the copy-per-call path the index used before (the rows, decoded in JS for f16 and
// int8, copied into linear memory on every call); and through the edge store
// (real SQLite file, real WASM module) several galleries stay right while faces come and go and a
// gallery is dropped.
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WasmArena } from '../../src/backend/wasm/wasm-arena.js';
import { WasmKernels } from '../../src/backend/wasm/wasm-instance.js';
import { loadWasmModule } from '../../src/backend/wasm/wasm-kernels.js';
import { mergeTopK, scoreOnInstance } from '../../src/backend/wasm/wasm-topk.js';
import * as schema from '../../src/db/schema.js';
import { openEdgeStore } from '../../src/store/edge/open-edge-store.js';
import { ExactVectorIndex, type VectorStorage } from '../../src/store/exact-vector-index.js';
import type { SyncSqliteDb } from '../../src/store/sqlite/sqlite-meta.js';
import { mulberry32 } from '../helpers/fixtures.js';
import { gaussian } from '../../src/random.js';
import { tempDir } from './helpers.js';

const module = loadWasmModule('simd');

function randomUnit(rnd: () => number, dim: number): Float32Array {
  const gauss = gaussian(rnd);
  const v = Float32Array.from({ length: dim }, gauss);
  let s = 0;
  for (const x of v) s += x * x;
  for (let i = 0; i < dim; i++) v[i]! /= Math.sqrt(s);
  return v;
}

/** Independent brute force: double-precision dot products, best first, ties to the earlier row. */
function bruteForce(rows: { id: number; v: Float32Array }[], q: Float32Array, k: number): { ids: number[]; scores: number[] } {
  const scored = rows.map((r, row) => {
    let s = 0;
    for (let i = 0; i < q.length; i++) s += r.v[i]! * q[i]!;
    return { id: r.id, row, s };
  });
  scored.sort((a, b) => b.s - a.s || a.row - b.row);
  const top = scored.slice(0, k);
  return { ids: top.map((t) => t.id), scores: top.map((t) => t.s) };
}

/** A gallery kept twice: in an ExactVectorIndex and in a plain list in the index's row order (swap-remove). */
class Mirror {
  readonly rows: { id: number; v: Float32Array }[] = [];
  constructor(readonly idx: ExactVectorIndex) {}
  add(id: number, v: Float32Array): void {
    this.idx.add(id, v);
    const at = this.rows.findIndex((r) => r.id === id);
    if (at >= 0) this.rows[at] = { id, v };
    else this.rows.push({ id, v });
  }
  remove(id: number): void {
    expect(this.idx.remove(id)).toBe(true);
    const at = this.rows.findIndex((r) => r.id === id);
    const last = this.rows.pop()!;
    if (at < this.rows.length) this.rows[at] = last;
  }
  /** The index answers as the brute force does: same ids in the same order, scores within 1e-5. */
  check(queries: Float32Array[], k: number): void {
    expect(this.idx.ids()).toEqual(this.rows.map((r) => r.id));
    for (const q of queries) {
      const got = this.idx.search(q, k);
      const want = bruteForce(this.rows, q, k);
      expect(got.ids).toEqual(want.ids);
      got.scores.forEach((s, i) => expect(Math.abs(s - want.scores[i]!)).toBeLessThanOrEqual(1e-5));
    }
  }
}

describe('WasmArena', () => {
  it('hands out blocks that never overlap, grows the top block in place, and reuses freed room before growing memory', () => {
    const kernels = new WasmKernels(module);
    const arena = WasmArena.of(kernels);
    expect(WasmArena.of(kernels)).toBe(arena);
    const a = arena.alloc(1000);
    const b = arena.alloc(5000);
    const c = arena.alloc(64);
    expect(b).toBeGreaterThanOrEqual(a + 1000);
    expect(c).toBeGreaterThanOrEqual(b + 5000);
    // The top block grows in place; another block moves, keeping its bytes.
    expect(arena.resize(c, 64, 1 << 20, 64)).toBe(c);
    const bytes = new Uint8Array(kernels.k.memory.buffer);
    bytes.fill(7, a, a + 1000);
    const a2 = arena.resize(a, 1000, 8000, 1000);
    expect(a2).toBeGreaterThanOrEqual(c + (1 << 20));
    expect(new Uint8Array(kernels.k.memory.buffer).subarray(a2, a2 + 1000).every((x) => x === 7)).toBe(true);
    // a's old room and b, freed, merge into one block that a new block of their joint size fits.
    arena.release(b, 5000);
    const memory = arena.memoryBytes;
    const d = arena.alloc(5000 + 1000);
    expect(d).toBe(a);
    expect(arena.memoryBytes).toBe(memory);
    // Freeing the top block gives its room back to the allocator: the next block starts there.
    arena.release(a2, 8000);
    expect(kernels.mark()).toBe(a2);
    expect(arena.bytesInUse).toBe(6016 + (1 << 20));
    expect(arena.bytesFree).toBe(64); // what d left of the merged block
  });
});

describe('ExactVectorIndex, rows resident in linear memory', () => {
  it('equals an independent brute-force scan after adds, replacements and deletes, for three galleries side by side on one instance', () => {
    const rnd = mulberry32(17);
    const kernels = new WasmKernels(module);
    const arena = WasmArena.of(kernels);
    const dims = [128, 100, 128];
    // Small reserved room: interleaved adds make each gallery grow past the others (its block moves).
    const galleries = dims.map((dimension) => new Mirror(new ExactVectorIndex(kernels, { dimension, capacity: 16 })));
    let next = 1;
    for (let round = 0; round < 6; round++) {
      for (const [gi, g] of galleries.entries()) {
        for (let i = 0; i < 150 * (gi + 1); i++) g.add(next++, randomUnit(rnd, dims[gi]!));
        // Exact ties: a copy of an existing vector under a new id.
        g.add(next++, g.rows[Math.floor(rnd() * g.rows.length)]!.v);
        // Replacements and deletes anywhere, the last row included.
        for (let i = 0; i < 5; i++) g.add(g.rows[Math.floor(rnd() * g.rows.length)]!.id, randomUnit(rnd, dims[gi]!));
        for (let i = 0; i < 40; i++) g.remove(g.rows[Math.floor(rnd() * g.rows.length)]!.id);
        g.remove(g.rows[g.rows.length - 1]!.id);
        if (round % 2 === gi % 2) g.idx.trim(); // gives back the room above the rows (the store does after a load)
      }
      for (const [gi, g] of galleries.entries()) {
        const queries = Array.from({ length: 8 }, () => randomUnit(rnd, dims[gi]!));
        queries.push(g.rows[3]!.v); // a probe that ties with its copy, if it was copied
        g.check(queries, 10);
      }
    }
    // Dropping a gallery frees its room: a new gallery of the same size fits without growing memory.
    const dropped = galleries[1]!;
    const rows = dropped.rows.slice();
    dropped.idx.dispose();
    const memory = arena.memoryBytes;
    const again = new Mirror(new ExactVectorIndex(kernels, { dimension: 100, capacity: rows.length }));
    for (const r of rows) again.add(r.id, r.v);
    expect(arena.memoryBytes).toBe(memory);
    for (const g of [galleries[0]!, again, galleries[2]!]) g.check([randomUnit(rnd, g.idx.dimension), g.rows[0]!.v], 5);
    expect(() => dropped.idx.search(rows[0]!.v, 1)).toThrow(/disposed/);
  });

  for (const storage of ['f32', 'f16', 'int8'] as VectorStorage[]) {
    it(`${storage}: the same ids and score bits as copying the rows into linear memory per call (the path before), ties included, at 128, 100 and 130-d side by side`, () => {
      const rnd = mulberry32(5);
      const kernels = new WasmKernels(module);
      const copyKernels = new WasmKernels(module);
      const dims = [128, 100, 130];
      const indexes = dims.map((dimension) => new ExactVectorIndex(kernels, { dimension, storage, capacity: 16 }));
      // Interleaved adds: each index grows past the others' blocks, which then move.
      for (let i = 0; i < 2000; i++) indexes.forEach((idx, j) => idx.add(i, i % 7 === 3 ? idx.vector(i - 1)! : randomUnit(rnd, dims[j]!)));
      for (const idx of indexes) for (let i = 0; i < 200; i++) idx.remove(Math.floor(rnd() * 2000));
      // Trimmed room, then more rows (the room grows again, the int8 scales move with it).
      for (const idx of indexes) idx.trim();
      for (let i = 2000; i < 2400; i++) indexes.forEach((idx, j) => idx.add(i, randomUnit(rnd, dims[j]!)));
      // Tiny values (subnormal halves, int8 zeros) and negative zero in one row.
      indexes.forEach((idx, j) => {
        const v = randomUnit(rnd, dims[j]!);
        v.set([3e-7, -2e-6, 5e-5, -0], 0);
        idx.add(5000, v);
      });
      indexes[1]!.trim();
      for (const [j, idx] of indexes.entries()) {
        const dim = dims[j]!;
        // The rows as the old path held them (decoded, for int8), in row order.
        const ids = idx.ids();
        const rows = new Float32Array(ids.length * dim);
        ids.forEach((id, r) => rows.set(idx.vector(id)!, r * dim));
        for (let p = 0; p < 20; p++) {
          const q = p % 4 === 0 ? idx.vector(ids[p]!)! : randomUnit(rnd, dim);
          const part = scoreOnInstance(copyKernels, q, 1, rows, ids.length, dim, 10, 0);
          const top = mergeTopK([part], 1, 10, 10);
          const got = idx.search(q, 10);
          expect(got.ids).toEqual(Array.from(top.indices, (r) => ids[r]!));
          expect(got.scores).toEqual(Array.from(top.scores));
          // And the independent brute force over the same (decoded) rows.
          const want = bruteForce(ids.map((id, r) => ({ id, v: rows.subarray(r * dim, (r + 1) * dim) })), q, 10);
          expect(got.ids).toEqual(want.ids);
          got.scores.forEach((x, i) => expect(Math.abs(x - want.scores[i]!)).toBeLessThanOrEqual(1e-5));
        }
      }
    });
  }
});

describe('edge store: several galleries resident side by side', () => {
  const dir = tempDir('edge-resident');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('identifies as a brute-force scan of the live faces of each gallery while faces are added and deleted and a gallery is dropped', async () => {
    const DIM = 128;
    const sqlite = new Database(join(dir, 'edge.db'));
    const db = drizzle(sqlite, { schema }) as unknown as SyncSqliteDb;
    const { store, index } = openEdgeStore(db, { wasm: module, location: 'edge.db', closeDb: () => sqlite.close() });
    const rnd = mulberry32(23);
    // One face per identity, so identify's candidates are faces: gallery -> externalId -> unit vector.
    const live = new Map<string, Map<string, { faceId: number; v: Float32Array }>>();
    let person = 0;
    const enroll = async (gallery: string, count: number) => {
      const faces = Array.from({ length: count }, () => ({ identity: `p${person++}`, face: { embedding: Array.from(randomUnit(rnd, DIM)) } }));
      const added = await store.addFaces(gallery, faces, { newIdentities: faces.map((f) => ({ externalId: f.identity })) });
      added.forEach((info, i) => live.get(gallery)!.set(faces[i]!.identity, { faceId: info.id, v: Float32Array.from(faces[i]!.face.embedding) }));
    };
    const check = async (gallery: string) => {
      const faces = [...live.get(gallery)!.entries()];
      for (let p = 0; p < 5; p++) {
        const probe = p === 0 ? faces[Math.floor(rnd() * faces.length)]![1].v : randomUnit(rnd, DIM);
        const want = bruteForce(faces.map(([, f], i) => ({ id: i, v: f.v })), probe, 5);
        const got = await store.identify(gallery, probe, { k: 5 });
        expect(got.candidates.map((c) => c.identity)).toEqual(want.ids.map((i) => faces[i]![0]));
        got.candidates.forEach((c, i) => expect(Math.abs(c.score - want.scores[i]!)).toBeLessThanOrEqual(1e-5));
      }
    };
    try {
      for (const name of ['a', 'b', 'c']) {
        await store.createGallery(name, { modelId: 'm', dimension: DIM });
        live.set(name, new Map());
      }
      for (let round = 0; round < 3; round++) {
        for (const [gi, name] of ['a', 'b', 'c'].entries()) {
          await enroll(name, 300 * (gi + 1));
          const faces = [...live.get(name)!.entries()];
          for (let i = 0; i < 30; i++) {
            const [externalId, f] = faces.splice(Math.floor(rnd() * faces.length), 1)[0]!;
            if (i % 2) await store.deleteFace(name, f.faceId);
            else await store.deleteIdentity(name, externalId);
            live.get(name)!.delete(externalId);
          }
          await check(name);
        }
      }
      const loaded = index.bytes;
      await store.deleteGallery('b');
      live.delete('b');
      expect(index.bytes).toBeLessThan(loaded);
      await store.createGallery('d', { modelId: 'm', dimension: DIM });
      live.set('d', new Map());
      await enroll('d', 500);
      for (const name of ['a', 'c', 'd']) await check(name);
    } finally {
      await store.close();
    }
  }, 60_000);
});
