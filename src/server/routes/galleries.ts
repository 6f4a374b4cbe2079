// /v1/galleries: galleries, their identities and faces, and bulk enrollment.
import { Hono } from 'hono';
import { z } from 'zod';
import { CosfaceError } from '../../errors.js';
import { toUnitVector } from '../../store/embedding.js';
import type { FaceInput } from '../../store/store.js';
import { visibleGalleries } from '../auth.js';
import {
  checkGalleryModel,
  galleryJson,
  identityJson,
  largestFace,
  sha256,
  storedFaceJson,
  detectedFaceJson,
  type ServerDeps,
} from '../deps.js';
import type { AppEnv } from '../env.js';
import { inputOf, route } from '../route-spec.js';
import * as s from '../schemas.js';

export function galleryRoutes(deps: ServerDeps): Hono<AppEnv> {
  const { store, limits } = deps;
  const app = new Hono<AppEnv>();

  app.post(
    '/',
    route(
      {
        tag: 'galleries',
        summary: 'Create a gallery',
        access: 'admin',
        body: { schema: s.createGalleryBody, media: ['json'] },
        response: { status: 201, description: 'The new gallery', schema: s.galleryResponse },
        errors: ['GALLERY_EXISTS'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.createGalleryBody);
      const g = await store.createGallery(b.name, {
        modelId: b.modelId ?? deps.model.id,
        dimension: b.dimension ?? deps.model.dimension,
        ...(b.m !== undefined ? { m: b.m } : {}),
        ...(b.efConstruction !== undefined ? { efConstruction: b.efConstruction } : {}),
        ...(b.ef !== undefined ? { ef: b.ef } : {}),
      });
      return c.json(galleryJson(g), 201);
    },
  );

  app.get(
    '/',
    route(
      {
        tag: 'galleries',
        summary: 'List the galleries this key may use',
        access: 'key',
        response: { status: 200, description: 'Galleries by name', schema: z.object({ galleries: z.array(s.galleryResponse) }) },
        errors: [],
      },
      limits,
    ),
    async (c) => {
      const visible = visibleGalleries(c.get('principal'));
      const all = (await store.listGalleries()).filter((g) => visible === null || visible.includes(g.name));
      return c.json({ galleries: all.map(galleryJson) });
    },
  );

  app.get(
    '/:g',
    route(
      {
        tag: 'galleries',
        summary: 'Get a gallery',
        access: 'gallery',
        response: { status: 200, description: 'The gallery with its counts', schema: s.galleryResponse },
        errors: ['GALLERY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => c.json(galleryJson(await store.getGallery(c.req.param('g')))),
  );

  app.get(
    '/:g/migration',
    route(
      {
        tag: 'galleries',
        summary: "Progress of the gallery's migration to another model",
        description:
          'A migration runs outside the server (`cosface gallery migrate`, or migrateGallery in a Node process) against the same database: this reads its claim and how many faces it has re-embedded. See docs/migration.md.',
        access: 'admin',
        response: { status: 200, description: 'The migration in progress or stopped, or null', schema: s.migrationResponse },
        errors: ['GALLERY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const g = await store.getGallery(c.req.param('g'));
      const m = await store.migrationStatus(g.name);
      const claim = m.claim;
      return c.json({
        gallery: g.name,
        modelId: g.modelId,
        dimension: g.dimension,
        faces: g.faces,
        migration: claim
          ? {
              modelId: claim.modelId,
              modelVersion: claim.modelVersion,
              dimension: claim.dimension,
              owner: claim.owner,
              startedAt: new Date(claim.startedAt).toISOString(),
              heartbeatAt: new Date(claim.heartbeatAt).toISOString(),
              active: m.active,
              staged: m.staged,
            }
          : null,
      });
    },
  );

  app.delete(
    '/:g',
    route(
      {
        tag: 'galleries',
        summary: 'Delete a gallery with its identities, faces, index and API keys',
        access: 'admin',
        response: { status: 200, description: 'What was deleted', schema: z.object({ deleted: s.galleryResponse }) },
        errors: ['GALLERY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const g = await store.getGallery(c.req.param('g'));
      await store.deleteGallery(g.name);
      return c.json({ deleted: galleryJson(g) });
    },
  );

  const duplicatesQuery = z.strictObject({
    far: s.num(z.number().gt(0).lt(1)).optional().describe('Decide at the threshold calibrated for this false-accept rate (default 1e-4)'),
    threshold: s.num(z.number().min(-1).max(1)).optional().describe('Decide at this cosine instead'),
    k: s.num(z.number().int().min(1).max(100)).optional().describe('Neighbours searched per face (default 10)'),
  });
  const identitySide = z.object({ identity: z.string(), displayName: z.string().nullable(), faceId: z.number().int() });
  app.get(
    '/:g/duplicates',
    route(
      {
        tag: 'galleries',
        summary: 'Identities enrolled twice: pairs whose templates match at or above the decision threshold, best first',
        access: 'gallery',
        query: duplicatesQuery,
        response: {
          status: 200,
          description: 'Pairs of identities (a < b by external id) with the best-matching templates',
          schema: z.object({ pairs: z.array(z.object({ a: identitySide, b: identitySide, score: z.number() })), threshold: z.number(), far: z.number().nullable(), facesSearched: z.number().int() }),
        },
        errors: ['GALLERY_NOT_FOUND', 'NOT_CALIBRATED'],
      },
      limits,
    ),
    async (c) => {
      const q = inputOf(c, duplicatesQuery);
      if (q.far !== undefined && q.threshold !== undefined) throw new CosfaceError('BAD_INPUT', 'give far or threshold, not both');
      const choice = q.threshold !== undefined ? { threshold: q.threshold } : { far: q.far ?? 1e-4 };
      return c.json(await store.duplicateIdentities(c.req.param('g'), { ...choice, ...(q.k !== undefined ? { k: q.k } : {}) }));
    },
  );

  // ---- identities ----

  app.post(
    '/:g/identities',
    route(
      {
        tag: 'identities',
        summary: 'Create an identity',
        access: 'gallery',
        body: { schema: s.createIdentityBody, media: ['json'] },
        response: { status: 201, description: 'The new identity', schema: s.identityResponse },
        errors: ['GALLERY_NOT_FOUND', 'DUPLICATE_IDENTITY'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.createIdentityBody);
      const ident = await store.addIdentity(c.req.param('g'), {
        externalId: b.externalId,
        ...(b.displayName !== undefined ? { displayName: b.displayName } : {}),
        ...(b.metadata !== undefined ? { metadata: b.metadata } : {}),
      });
      return c.json(identityJson(ident), 201);
    },
  );

  app.get(
    '/:g/identities',
    route(
      {
        tag: 'identities',
        summary: 'List identities, oldest first, a page at a time',
        access: 'gallery',
        query: s.pageQuery,
        response: {
          status: 200,
          description: 'A page of identities; `next` is the offset of the next page, null after the last',
          schema: z.object({ identities: z.array(s.identityResponse), total: z.number().int(), limit: z.number().int(), offset: z.number().int(), next: z.number().int().nullable() }),
        },
        errors: ['GALLERY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const q = inputOf(c, s.pageQuery);
      const limit = q.limit ?? 100;
      const offset = q.offset ?? 0;
      const g = await store.getGallery(c.req.param('g'));
      const page = await store.listIdentities(g.name, { limit, offset });
      const next = offset + page.length < g.identities && page.length === limit ? offset + limit : null;
      return c.json({ identities: page.map(identityJson), total: g.identities, limit, offset, next });
    },
  );

  app.get(
    '/:g/identities/:id',
    route(
      {
        tag: 'identities',
        summary: 'Get an identity',
        access: 'gallery',
        response: { status: 200, description: 'The identity', schema: s.identityResponse },
        errors: ['GALLERY_NOT_FOUND', 'IDENTITY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => c.json(identityJson(await store.getIdentity(c.req.param('g'), c.req.param('id')))),
  );

  app.patch(
    '/:g/identities/:id',
    route(
      {
        tag: 'identities',
        summary: "Update an identity's display name and/or metadata (null clears)",
        access: 'gallery',
        body: { schema: s.updateIdentityBody, media: ['json'] },
        response: { status: 200, description: 'The updated identity', schema: s.identityResponse },
        errors: ['GALLERY_NOT_FOUND', 'IDENTITY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.updateIdentityBody);
      return c.json(identityJson(await store.updateIdentity(c.req.param('g'), c.req.param('id'), b)));
    },
  );

  app.delete(
    '/:g/identities/:id',
    route(
      {
        tag: 'identities',
        summary: 'Delete an identity and all its faces',
        access: 'gallery',
        response: { status: 200, description: 'How many faces went with it', schema: z.object({ deleted: z.string(), faces: z.number().int() }) },
        errors: ['GALLERY_NOT_FOUND', 'IDENTITY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const r = await store.deleteIdentity(c.req.param('g'), c.req.param('id'));
      return c.json({ deleted: c.req.param('id'), faces: r.faces });
    },
  );

  // ---- faces ----

  app.post(
    '/:g/identities/:id/faces',
    route(
      {
        tag: 'faces',
        summary: 'Add a face to an identity, from an image (its largest face) or an embedding',
        access: 'gallery',
        body: { schema: s.addFaceBody, media: ['json', 'multipart'], size: 'image' },
        response: {
          status: 201,
          description: 'The stored face; with an image, the face that was used and how many the photo had',
          schema: z.object({ face: s.faceResponse, detected: s.detectedFace.optional(), facesInPhoto: z.number().int().optional() }),
        },
        errors: ['GALLERY_NOT_FOUND', 'IDENTITY_NOT_FOUND', 'BAD_IMAGE', 'IMAGE_TOO_LARGE', 'NO_FACE', 'MODEL_MISMATCH', 'MIGRATING', 'OVERLOADED'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.addFaceBody);
      const gallery = c.req.param('g');
      const identity = c.req.param('id');
      await store.getIdentity(gallery, identity); // fail fast, before the pipeline runs
      let input: FaceInput;
      let detected: { face: ReturnType<typeof detectedFaceJson>; count: number } | null = null;
      if (b.image) {
        checkGalleryModel(deps, await store.getGallery(gallery));
        const { face, count } = await largestFace(deps, b.image);
        const [x, y, width, height] = face.box;
        input = { embedding: face.embedding, box: { x, y, width, height }, keypoints: face.landmarks, quality: face.quality, photoHash: sha256(b.image) };
        detected = { face: detectedFaceJson(face), count };
      } else {
        input = { embedding: b.embedding!, ...(b.quality !== undefined ? { quality: b.quality } : {}) };
      }
      const added = await store.addFace(gallery, identity, input);
      const stored = (await store.listFaces(gallery, identity)).find((f) => f.id === added.id)!;
      return c.json({ face: storedFaceJson(stored), ...(detected ? { detected: detected.face, facesInPhoto: detected.count } : {}) }, 201);
    },
  );

  app.get(
    '/:g/identities/:id/faces',
    route(
      {
        tag: 'faces',
        summary: "List an identity's faces",
        access: 'gallery',
        response: { status: 200, description: 'Faces, oldest first (embeddings are not returned)', schema: z.object({ faces: z.array(s.faceResponse) }) },
        errors: ['GALLERY_NOT_FOUND', 'IDENTITY_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => c.json({ faces: (await store.listFaces(c.req.param('g'), c.req.param('id'))).map(storedFaceJson) }),
  );

  app.delete(
    '/:g/faces/:faceId',
    route(
      {
        tag: 'faces',
        summary: 'Delete one face',
        access: 'gallery',
        response: { status: 200, description: 'The deleted face id', schema: z.object({ deleted: z.number().int() }) },
        errors: ['GALLERY_NOT_FOUND', 'FACE_NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const id = Number(c.req.param('faceId'));
      if (!Number.isSafeInteger(id) || id < 1) throw new CosfaceError('BAD_INPUT', `face id must be a positive integer, got "${c.req.param('faceId')}"`);
      await store.deleteFace(c.req.param('g'), id);
      return c.json({ deleted: id });
    },
  );

  // ---- bulk enrollment ----

  app.post(
    '/:g/enroll',
    route(
      {
        tag: 'faces',
        summary: 'Enroll many faces at once (all or none), creating identities as needed',
        description:
          'Each item names an identity and gives an embedding or an image (its largest face). Everything is checked, and every image run through the face pipeline, before anything is written; any failure writes nothing.',
        access: 'gallery',
        body: { schema: s.enrollBody, media: ['json'], size: 'image' },
        response: {
          status: 201,
          description: 'Face ids in item order and the identities created',
          schema: z.object({ faces: z.array(z.object({ id: z.number().int(), identity: z.string() })), identitiesCreated: z.array(z.string()) }),
        },
        errors: ['GALLERY_NOT_FOUND', 'IDENTITY_NOT_FOUND', 'DIMENSION_MISMATCH', 'BAD_IMAGE', 'IMAGE_TOO_LARGE', 'NO_FACE', 'MODEL_MISMATCH', 'MIGRATING', 'OVERLOADED'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.enrollBody);
      const gallery = c.req.param('g');
      const g = await store.gallerySettings(gallery); // not getGallery: its counts scan every row
      if (b.faces.some((f) => f.image)) checkGalleryModel(deps, g);
      // Check what can be checked cheaply before the slow part (the pipeline).
      b.faces.forEach((f, i) => {
        if (f.embedding) toUnitVector(f.embedding, g.dimension, `faces[${i}].embedding`);
      });
      const createIdentities = b.createIdentities ?? true;
      const missing = new Map<string, { displayName?: string; metadata?: Record<string, unknown> }>();
      for (const f of b.faces) {
        if (missing.has(f.identity)) continue;
        try {
          await store.getIdentity(gallery, f.identity);
        } catch (e) {
          if (!(e instanceof CosfaceError && e.code === 'IDENTITY_NOT_FOUND') || !createIdentities) throw e;
          missing.set(f.identity, { ...(f.displayName !== undefined ? { displayName: f.displayName } : {}), ...(f.metadata !== undefined ? { metadata: f.metadata } : {}) });
        }
      }
      const items: { identity: string; face: FaceInput }[] = [];
      for (const [i, f] of b.faces.entries()) {
        if (f.image) {
          const { face } = await largestFace(deps, f.image, `image of faces[${i}]`);
          const [x, y, width, height] = face.box;
          items.push({ identity: f.identity, face: { embedding: face.embedding, box: { x, y, width, height }, keypoints: face.landmarks, quality: face.quality, photoHash: sha256(f.image) } });
        } else {
          items.push({ identity: f.identity, face: { embedding: f.embedding! } });
        }
      }
      // Identities and faces in one transaction: a failure or a crash leaves neither.
      const newIdentities = [...missing].map(([externalId, extra]) => ({ externalId, ...extra }));
      const added = await store.addFaces(gallery, items, { newIdentities });
      return c.json({ faces: added.map((f) => ({ id: f.id, identity: f.identity })), identitiesCreated: newIdentities.map((n) => n.externalId) }, 201);
    },
  );

  return app;
}
