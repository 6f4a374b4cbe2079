// /v1/dedupe and /v1/jobs: de-duplicating photo folders on the server's disk is long work, so a
// POST queues a job and GET /v1/jobs/:id reports its progress and, when done, the result (the JSON
// of `cosface dedupe --json`). Admin keys only: the paths are read with the server's permissions.
import { Hono } from 'hono';
import { z } from 'zod';
import { CosfaceError } from '../../errors.js';
import type { JobInfo } from '../../jobs/job-store.js';
import type { DedupeJobs } from '../dedupe-jobs.js';
import type { ServerDeps } from '../deps.js';
import type { AppEnv } from '../env.js';
import { inputOf, route } from '../route-spec.js';
import { num } from '../schemas.js';

const uploadedFace = z.strictObject({
  photo: z.string().min(1).max(4096).describe('The photo the face is in: faces of one photo are never one person'),
  box: z.tuple([z.number(), z.number(), z.number(), z.number()]).optional().describe('[x, y, w, h], echoed in the result'),
  embedding: z.array(z.number()).min(1).max(65536).describe("The face's embedding from this server's model (POST /v1/embed, or the browser library)"),
});

export const dedupeBody = z.strictObject({
  paths: z.array(z.string().min(1).max(4096)).min(1).max(100).optional().describe('Folders (or photo files) on the server, walked recursively, links followed'),
  faces: z
    .array(uploadedFace)
    .min(1)
    .max(20000)
    .optional()
    .describe('Instead of paths: faces whose embeddings the client computed. Clustered into people only: nothing is stored, no near-duplicate search (the photos are not here)'),
  library: z
    .string()
    .min(1)
    .max(256)
    .regex(/^\S(.*\S)?$/, 'no surrounding spaces')
    .optional()
    .describe('The photo library in the store that keeps the embeddings (default "default"): a second job over the same photos embeds nothing'),
  threshold: z.number().min(-1).max(1).optional().describe('Cosine edge threshold for clustering faces into people (default: the clustering default)'),
  far: z.number().gt(0).lt(1).optional().describe('Take the threshold calibrated at this false-accept rate instead'),
});

const face = z.object({ photo: z.string(), box: z.array(z.number()).length(4).describe('[x, y, w, h] in photo pixels') });
export const dedupeResult = z
  .object({
    photos: z.number().int(),
    faces: z.number().int(),
    people: z.array(z.object({ id: z.string(), faces: z.array(face) })).describe('Largest first'),
    unclustered: z.array(face),
    nearDuplicates: z.array(z.array(z.string())).describe('Groups of near-identical photos, largest photo first'),
    skipped: z.array(z.object({ photo: z.string(), reason: z.string(), detail: z.string().optional() })),
    library: z.object({ name: z.string(), embedded: z.number().int(), reused: z.number().int(), copies: z.number().int(), moved: z.number().int(), photos: z.number().int(), faces: z.number().int() }).optional().describe('Jobs over paths: what the job did to the photo library'),
    threshold: z.number(),
    duplicatePeople: z.array(z.object({ a: z.string(), b: z.string(), score: z.number() })),
  })
  .meta({ id: 'DedupeResult' });

export const jobResponse = z
  .object({
    id: z.number().int(),
    kind: z.string(),
    status: z.enum(['queued', 'running', 'done', 'failed']),
    done: z.number().int().describe('Photos processed so far'),
    total: z.number().int().nullable().describe('Photos found (null until the folders are walked)'),
    params: z.record(z.string(), z.unknown()).nullable(),
    result: dedupeResult.nullable().describe('When done'),
    error: z.string().nullable().describe('When failed: "CODE: message"'),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Job' });

const jobJson = (j: JobInfo) => ({
  id: j.id,
  kind: j.kind,
  status: j.status,
  done: j.done,
  total: j.total,
  params: j.params,
  result: j.result,
  error: j.error,
  createdAt: j.createdAt.toISOString(),
  updatedAt: j.updatedAt.toISOString(),
});

export function dedupeRoutes(deps: ServerDeps, jobs: DedupeJobs): Hono<AppEnv> {
  const { limits } = deps;
  const app = new Hono<AppEnv>();

  app.post(
    '/dedupe',
    route(
      {
        tag: 'dedupe',
        summary: 'Start de-duplicating photo folders on the server: faces grouped into people, near-duplicate photos',
        description:
          'Queues a job and answers at once with it (202). Jobs run one at a time; poll GET /v1/jobs/{id} for progress and the result. With paths, embeddings are kept in the store\'s photo library, so a job that stopped, or a second job over the same photos, embeds only what is new. With faces (embeddings computed by the client, e.g. in a browser), the faces are only clustered into people.',
        access: 'admin',
        body: { schema: dedupeBody, media: ['json'], size: 'image' },
        response: { status: 202, description: 'The queued job', schema: jobResponse },
        errors: ['NOT_CALIBRATED', 'DIMENSION_MISMATCH'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, dedupeBody);
      if (b.far !== undefined && b.threshold !== undefined) throw new CosfaceError('BAD_INPUT', 'give far or threshold, not both');
      const job = await jobs.submit({ ...(b.paths ? { paths: b.paths } : {}), ...(b.faces ? { faces: b.faces } : {}), library: b.library ?? 'default', ...(b.threshold !== undefined ? { threshold: b.threshold } : {}), ...(b.far !== undefined ? { far: b.far } : {}) });
      c.header('Location', `/v1/jobs/${job.id}`);
      return c.json(jobJson(job), 202);
    },
  );

  const jobId = z.strictObject({ id: num(z.number().int().min(1)) });
  app.get(
    '/jobs/:id',
    route(
      {
        tag: 'dedupe',
        summary: 'A job: its status, progress and, when done, its result',
        access: 'admin',
        response: { status: 200, description: 'The job', schema: jobResponse },
        errors: [],
      },
      limits,
    ),
    (c) => {
      const parsed = jobId.safeParse({ id: c.req.param('id') });
      if (!parsed.success) throw new CosfaceError('BAD_INPUT', `job id must be a positive integer, got "${c.req.param('id')}"`);
      const job = jobs.store.get(parsed.data.id);
      if (!job) throw new CosfaceError('NOT_FOUND', `no job ${parsed.data.id}`);
      return c.json(jobJson(job));
    },
  );

  return app;
}
