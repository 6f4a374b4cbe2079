// One middleware per route that both documents it and enforces the documentation: access, accepted
// media types, body size limit, and the zod schema of its input. The OpenAPI description is
// generated from these specs (openapi.ts), so the docs cannot drift from what the code checks.
import type { Context, MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { CosfaceError, type ErrorCode } from '../errors.js';
import { checkAccess, type Access } from './auth.js';
import type { AppEnv } from './env.js';

export type Media = 'json' | 'multipart';

export interface Limits {
  /** Largest JSON body without images, in bytes (default 1 MiB). */
  jsonBytes: number;
  /** Largest body that carries images, JSON (base64) or multipart (default 20 MiB). */
  imageBytes: number;
}

export const DEFAULT_LIMITS: Limits = { jsonBytes: 1 << 20, imageBytes: 20 << 20 };

export interface RouteSpec<S extends z.ZodType = z.ZodType> {
  summary: string;
  description?: string;
  tag: string;
  access: Access;
  /** A request body: its schema and media types; 'image' bodies get the larger size limit. */
  body?: { schema: S; media: readonly Media[]; size?: 'json' | 'image' };
  /** Query parameters instead of a body. */
  query?: S;
  response: { status: number; description: string; schema?: z.ZodType };
  /** Error codes this route answers with, beyond the ones every route can give. */
  errors: readonly ErrorCode[];
}

/** A spec'd middleware: the spec travels on the function so openapi.ts can find it in app.routes. */
export type SpecMiddleware<S extends z.ZodType> = MiddlewareHandler<AppEnv & { Variables: { input: z.output<S> } }> & {
  spec: RouteSpec;
};

export function route<S extends z.ZodType>(spec: RouteSpec<S>, limits: Limits): SpecMiddleware<S> {
  if (spec.body && spec.query) throw new Error(`route "${spec.summary}": a body or a query, not both`);
  const mw = async (c: Context<AppEnv>, next: () => Promise<void>) => {
    checkAccess(c, spec.access, c.req.param('g'));
    if (spec.body) {
      const raw = await readInput(c, spec.body.media, spec.body.size === 'image' ? limits.imageBytes : limits.jsonBytes);
      c.set('input', validate(spec.body.schema, raw, 'body'));
    } else if (spec.query) {
      c.set('input', validate(spec.query, c.req.query(), 'query'));
    }
    await next();
  };
  return Object.assign(mw, { spec: spec as RouteSpec }) as unknown as SpecMiddleware<S>;
}

/** The validated input of the current route (typed by the caller from the route's schema). */
export function inputOf<S extends z.ZodType>(c: Context, _schema: S): z.output<S> {
  return c.get('input') as z.output<S>;
}

function validate<S extends z.ZodType>(schema: S, raw: unknown, where: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : where}: ${i.message}`);
  throw new CosfaceError('BAD_INPUT', `invalid ${where}: ${issues.join('; ')}`);
}

function mediaOf(c: Context): string {
  return (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

const MEDIA_TYPE: Record<Media, string> = { json: 'application/json', multipart: 'multipart/form-data' };

/** Reads and parses the body as one of the accepted media types, within maxBytes. */
async function readInput(c: Context, accepted: readonly Media[], maxBytes: number): Promise<Record<string, unknown>> {
  const type = mediaOf(c);
  const media = (accepted as Media[]).find((m) => type === MEDIA_TYPE[m] || (m === 'json' && /^application\/[\w.+-]*\+json$/.test(type)));
  if (!media) {
    throw new CosfaceError(
      'UNSUPPORTED_MEDIA_TYPE',
      `content type "${type || '(none)'}" is not accepted here; send ${accepted.map((m) => MEDIA_TYPE[m]).join(' or ')}`,
    );
  }
  const bytes = await readBody(c, maxBytes);
  if (media === 'json') return parseJsonObject(bytes);
  return parseMultipart(bytes, c.req.header('content-type')!);
}

/** The raw body, refusing (before reading, when Content-Length says so) anything over maxBytes. */
export async function readBody(c: Context, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () => new CosfaceError('PAYLOAD_TOO_LARGE', `request body over the limit of ${maxBytes} bytes`);
  const declared = c.req.header('content-length');
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge();
  const body = c.req.raw.body;
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new CosfaceError('BAD_JSON', `the body is not valid JSON: ${(e as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CosfaceError('BAD_INPUT', 'the JSON body must be an object');
  }
  return value as Record<string, unknown>;
}

async function parseMultipart(bytes: Uint8Array, contentType: string): Promise<Record<string, unknown>> {
  let form: FormData;
  try {
    form = await new Response(bytes as unknown as BodyInit, { headers: { 'content-type': contentType } }).formData();
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `malformed multipart body: ${(e as Error).message}`);
  }
  const parts: [string, FormDataEntryValue][] = [];
  form.forEach((value, key) => parts.push([key, value]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of parts) {
    if (key in out) throw new CosfaceError('BAD_INPUT', `multipart field "${key}" given more than once`);
    out[key] = typeof value === 'string' ? value : new Uint8Array(await value.arrayBuffer());
  }
  return out;
}
