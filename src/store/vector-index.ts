// The vector side of a store: nearest faces of a gallery by inner product. One interface, one
// implementation per backend: hnswlib graphs derived from SQLite (sqlite/hnsw-vector-index.ts), or
// the database's own index (pg/pgvector-index.ts: pgvector's HNSW, the search is the SQL itself).
// The store tells an index about committed writes (added/deleted) after the database has them; an
// index whose search runs in the database ignores those calls.
import { CosfaceError } from '../errors.js';
import type { GalleryRecord } from './meta.js';

/** A request read the gallery before a model switch and reached its vectors after it. */
export function modelChangedError(gallery: string): CosfaceError {
  return new CosfaceError('MODEL_CHANGED', `gallery "${gallery}" switched to another model during the request: embed with its model (see the gallery's modelId) and ask again`);
}

export interface ScoredFace {
  faceId: number;
  score: number;
}

export interface VectorSearch {
  /** Best first. */
  faces: ScoredFace[];
  /** True when the scores are exact inner products of the stored vectors (no re-rank needed). */
  exactScores: boolean;
}

export interface VectorSearchOptions {
  /** 'exact': every live face of the gallery is scored; 'hnsw': the approximate graph. */
  method: 'exact' | 'hnsw';
  /** The HNSW search beam (ignored by exact scans). */
  ef: number;
}

/** How an index stands for one gallery (`gallery stats`). */
export interface VectorIndexStats {
  size: number;
  live: number;
  deleted: number;
  capacity: number;
  snapshotLastFaceId: number | null;
  snapshotBytes: number | null;
  unsavedChanges: number;
  rebuilding: boolean;
}

export interface IndexConsistency {
  dbLive: number;
  indexLive: number;
  missingFromIndex: number[];
  extraInIndex: number[];
  vectorMismatches: number[];
}

export interface VectorIndex {
  /** 'hnswlib' or 'pgvector'. */
  readonly kind: string;
  /** A gallery was created (pgvector: its partial HNSW index is made here). */
  addGallery(g: GalleryRecord): Promise<void>;
  /** Live faces of the gallery the index would search (may lag other processes' writes by a moment). */
  liveCount(g: GalleryRecord): Promise<number>;
  /** The k nearest live faces to a unit probe (fewer when the gallery has fewer). */
  search(g: GalleryRecord, probe: Float32Array, k: number, o: VectorSearchOptions): Promise<VectorSearch>;
  /** Faces committed to the database (ids with their unit vectors). */
  added(g: GalleryRecord, faces: readonly { id: number; v: Float32Array }[]): Promise<void>;
  /** Faces soft-deleted in the database. */
  deleted(g: GalleryRecord, faceIds: readonly number[]): Promise<void>;
  /**
   * A model switch is about to commit: build what the gallery's index will need afterwards from the
   * staged vectors (hnswlib: the new graph, so the switch only swaps it in), for the new dimension
   * and generation. Indexes that live in the database or scan do nothing.
   */
  prepareSwitch(g: GalleryRecord, next: { dimension: number; generation: number }): Promise<void>;
  /**
   * The gallery switched to another model (meta.switchModel committed; `g` is the new record):
   * state built for an older generation is dropped. An index also notices a newer generation by
   * itself (another process switched), and answers a search for an older one with MODEL_CHANGED.
   */
  modelSwitched(g: GalleryRecord): Promise<void>;
  /** A gallery is about to be deleted (stop background work, remove files). */
  dropGallery(g: GalleryRecord): Promise<void>;
  stats(g: GalleryRecord): Promise<VectorIndexStats>;
  /** Compares the index with the database (tests, `gallery stats --check`). */
  check(g: GalleryRecord): Promise<IndexConsistency>;
  /** Persists derived state (snapshots) of these galleries, or of all loaded ones. */
  checkpoint(galleries?: readonly GalleryRecord[]): Promise<void>;
  /** Rebuilds the gallery's index without deleted entries; resolves when it is in use. */
  rebuild(g: GalleryRecord): Promise<void>;
  /** Waits for background work and persists what needs persisting. */
  close(): Promise<void>;
}
