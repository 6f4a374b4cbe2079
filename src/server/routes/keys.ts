// /v1/keys: API key management (admin keys only). Keys are shown once, at creation.
import { Hono } from 'hono';
import { z } from 'zod';
import { CosfaceError } from '../../errors.js';
import { keyJson, type ServerDeps } from '../deps.js';
import type { AppEnv } from '../env.js';
import { inputOf, route } from '../route-spec.js';
import * as s from '../schemas.js';

export function keyRoutes(deps: ServerDeps): Hono<AppEnv> {
  const { limits } = deps;
  const app = new Hono<AppEnv>();
  const keys = () => {
    if (!deps.keys) throw new CosfaceError('NOT_FOUND', 'API keys are off on this server (started without auth)');
    return deps.keys;
  };

  app.post(
    '/',
    route(
      {
        tag: 'keys',
        summary: 'Create an API key, for one gallery or (without gallery) an admin key',
        access: 'admin',
        body: { schema: s.createKeyBody, media: ['json'] },
        response: { status: 201, description: 'The key with its value in `key`: shown this once, only its hash is stored', schema: s.apiKeyResponse },
        errors: ['GALLERY_NOT_FOUND', 'NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const b = inputOf(c, s.createKeyBody);
      return c.json(keyJson(await keys().create({ name: b.name, gallery: b.gallery ?? null })), 201);
    },
  );

  app.get(
    '/',
    route(
      {
        tag: 'keys',
        summary: 'List API keys (names and scopes, never values)',
        access: 'admin',
        response: { status: 200, description: 'All keys, revoked ones included', schema: z.object({ keys: z.array(s.apiKeyResponse) }) },
        errors: ['NOT_FOUND'],
      },
      limits,
    ),
    async (c) => c.json({ keys: (await keys().list()).map(keyJson) }),
  );

  app.delete(
    '/:id',
    route(
      {
        tag: 'keys',
        summary: 'Revoke an API key',
        access: 'admin',
        response: { status: 200, description: 'The revoked key', schema: s.apiKeyResponse },
        errors: ['NOT_FOUND'],
      },
      limits,
    ),
    async (c) => {
      const id = Number(c.req.param('id'));
      if (!Number.isSafeInteger(id) || id < 1) throw new CosfaceError('BAD_INPUT', `key id must be a positive integer, got "${c.req.param('id')}"`);
      return c.json(keyJson(await keys().revoke(id)));
    },
  );

  return app;
}
