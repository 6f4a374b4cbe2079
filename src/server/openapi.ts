// The OpenAPI 3.1 description, generated from the app's own routes: every route registered with a
// spec middleware (route-spec.ts) appears with its access, body or query schema, response schema
// and error codes; routes without one are not described.
import type { Hono } from 'hono';
import { z } from 'zod';
import type { ErrorCode } from '../errors.js';
import type { AppEnv } from './env.js';
import { documentedErrors, httpStatus } from './http-errors.js';
import type { RouteSpec } from './route-spec.js';
import * as s from './schemas.js';

/** Errors any route can answer with, on top of its own list. */
const COMMON_ERRORS: readonly ErrorCode[] = ['BAD_INPUT', 'INTERNAL'];
const BODY_ERRORS: readonly ErrorCode[] = ['BAD_JSON', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'];

type Json = Record<string, unknown>;

export interface DescribedRoute {
  method: string;
  path: string;
  spec: RouteSpec;
}

/** The spec'd routes of an app, in registration order. */
export function describedRoutes(app: Hono<AppEnv>): DescribedRoute[] {
  const out: DescribedRoute[] = [];
  for (const r of app.routes) {
    const spec = (r.handler as { spec?: RouteSpec }).spec;
    if (spec) out.push({ method: r.method.toLowerCase(), path: r.path, spec });
  }
  return out;
}

export function openApiDocument(app: Hono<AppEnv>, info: { version: string; auth: boolean }): Json {
  const components: Record<string, unknown> = {};
  const toSchema = (schema: z.ZodType, io: 'input' | 'output'): unknown => {
    const js = z.toJSONSchema(schema, {
      io,
      unrepresentable: 'any',
      override: (ctx) => {
        // Images are bytes inside the server but base64 text (or a file part) on the wire.
        if (ctx.zodSchema === s.image) {
          for (const k of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as Json)[k];
          Object.assign(ctx.jsonSchema, { type: 'string', format: 'byte', description: 'A JPEG, PNG or WebP photo: base64 text (or a data: URL) in JSON bodies, a file part in multipart bodies' });
        }
      },
    }) as Json;
    const defs = (js.$defs ?? {}) as Json;
    delete js.$defs;
    delete js.$schema;
    const fix = (v: unknown) => JSON.parse(JSON.stringify(v).replaceAll('"#/$defs/', '"#/components/schemas/'));
    for (const [k, v] of Object.entries(defs)) components[k] = fix(v);
    return fix(js);
  };
  components.Error = toSchema(s.errorResponse, 'output');

  const paths: Record<string, Json> = {};
  for (const { method, path, spec } of describedRoutes(app)) {
    const oaPath = path.replace(/:(\w+)/g, '{$1}');
    const params = [...path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (spec.query) {
      const q = toSchema(spec.query, 'input') as { properties?: Record<string, Json>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {})) {
        params.push({ name, in: 'query', required: (q.required ?? []).includes(name), schema: schema as never });
      }
    }
    const errors = new Set<ErrorCode>([...COMMON_ERRORS, ...(spec.body ? BODY_ERRORS : []), ...spec.errors]);
    if (spec.access !== 'public' && info.auth) errors.add('UNAUTHORIZED');
    if ((spec.access === 'admin' || spec.access === 'gallery') && info.auth) errors.add('FORBIDDEN');
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of errors) byStatus.set(httpStatus(code), [...(byStatus.get(httpStatus(code)) ?? []), code]);
    const responses: Json = {
      [String(spec.response.status)]: {
        description: spec.response.description,
        ...(spec.response.schema ? { content: { 'application/json': { schema: toSchema(spec.response.schema, 'output') } } } : {}),
      },
    };
    for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      responses[String(status)] = {
        description: `error.code: ${codes.join(', ')}`,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    const op: Json = {
      tags: [spec.tag],
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      operationId: `${method}${oaPath.replace(/[{}]/g, '').replace(/\/(\w)/g, (_, ch: string) => ch.toUpperCase()).replace(/\W/g, '')}`,
      ...(params.length ? { parameters: params } : {}),
      security: spec.access === 'public' || !info.auth ? [] : [{ apiKey: [] }],
      'x-access': spec.access,
      responses,
    };
    if (spec.body) {
      const schema = toSchema(spec.body.schema, 'input');
      const content: Json = {};
      if (spec.body.media.includes('json')) content['application/json'] = { schema };
      if (spec.body.media.includes('multipart')) content['multipart/form-data'] = { schema };
      op.requestBody = { required: true, content };
    }
    (paths[oaPath] ??= {})[method] = op;
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'cosface',
      version: info.version,
      description:
        'Face-identity search: galleries of identities with face embeddings, 1:N identify, 1:1 verify, embed. ' +
        'Errors are JSON { "error": { "code", "message", "requestId" } } with stable codes; every response carries X-Request-Id. ' +
        'Access: "gallery" routes need an admin key or a key for the gallery in the path; "admin" routes an admin key; "key" routes any key.',
    },
    servers: [{ url: '/' }],
    components: {
      schemas: components,
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <API key>' } },
    },
    paths,
    'x-error-codes': documentedErrors(),
  };
}

/** A small self-contained docs page rendered from the OpenAPI document (no external scripts). */
export function docsPage(doc: Json): string {
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const rows: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    for (const [method, op] of Object.entries(ops)) {
      const body = op.requestBody ? Object.keys((op.requestBody as { content: Json }).content).join(', ') : '';
      const codes = Object.entries(op.responses as Record<string, Json>).map(([st, r]) => `<b>${st}</b> ${esc(String(r.description))}`).join('<br>');
      rows.push(
        `<tr><td><code>${method.toUpperCase()}</code></td><td><code>${esc(path)}</code></td><td>${esc(String(op.summary))}` +
          `${op.description ? `<br><small>${esc(String(op.description))}</small>` : ''}</td><td>${esc(String(op['x-access']))}</td><td>${esc(body)}</td><td><small>${codes}</small></td></tr>`,
      );
    }
  }
  const info = doc.info as { title: string; version: string; description: string };
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(info.title)} API</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:90em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}code{white-space:nowrap}</style>
</head><body><h1>${esc(info.title)} ${esc(info.version)} HTTP API</h1><p>${esc(info.description)}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<table><tr><th>Method</th><th>Path</th><th>What</th><th>Access</th><th>Body</th><th>Responses</th></tr>${rows.join('\n')}</table></body></html>`;
}
