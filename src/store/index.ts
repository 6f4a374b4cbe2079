// Public surface of the face store (library users and the CLI import from here).
export {
  Store,
  DEFAULT_HNSW,
  effectiveEf,
  type StoreOptions,
  type StoreParts,
  type StoreBackend,
  type IndexEvent,
  type CreateGalleryOptions,
  type GalleryInfo,
  type GalleryStats,
  type IdentityInput,
  type IdentityInfo,
  type FaceInput,
  type FaceInfo,
  type StoredFace,
  type IdentifyOptions,
  type IdentifyResult,
  type IdentifyCandidate,
  type VerifyOptions,
  type VerifyTarget,
  type VerifyResult,
  type ConsistencyReport,
  type DuplicateIdentityPair,
  type DuplicateIdentitiesResult,
  type FaceBox,
  type FaceKeypoints,
} from './store.js';
export { openStore, storeLocation, parseLocation, storeMayExist, describeLocation, DEFAULT_DB } from './open-store.js';
export type { MetaStore } from './meta.js';
export type { VectorIndex, VectorSearch, VectorSearchOptions, VectorIndexStats } from './vector-index.js';
export { calibrate, DEFAULT_FARS, type Calibration, type ScoredPair, type FarThreshold, type UnsupportedFar } from './thresholds.js';
export { arrayRows, scoreExactTs, type ExactRows, type ExactRowsFactory, type ExactScorer } from './exact-scorer.js';
export { defaultScorer, wasmExactRows } from './default-scorer.js';
