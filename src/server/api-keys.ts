// API keys: random bearer tokens of which only the sha256 is stored (api_keys table), each either
// for every gallery (an admin key) or for exactly one gallery.
import { CosfaceError } from '../errors.js';
import type { ApiKeyRecord, MetaStore } from '../store/meta.js';
import type { Store } from '../store/store.js';
import { sha256Hex } from './sha256.js';

/** A key's public description (never its value or hash). */
export interface ApiKeyInfo {
  id: number;
  name: string;
  /** null: an admin key, good for every gallery and for managing galleries and keys. */
  gallery: string | null;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface CreatedApiKey extends ApiKeyInfo {
  /** The key itself: shown once, never stored. */
  key: string;
}

const KEY_PREFIX = 'cfk_';
/** Shortest key accepted from COSFACE_ADMIN_KEY: shorter is guessable. */
export const MIN_KEY_LENGTH = 16;

export function hashKey(key: string): string {
  return sha256Hex(key);
}

/** A new key: the prefix and 24 random bytes (WebCrypto), base64url. */
export function newKeyValue(): string {
  const b = crypto.getRandomValues(new Uint8Array(24));
  return KEY_PREFIX + btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class ApiKeys {
  constructor(private readonly meta: MetaStore) {}

  /** The key table of a store's database. */
  static of(store: Store): ApiKeys {
    return new ApiKeys(store.meta);
  }

  /** The live key with this value, or null (unknown or revoked). */
  async lookup(key: string): Promise<ApiKeyInfo | null> {
    const r = await this.meta.keyByHash(hashKey(key));
    if (!r || r.revokedAt !== null) return null;
    // A key whose gallery is gone was deleted with it; this guards the gap.
    if (r.galleryId !== null && r.gallery === null) return null;
    return info(r);
  }

  /** Creates a key; the returned `key` is the only time its value is seen. */
  async create(o: { name: string; gallery?: string | null }): Promise<CreatedApiKey> {
    const key = newKeyValue();
    return { ...(await this.insert(key, o)), key };
  }

  /** Stores a key whose value the caller chose (COSFACE_ADMIN_KEY); a no-op when it is already there. */
  async adopt(key: string, o: { name: string; gallery?: string | null }): Promise<ApiKeyInfo> {
    if (typeof key !== 'string' || key.length < MIN_KEY_LENGTH || /\s/.test(key)) {
      throw new CosfaceError('BAD_INPUT', `an API key must be at least ${MIN_KEY_LENGTH} characters without spaces`);
    }
    const found = await this.meta.keyByHash(hashKey(key));
    if (found) {
      if (found.revokedAt) throw new CosfaceError('BAD_INPUT', `API key "${found.name}" (id ${found.id}) was revoked; choose another value`);
      return info(found);
    }
    return this.insert(key, o);
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await this.meta.listKeys()).map(info);
  }

  /** Whether a live admin key exists (the server creates one on first start when not). */
  hasAdminKey(): Promise<boolean> {
    return this.meta.hasAdminKey();
  }

  async revoke(id: number): Promise<ApiKeyInfo> {
    if (!(await this.meta.revokeKey(id, new Date()))) throw new CosfaceError('NOT_FOUND', `no live API key with id ${id}`);
    return (await this.list()).find((k) => k.id === id)!;
  }

  private async insert(key: string, o: { name: string; gallery?: string | null }): Promise<ApiKeyInfo> {
    if (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 256) {
      throw new CosfaceError('BAD_INPUT', 'an API key needs a name of 1 to 256 characters');
    }
    let galleryId: number | null = null;
    if (o.gallery !== undefined && o.gallery !== null) {
      const g = typeof o.gallery === 'string' ? await this.meta.galleryByName(o.gallery) : undefined;
      if (!g) throw new CosfaceError('GALLERY_NOT_FOUND', `gallery "${String(o.gallery)}" not found`);
      galleryId = g.id;
    }
    return info(await this.meta.insertKey({ name: o.name, keyHash: hashKey(key), galleryId, createdAt: new Date() }));
  }
}

function info(r: ApiKeyRecord): ApiKeyInfo {
  return { id: r.id, name: r.name, gallery: r.gallery, createdAt: r.createdAt, revokedAt: r.revokedAt };
}

/**
 * Makes sure the database has an admin key: installs `adminKey` (from COSFACE_ADMIN_KEY) when given,
 * else creates one when none exists and returns it (its only showing).
 */
export async function ensureAdminKey(keys: ApiKeys, adminKey: string | undefined): Promise<string | null> {
  if (adminKey !== undefined && adminKey !== '') {
    await keys.adopt(adminKey, { name: 'admin (COSFACE_ADMIN_KEY)', gallery: null });
    return null;
  }
  if (await keys.hasAdminKey()) return null;
  return (await keys.create({ name: 'admin (created on first start)', gallery: null })).key;
}
