// Bearer-key authentication and gallery scoping. Who is calling is decided once per request
// (authenticate) and each route states what it needs (checkAccess).
import type { Context, MiddlewareHandler } from 'hono';
import { CosfaceError } from '../errors.js';
import type { ApiKeys } from './api-keys.js';
import type { AppEnv } from './env.js';

/** The caller: an admin key, a key for one gallery, or anyone when auth is disabled. */
export type Principal =
  | { kind: 'admin'; keyId: number }
  | { kind: 'gallery'; keyId: number; gallery: string }
  | { kind: 'open' }
  | { kind: 'anonymous' };

/** What a route needs: nothing, any valid key, a key for the gallery in the path (`:g`), or an admin key. */
export type Access = 'public' | 'key' | 'gallery' | 'admin';

export function authenticate(keys: ApiKeys | null): MiddlewareHandler<AppEnv> {
  return async function authenticateRequest(c, next) {
    if (!keys) {
      c.set('principal', { kind: 'open' });
      return next();
    }
    const header = c.req.header('authorization');
    if (!header) {
      c.set('principal', { kind: 'anonymous' });
      return next();
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new CosfaceError('UNAUTHORIZED', 'the Authorization header must be "Bearer <key>"');
    const info = await keys.lookup(m[1]!);
    if (!info) throw new CosfaceError('UNAUTHORIZED', 'unknown or revoked API key');
    c.set('principal', info.gallery === null ? { kind: 'admin', keyId: info.id } : { kind: 'gallery', keyId: info.id, gallery: info.gallery });
    return next();
  };
}

/** Throws UNAUTHORIZED/FORBIDDEN unless the caller may do what `access` says (on `gallery` for 'gallery'). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any route's context, whatever its input type
export function checkAccess(c: Context<any>, access: Access, gallery?: string): void {
  if (access === 'public') return;
  const p = (c as Context<AppEnv>).get('principal');
  if (p.kind === 'open' || p.kind === 'admin') return;
  if (p.kind === 'anonymous') throw new CosfaceError('UNAUTHORIZED', 'this route needs an API key: send "Authorization: Bearer <key>"');
  if (access === 'key') return;
  if (access === 'admin') throw new CosfaceError('FORBIDDEN', `this key is for gallery "${p.gallery}" only; this route needs an admin key`);
  if (gallery !== p.gallery) {
    // Same answer whether or not the gallery exists: a scoped key learns nothing about others.
    throw new CosfaceError('FORBIDDEN', `this key is for gallery "${p.gallery}" only`);
  }
}

/** The galleries a caller may see: null means all. */
export function visibleGalleries(p: Principal): string[] | null {
  if (p.kind === 'gallery') return [p.gallery];
  if (p.kind === 'anonymous') return [];
  return null;
}
