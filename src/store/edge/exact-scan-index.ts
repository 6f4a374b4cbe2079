// VectorIndex for runtimes where no native HNSW loads: per gallery, an ExactVectorIndex (the WASM
// score kernel on this thread; float32, float16 or int8 storage) loaded from the database on first
// use and kept in step by the store's added/deleted calls. Every gallery's rows (f32, f16 or int8) live
// in the one kernel instance's linear memory (blocks of its WasmArena), scanned in place; a dropped or
// reloaded gallery gives its block back for the next one. Every search scans all live faces, so
// answers do not depend on graph recall; with f16/int8 the candidates are over-fetched and the
// store re-scores them with the stored float32 vectors. Nothing is derived on disk: the database
// is the only state, and a restart reloads from it.
import { WasmArena } from '../../backend/wasm/wasm-arena.js';
import type { WasmKernels } from '../../backend/wasm/wasm-instance.js';
import { modelChangedError } from '../vector-index.js';
import { ExactVectorIndex, type VectorStorage } from '../exact-vector-index.js';
import type { GalleryRecord } from '../meta.js';
import type { IndexConsistency, VectorIndex, VectorIndexStats, VectorSearch, VectorSearchOptions } from '../vector-index.js';

/** Where the index loads a gallery's live vectors from (SqliteMeta.liveVectors). */
export type LiveVectorSource = (galleryId: number) => Iterable<{ id: number; embedding: Float32Array }>;

export interface ExactScanIndexOptions {
  /** Element storage (default 'f32'; 'int8' holds 100,000 128-d faces in about 17 MB). */
  storage?: VectorStorage;
  /** f16/int8: candidates fetched per face asked for, for the exact re-score (default 2). */
  overFetch?: number;
}

export class ExactScanIndex implements VectorIndex {
  readonly kind = 'exact-scan';
  private readonly galleries = new Map<number, ExactVectorIndex>();
  /** The generation (model switches) each loaded gallery was loaded at. */
  private readonly generations = new Map<number, number>();
  private readonly storage: VectorStorage;
  private readonly overFetch: number;

  constructor(
    private readonly kernels: WasmKernels,
    private readonly source: LiveVectorSource,
    o: ExactScanIndexOptions = {},
  ) {
    this.storage = o.storage ?? 'f32';
    this.overFetch = o.overFetch ?? 2;
  }

  /** Bytes held by the loaded galleries' vectors. */
  get bytes(): number {
    let b = 0;
    for (const g of this.galleries.values()) b += g.bytes;
    return b;
  }

  /** The kernel instance's linear memory in bytes: the loaded galleries' rows, freed room kept for reuse, and scan scratch. */
  get wasmMemoryBytes(): number {
    return WasmArena.of(this.kernels).memoryBytes;
  }

  async liveCount(g: GalleryRecord): Promise<number> {
    return this.load(g).size;
  }

  async search(g: GalleryRecord, probe: Float32Array, k: number, _o: VectorSearchOptions): Promise<VectorSearch> {
    const idx = this.load(g);
    const exact = this.storage === 'f32';
    const found = idx.search(probe, exact ? k : Math.ceil(k * this.overFetch));
    return { faces: found.ids.map((faceId, i) => ({ faceId, score: found.scores[i]! })), exactScores: exact };
  }

  async addGallery(): Promise<void> {
    // Nothing to make: a gallery's scan is loaded from the database on first use.
  }

  async added(g: GalleryRecord, faces: readonly { id: number; v: Float32Array }[]): Promise<void> {
    const idx = this.galleries.get(g.id);
    if (!idx) return; // loaded from the database, committed rows included, on first use
    for (const f of faces) idx.add(f.id, f.v);
  }

  async deleted(g: GalleryRecord, faceIds: readonly number[]): Promise<void> {
    const idx = this.galleries.get(g.id);
    if (!idx) return;
    for (const id of faceIds) idx.remove(id);
  }

  async dropGallery(g: GalleryRecord): Promise<void> {
    this.unload(g.id);
  }

  async prepareSwitch(): Promise<void> {
    // Loaded from the database on first use after the switch.
  }

  async modelSwitched(g: GalleryRecord): Promise<void> {
    if ((this.generations.get(g.id) ?? -1) < g.generation) this.unload(g.id);
  }

  async stats(g: GalleryRecord): Promise<VectorIndexStats> {
    const idx = this.load(g);
    return { size: idx.size, live: idx.size, deleted: 0, capacity: idx.size, snapshotLastFaceId: null, snapshotBytes: null, unsavedChanges: 0, rebuilding: false };
  }

  async check(g: GalleryRecord): Promise<IndexConsistency> {
    const idx = this.load(g);
    const missingFromIndex: number[] = [];
    const vectorMismatches: number[] = [];
    const tolerance = this.storage === 'f32' ? 1e-6 : this.storage === 'f16' ? 1e-3 : 1 / 127;
    const dbIds = new Set<number>();
    for (const r of this.source(g.id)) {
      dbIds.add(r.id);
      const v = idx.vector(r.id);
      if (!v) {
        missingFromIndex.push(r.id);
        continue;
      }
      let diff = 0;
      for (let i = 0; i < v.length; i++) diff = Math.max(diff, Math.abs(v[i]! - r.embedding[i]!));
      if (diff > tolerance) vectorMismatches.push(r.id);
    }
    return { dbLive: dbIds.size, indexLive: idx.size, missingFromIndex, extraInIndex: idx.ids().filter((id) => !dbIds.has(id)), vectorMismatches };
  }

  async checkpoint(): Promise<void> {}

  /** Reloads the gallery from the database. */
  async rebuild(g: GalleryRecord): Promise<void> {
    this.unload(g.id);
    this.load(g);
  }

  async close(): Promise<void> {
    for (const idx of this.galleries.values()) idx.dispose();
    this.galleries.clear();
  }

  private unload(galleryId: number): void {
    this.galleries.get(galleryId)?.dispose();
    this.galleries.delete(galleryId);
  }

  private load(g: GalleryRecord): ExactVectorIndex {
    let idx = this.galleries.get(g.id);
    const at = this.generations.get(g.id);
    if (idx && at !== undefined && at > g.generation) throw modelChangedError(g.name);
    if (idx && at !== g.generation) {
      this.unload(g.id);
      idx = undefined;
    }
    if (!idx) {
      idx = new ExactVectorIndex(this.kernels, { dimension: g.dimension, storage: this.storage });
      try {
        for (const r of this.source(g.id)) idx.add(r.id, r.embedding);
        idx.trim();
      } catch (e) {
        idx.dispose();
        throw e;
      }
      this.generations.set(g.id, g.generation);
      this.galleries.set(g.id, idx);
    }
    return idx;
  }
}
