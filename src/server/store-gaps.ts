// Two reads/writes the HTTP API needs that the Store does not offer yet: listing an identity's faces
// and updating an identity's display name and metadata. They go through the Store for every check
// (gallery, identity) and touch only the columns they name. To move into Store (src/store/store.ts).
import { and, eq } from 'drizzle-orm';
import type { OpenedDb } from '../db/open-db.js';
import { faces, identities, type FaceBox, type FaceKeypoints } from '../db/schema.js';
import type { IdentityInfo, Store } from '../store/store.js';

export interface StoredFace {
  id: number;
  identity: string;
  box: FaceBox | null;
  keypoints: FaceKeypoints | null;
  quality: number | null;
  photoHash: string | null;
  createdAt: Date;
}

export function listFaces(store: Store, opened: OpenedDb, gallery: string, externalId: string): StoredFace[] {
  const ident = store.getIdentity(gallery, externalId); // GALLERY_NOT_FOUND / IDENTITY_NOT_FOUND
  return opened.db
    .select({ id: faces.id, box: faces.box, keypoints: faces.keypoints, quality: faces.quality, photoHash: faces.photoHash, createdAt: faces.createdAt })
    .from(faces)
    .where(and(eq(faces.identityId, ident.id), eq(faces.deleted, false)))
    .orderBy(faces.id)
    .all()
    .map((r) => ({ ...r, identity: ident.externalId }));
}

export function updateIdentity(
  store: Store,
  opened: OpenedDb,
  gallery: string,
  externalId: string,
  patch: { displayName?: string | null; metadata?: Record<string, unknown> | null },
): IdentityInfo {
  const ident = store.getIdentity(gallery, externalId);
  const set: { displayName?: string | null; metadata?: Record<string, unknown> | null } = {};
  if (patch.displayName !== undefined) set.displayName = patch.displayName;
  if (patch.metadata !== undefined) set.metadata = patch.metadata;
  if (Object.keys(set).length > 0) opened.db.update(identities).set(set).where(eq(identities.id, ident.id)).run();
  return store.getIdentity(gallery, externalId);
}
