// Request and response shapes of the HTTP API, as zod schemas: the validators every input goes
// through and the source the OpenAPI description is generated from.
import { z } from 'zod';
import { EXTERNAL_ID_MAX, EXTERNAL_ID_RULE, GALLERY_NAME_PATTERN, GALLERY_NAME_RULE, isExternalId } from '../store/names.js';

/** Multipart fields arrive as strings: numbers and JSON values are parsed before validation. */
const fromString = (parse: (s: string) => unknown) => (v: unknown) => {
  if (typeof v !== 'string') return v;
  try {
    return v.trim() === '' ? undefined : parse(v);
  } catch {
    return v; // left as a string, so the schema reports the type it wanted
  }
};
export const num = <T extends z.ZodType>(s: T) => z.preprocess(fromString(Number), s);
export const json = <T extends z.ZodType>(s: T) => z.preprocess(fromString(JSON.parse), s);
export const bool = () =>
  z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/** Bytes of base64 or base64url text (already checked against BASE64), without Node's Buffer. */
function base64Bytes(b64: string): Uint8Array {
  let t = b64.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  // A dangling single character carries no whole byte (Buffer ignores it too).
  if (t.length % 4 === 1) t = t.slice(0, -1);
  const bin = atob(t + '='.repeat((4 - (t.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * An image: a file part in multipart bodies, or base64 text (optionally a data: URL) in JSON bodies.
 * Output: the bytes. Whether they are an image is the decoder's call (BAD_IMAGE).
 */
export const image = z
  .union([
    z.instanceof(Uint8Array),
    z
      .string()
      .min(1)
      .transform((s, ctx) => {
        const b64 = s.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
        if (!BASE64.test(b64)) {
          ctx.addIssue({ code: 'custom', message: 'not base64 (send the image bytes base64-encoded, or a multipart file part)' });
          return z.NEVER;
        }
        return base64Bytes(b64);
      }),
  ])
  .meta({ id: 'Image', type: 'string', format: 'byte', description: 'A JPEG, PNG or WebP photo: base64 text in JSON bodies, a file part in multipart bodies' });

/** A face embedding; its length must match the gallery's dimension (DIMENSION_MISMATCH otherwise). */
export const embedding = json(z.array(z.number()).min(1).max(65536)).meta({
  id: 'Embedding',
  type: 'array',
  items: { type: 'number' },
  description: 'A face embedding (any finite non-zero vector of the model dimension; normalised on arrival). In multipart bodies, a JSON array in a text field.',
});

const name = z.string().min(1).max(256);
const galleryName = z
  .string()
  .regex(GALLERY_NAME_PATTERN, { message: `a gallery name is ${GALLERY_NAME_RULE}` })
  .describe(`Gallery name: ${GALLERY_NAME_RULE}`);
const externalId = z
  .string()
  .min(1)
  .max(EXTERNAL_ID_MAX)
  .refine(isExternalId, { message: `an identity id is ${EXTERNAL_ID_RULE}` })
  .describe(`The identity's id in your system, unique among live identities of the gallery: ${EXTERNAL_ID_RULE}`);
const metadata = json(z.record(z.string(), z.unknown())).describe('Any JSON object');
const k = num(z.number().int().min(1).max(1000)).describe('Identities to return (default 5)');
const far = num(z.number().gt(0).lt(1)).describe('Open-set decision at this calibrated false-accept rate');
const threshold = num(z.number().min(-1).max(1)).describe('Open-set decision at this cosine score (takes precedence over far)');

// ---- requests ----

export const createGalleryBody = z.strictObject({
  name: galleryName,
  modelId: z.string().min(1).optional().describe('Embedding model of the gallery (default: the server\'s model)'),
  dimension: z.number().int().min(1).max(65536).optional().describe('Embedding dimension (default: the model\'s)'),
  m: z.number().int().min(2).max(256).optional(),
  efConstruction: z.number().int().min(1).max(100000).optional(),
  ef: z.number().int().min(1).max(100000).optional(),
});

export const createIdentityBody = z.strictObject({
  externalId,
  displayName: z.string().max(1024).optional(),
  metadata: metadata.optional(),
});

export const updateIdentityBody = z
  .strictObject({
    displayName: z.string().max(1024).nullable().optional(),
    metadata: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .refine((b) => b.displayName !== undefined || b.metadata !== undefined, { message: 'give displayName and/or metadata' });

export const pageQuery = z.strictObject({
  limit: num(z.number().int().min(1).max(1000)).optional().describe('Page size (default 100)'),
  offset: num(z.number().int().min(0)).optional().describe('Identities to skip (default 0)'),
});

const oneOfImageOrEmbedding = <T extends { image?: unknown; embedding?: unknown }>(b: T) =>
  (b.image === undefined) !== (b.embedding === undefined);
const IMAGE_XOR_EMBEDDING = { message: 'give exactly one of image and embedding' };

export const addFaceBody = z
  .strictObject({ image: image.optional(), embedding: embedding.optional(), quality: num(z.number()).optional() })
  .refine(oneOfImageOrEmbedding, IMAGE_XOR_EMBEDDING);

export const enrollBody = z.strictObject({
  faces: z
    .array(
      z
        .strictObject({
          identity: externalId,
          displayName: z.string().max(1024).optional(),
          metadata: z.record(z.string(), z.unknown()).optional(),
          image: image.optional(),
          embedding: embedding.optional(),
        })
        .refine(oneOfImageOrEmbedding, IMAGE_XOR_EMBEDDING),
    )
    .min(1)
    .max(1000),
  createIdentities: z.boolean().optional().describe('Create identities that do not exist (default true)'),
});

export const identifyBody = z
  .strictObject({
    image: image.optional(),
    embedding: embedding.optional(),
    k: k.optional(),
    far: far.optional(),
    threshold: threshold.optional(),
    exact: bool().optional().describe('Scan every face instead of searching the HNSW graph'),
    maxFaces: num(z.number().int().min(1).max(100)).optional().describe('With an image: identify at most this many faces, largest first (default 10)'),
  })
  .refine(oneOfImageOrEmbedding, IMAGE_XOR_EMBEDDING);

export const identifyBatchBody = z.strictObject({
  probes: z.array(z.array(z.number()).min(1).max(65536)).min(1).max(1000),
  k: k.optional(),
  far: far.optional(),
  threshold: threshold.optional(),
  exact: z.boolean().optional(),
});

const identityRef = z.strictObject({ gallery: name, identity: externalId }).meta({ id: 'IdentityRef' });
const verifySide = z.union([embedding, image]);
export const verifyBody = z.strictObject({
  a: verifySide.describe('An embedding or an image (its largest face)'),
  b: z.union([json(identityRef), verifySide]).describe('An embedding, an image, or an enrolled identity { gallery, identity }'),
  far: far.optional(),
  threshold: threshold.optional(),
  modelId: z.string().optional().describe('Whose calibration a far refers to when both sides are embeddings'),
});

export const embedBody = z.strictObject({ image });

export const createKeyBody = z.strictObject({
  name: name,
  gallery: name.nullable().optional().describe('The one gallery the key may use; omit for an admin key'),
});

// ---- responses ----

export const galleryResponse = z
  .object({
    name: z.string(),
    modelId: z.string(),
    modelVersion: z.string(),
    dimension: z.number().int(),
    m: z.number().int(),
    efConstruction: z.number().int(),
    ef: z.number().int(),
    identities: z.number().int(),
    faces: z.number().int(),
    createdAt: z.string(),
  })
  .meta({ id: 'Gallery' });

export const migrationResponse = z
  .object({
    gallery: z.string(),
    modelId: z.string().describe("The gallery's model now (it changes when the migration switches)"),
    dimension: z.number().int(),
    faces: z.number().int().describe('Live faces'),
    migration: z
      .object({
        modelId: z.string(),
        modelVersion: z.string(),
        dimension: z.number().int(),
        owner: z.string().describe('The process holding the claim (host:pid:random)'),
        startedAt: z.string(),
        heartbeatAt: z.string().describe('Its last sign of life'),
        active: z.boolean().describe('The claim is held (renewed within 30 s): adding faces answers 409 MIGRATING. False: the migration stopped; a rerun resumes'),
        staged: z.number().int().describe('Faces re-embedded with the new model so far (of `faces`)'),
      })
      .nullable()
      .describe('null when no migration is in progress or stopped'),
  })
  .meta({ id: 'GalleryMigration' });

export const identityResponse = z
  .object({
    externalId: z.string(),
    displayName: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    faces: z.number().int(),
    createdAt: z.string(),
  })
  .meta({ id: 'Identity' });

const box = z.tuple([z.number(), z.number(), z.number(), z.number()]).describe('[x, y, width, height] in photo pixels');
const landmarks = z.array(z.tuple([z.number(), z.number()])).describe('Eyes, nose tip, mouth corners in photo pixels');

export const detectedFace = z
  .object({ box, landmarks, score: z.number(), quality: z.number() })
  .meta({ id: 'DetectedFace' });

export const faceResponse = z
  .object({
    id: z.number().int(),
    identity: z.string(),
    box: z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() }).nullable(),
    keypoints: z.array(z.tuple([z.number(), z.number()])).nullable(),
    quality: z.number().nullable(),
    photoHash: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: 'Face' });

const candidate = z
  .object({ identity: z.string(), displayName: z.string().nullable(), score: z.number(), faceId: z.number().int() })
  .meta({ id: 'Candidate' });

export const identifyResult = z
  .object({
    candidates: z.array(candidate),
    match: candidate.nullable(),
    decision: z.enum(['match', 'unknown', 'no-threshold']),
    threshold: z.number().nullable(),
    far: z.number().nullable(),
    method: z.enum(['hnsw', 'exact']),
  })
  .meta({ id: 'IdentifyResult' });

export const identifyImageResult = z
  .object({ faces: z.array(z.object({ face: detectedFace, result: identifyResult })), facesInPhoto: z.number().int() })
  .meta({ id: 'IdentifyImageResult' });

export const verifyResult = z
  .object({
    score: z.number(),
    same: z.boolean().nullable(),
    threshold: z.number().nullable(),
    far: z.number().nullable(),
    faceId: z.number().int().optional(),
    faces: z.object({ a: detectedFace.optional(), b: detectedFace.optional() }).optional(),
  })
  .meta({ id: 'VerifyResult' });

export const embedResult = z
  .object({
    model: z.string(),
    faces: z.array(detectedFace.extend({ embedding: z.array(z.number()) })),
  })
  .meta({ id: 'EmbedResult' });

export const apiKeyResponse = z
  .object({ id: z.number().int(), name: z.string(), gallery: z.string().nullable(), createdAt: z.string(), revokedAt: z.string().nullable(), key: z.string().optional() })
  .meta({ id: 'ApiKey' });

export const errorResponse = z
  .object({ error: z.object({ code: z.string(), message: z.string(), requestId: z.string().optional() }) })
  .meta({ id: 'Error' });
