// What the route modules share: the store, the pipeline queue, keys, limits and the server's model,
// plus the conversions from store records to the API's JSON shapes.
import { CosfaceError } from '../errors.js';
import type { Face } from '../pipeline/face-pipeline.js';
import type { GalleryInfo, IdentifyCandidate, IdentifyResult, IdentityInfo, Store, StoredFace } from '../store/store.js';
import type { ApiKeyInfo, ApiKeys } from './api-keys.js';
import type { FaceFinder } from './face-finder.js';
import type { Metrics } from './metrics.js';
import type { Limits } from './route-spec.js';
import { sha256Hex } from './sha256.js';

export interface ModelInfo {
  /** The id galleries filled from images must carry (their modelId). */
  id: string;
  dimension: number;
}

export interface EngineInfo {
  backend: string;
  /** One line: the adapter and driver, or the WASM threads. */
  adapter: string;
}

export interface ServerDeps {
  store: Store;
  keys: ApiKeys | null;
  finder: FaceFinder;
  metrics: Metrics;
  limits: Limits;
  model: ModelInfo;
  engine: EngineInfo | null;
  version: string;
}

/** The largest face of a photo (faces come largest first), or NO_FACE. */
export async function largestFace(deps: ServerDeps, photo: Uint8Array, what = 'image'): Promise<{ face: Face; count: number }> {
  const faces = await deps.finder.find(photo);
  if (faces.length === 0) throw new CosfaceError('NO_FACE', `no face found in the ${what}`);
  return { face: faces[0]!, count: faces.length };
}

/** Refuses to put this server's embeddings into a gallery made for another model. */
export function checkGalleryModel(deps: ServerDeps, g: Pick<GalleryInfo, 'name' | 'modelId' | 'dimension'>): void {
  if (g.modelId !== deps.model.id || g.dimension !== deps.model.dimension) {
    throw new CosfaceError(
      'MODEL_MISMATCH',
      `gallery "${g.name}" holds ${g.modelId} (${g.dimension}-d) embeddings; this server embeds images with ${deps.model.id} (${deps.model.dimension}-d): send embeddings instead`,
    );
  }
}

export const sha256 = (b: Uint8Array) => sha256Hex(b);

export const galleryJson = (g: GalleryInfo) => ({
  name: g.name,
  modelId: g.modelId,
  modelVersion: g.modelVersion,
  dimension: g.dimension,
  m: g.m,
  efConstruction: g.efConstruction,
  ef: g.ef,
  identities: g.identities,
  faces: g.faces,
  createdAt: g.createdAt.toISOString(),
});

export const identityJson = (i: IdentityInfo) => ({
  externalId: i.externalId,
  displayName: i.displayName,
  metadata: i.metadata,
  faces: i.faces,
  createdAt: i.createdAt.toISOString(),
});

export const storedFaceJson = (f: StoredFace) => ({
  id: f.id,
  identity: f.identity,
  box: f.box,
  keypoints: f.keypoints,
  quality: f.quality,
  photoHash: f.photoHash,
  createdAt: f.createdAt.toISOString(),
});

const candidateJson = (c: IdentifyCandidate) => ({ identity: c.identity, displayName: c.displayName, score: c.score, faceId: c.faceId });

export const identifyJson = (r: IdentifyResult) => ({
  candidates: r.candidates.map(candidateJson),
  match: r.match ? candidateJson(r.match) : null,
  decision: r.decision,
  threshold: r.threshold,
  far: r.far,
  method: r.method,
});

export const detectedFaceJson = (f: Face) => ({ box: f.box, landmarks: f.landmarks, score: f.score, quality: f.quality });

export const keyJson = (k: ApiKeyInfo & { key?: string }) => ({
  id: k.id,
  name: k.name,
  gallery: k.gallery,
  createdAt: k.createdAt.toISOString(),
  revokedAt: k.revokedAt ? k.revokedAt.toISOString() : null,
  ...(k.key !== undefined ? { key: k.key } : {}),
});
