// Public surface of the face store (library users and the CLI import from here).
export {
  openStore,
  Store,
  DEFAULT_HNSW,
  type StoreOptions,
  type IndexEvent,
  type CreateGalleryOptions,
  type GalleryInfo,
  type GalleryStats,
  type IdentityInput,
  type IdentityInfo,
  type FaceInput,
  type FaceInfo,
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
export { calibrate, DEFAULT_FARS, type Calibration, type ScoredPair, type FarThreshold, type UnsupportedFar } from './thresholds.js';
export { scoreExactTs, type ExactScorer } from './exact-scorer.js';
export { defaultScorer } from './default-scorer.js';
