// Search routes: 1:N identify (one probe, or many at once), 1:1 verify, and embed (photo -> faces).
import { Hono } from 'hono';
import { z } from 'zod';
import { CosfaceError } from '../../errors.js';
import { toUnitVector } from '../../store/embedding.js';
import { checkAccess } from '../auth.js';
import { checkGalleryModel, detectedFaceJson, identifyJson, largestFace, type ServerDeps } from '../deps.js';
import type { AppEnv } from '../env.js';
import { inputOf, route } from '../route-spec.js';
import * as s from '../schemas.js';
import type { IdentifyOptions, VerifyTarget } from '../../store/store.js';

export function searchRoutes(deps: ServerDeps): Hono<AppEnv> {
  const { store, limits } = deps;
  const app = new Hono<AppEnv>();

  app.post(
    '/galleries/:g/identify',
    route(
      {
        tag: 'search',
        summary: 'Who is this? Identify an embedding, or every face in an image',
        description:
          'With an embedding: the top k identities. With an image: each face (largest first, at most maxFaces) with its own result. Give far (a calibrated false-accept rate) or threshold (a cosine score) for an open-set decision.',
        access: 'gallery',
        body: { schema: s.identifyBody, media: ['json', 'multipart'], size: 'image' },
        response: { status: 200, description: 'IdentifyResult for an embedding, IdentifyImageResult for an image', schema: z.union([s.identifyResult, s.identifyImageResult]) },
        errors: ['GALLERY_NOT_FOUND', 'DIMENSION_MISMATCH', 'NOT_CALIBRATED', 'BAD_IMAGE', 'IMAGE_TOO_LARGE', 'NO_FACE', 'MODEL_MISMATCH', 'MODEL_CHANGED', 'OVERLOADED', 'INDEX_UNAVAILABLE'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.identifyBody);
      const gallery = c.req.param('g');
      const opts: IdentifyOptions = {
        ...(b.k !== undefined ? { k: b.k } : {}),
        ...(b.far !== undefined ? { far: b.far } : {}),
        ...(b.threshold !== undefined ? { threshold: b.threshold } : {}),
        ...(b.exact !== undefined ? { exact: b.exact } : {}),
      };
      if (b.embedding) return c.json(identifyJson(await store.identify(gallery, b.embedding, opts)));
      checkGalleryModel(deps, await store.getGallery(gallery));
      const faces = await deps.finder.find(b.image!);
      if (faces.length === 0) throw new CosfaceError('NO_FACE', 'no face found in the image');
      const results = [];
      for (const f of faces.slice(0, b.maxFaces ?? 10)) {
        results.push({ face: detectedFaceJson(f), result: identifyJson(await store.identify(gallery, f.embedding, opts)) });
      }
      return c.json({ faces: results, facesInPhoto: faces.length });
    },
  );

  app.post(
    '/galleries/:g/identify/batch',
    route(
      {
        tag: 'search',
        summary: 'Identify many embeddings in one request',
        access: 'gallery',
        body: { schema: s.identifyBatchBody, media: ['json'], size: 'image' },
        response: { status: 200, description: 'One IdentifyResult per probe, in order', schema: z.object({ results: z.array(s.identifyResult) }) },
        errors: ['GALLERY_NOT_FOUND', 'DIMENSION_MISMATCH', 'NOT_CALIBRATED', 'MODEL_CHANGED', 'INDEX_UNAVAILABLE'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.identifyBatchBody);
      const gallery = c.req.param('g');
      const opts: IdentifyOptions = {
        ...(b.k !== undefined ? { k: b.k } : {}),
        ...(b.far !== undefined ? { far: b.far } : {}),
        ...(b.threshold !== undefined ? { threshold: b.threshold } : {}),
        ...(b.exact !== undefined ? { exact: b.exact } : {}),
      };
      const g = await store.getGallery(gallery);
      // Check every probe first: one bad probe fails the request before any search runs.
      b.probes.forEach((p, i) => toUnitVector(p, g.dimension, `probes[${i}]`));
      const results = [];
      for (const p of b.probes) results.push(identifyJson(await store.identify(gallery, p, opts)));
      return c.json({ results });
    },
  );

  app.post(
    '/verify',
    route(
      {
        tag: 'search',
        summary: 'Are these the same person? Two embeddings or images, or one against an enrolled identity',
        access: 'key',
        body: { schema: s.verifyBody, media: ['json', 'multipart'], size: 'image' },
        response: { status: 200, description: 'The cosine score and, with far or threshold, the decision', schema: s.verifyResult },
        errors: ['GALLERY_NOT_FOUND', 'IDENTITY_NOT_FOUND', 'FACE_NOT_FOUND', 'DIMENSION_MISMATCH', 'NOT_CALIBRATED', 'BAD_IMAGE', 'IMAGE_TOO_LARGE', 'NO_FACE', 'MODEL_MISMATCH', 'MODEL_CHANGED', 'OVERLOADED'],
      },
      limits,
    ),
    async (c) => {
      const v = inputOf(c, s.verifyBody);
      const isRef = (x: unknown): x is { gallery: string; identity: string } => typeof x === 'object' && x !== null && 'identity' in x;
      if (isRef(v.b)) {
        checkAccess(c, 'gallery', v.b.gallery);
        if (v.a instanceof Uint8Array) checkGalleryModel(deps, await store.getGallery(v.b.gallery));
        else await store.getIdentity(v.b.gallery, v.b.identity);
      }
      const faces: { a?: ReturnType<typeof detectedFaceJson>; b?: ReturnType<typeof detectedFaceJson> } = {};
      const side = async (x: Uint8Array | number[], name: 'a' | 'b') => {
        if (!(x instanceof Uint8Array)) return x;
        const { face } = await largestFace(deps, x, `image ${name}`);
        faces[name] = detectedFaceJson(face);
        return face.embedding;
      };
      const a = await side(v.a, 'a');
      const b: VerifyTarget = isRef(v.b) ? v.b : await side(v.b, 'b');
      const anyImage = faces.a !== undefined || faces.b !== undefined;
      const modelId = v.modelId ?? (anyImage ? deps.model.id : undefined);
      const r = await store.verify(a, b, {
        ...(v.far !== undefined ? { far: v.far } : {}),
        ...(v.threshold !== undefined ? { threshold: v.threshold } : {}),
        ...(modelId !== undefined ? { modelId } : {}),
      });
      return c.json({ ...r, ...(anyImage ? { faces } : {}) });
    },
  );

  app.post(
    '/embed',
    route(
      {
        tag: 'search',
        summary: 'Every face in an image, with box, keypoints, quality and embedding',
        access: 'key',
        body: { schema: s.embedBody, media: ['json', 'multipart'], size: 'image' },
        response: { status: 200, description: 'Faces, largest first (an empty list when there is none)', schema: s.embedResult },
        errors: ['BAD_IMAGE', 'IMAGE_TOO_LARGE', 'OVERLOADED'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.embedBody);
      const faces = await deps.finder.find(b.image);
      return c.json({ model: deps.model.id, faces: faces.map((f) => ({ ...detectedFaceJson(f), embedding: f.embedding })) });
    },
  );

  return app;
}
