// API keys: random bearer tokens of which only the sha256 is stored (api_keys table), each either
// for every gallery (an admin key) or for exactly one gallery.
import { and, eq, isNull } from 'drizzle-orm';
import { CosfaceError } from '../errors.js';
import { openDatabase, type OpenedDb } from '../db/open-db.js';
import { apiKeys, galleries } from '../db/schema.js';
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
  private readonly byHash;

  constructor(private readonly opened: OpenedDb) {
    this.byHash = opened.sqlite.prepare(
      `SELECT k.id, k.name, k.gallery_id AS galleryId, g.name AS gallery, k.created_at AS createdAt, k.revoked_at AS revokedAt
       FROM api_keys k LEFT JOIN galleries g ON g.id = k.gallery_id WHERE k.key_hash = ?`,
    );
  }

  /** Opens the key table of the database at `dbPath` on a connection of its own. */
  static open(dbPath: string): ApiKeys {
    return new ApiKeys(openDatabase(dbPath));
  }

  /** The live key with this value, or null (unknown or revoked). */
  lookup(key: string): ApiKeyInfo | null {
    const r = this.byHash.get(hashKey(key)) as
      | { id: number; name: string; galleryId: number | null; gallery: string | null; createdAt: number; revokedAt: number | null }
      | undefined;
    if (!r || r.revokedAt !== null) return null;
    // A key whose gallery is gone was deleted with it (ON DELETE CASCADE); this guards the gap.
    if (r.galleryId !== null && r.gallery === null) return null;
    return { id: r.id, name: r.name, gallery: r.gallery, createdAt: new Date(r.createdAt), revokedAt: null };
  }

  /** Creates a key; the returned `key` is the only time its value is seen. */
  create(o: { name: string; gallery?: string | null }): CreatedApiKey {
    const key = newKeyValue();
    return { ...this.insert(key, o), key };
  }

  /** Stores a key whose value the caller chose (COSFACE_ADMIN_KEY); a no-op when it is already there. */
  adopt(key: string, o: { name: string; gallery?: string | null }): ApiKeyInfo {
    if (typeof key !== 'string' || key.length < MIN_KEY_LENGTH || /\s/.test(key)) {
      throw new CosfaceError('BAD_INPUT', `an API key must be at least ${MIN_KEY_LENGTH} characters without spaces`);
    }
    const found = this.opened.db.select().from(apiKeys).where(eq(apiKeys.keyHash, hashKey(key))).get();
    if (found) {
      if (found.revokedAt) throw new CosfaceError('BAD_INPUT', `API key "${found.name}" (id ${found.id}) was revoked; choose another value`);
      return this.list().find((k) => k.id === found.id)!;
    }
    return this.insert(key, o);
  }

  list(): ApiKeyInfo[] {
    return this.opened.db
      .select({ k: apiKeys, gallery: galleries.name })
      .from(apiKeys)
      .leftJoin(galleries, eq(galleries.id, apiKeys.galleryId))
      .orderBy(apiKeys.id)
      .all()
      .map((r) => ({ id: r.k.id, name: r.k.name, gallery: r.gallery, createdAt: r.k.createdAt, revokedAt: r.k.revokedAt ?? null }));
  }

  /** Whether a live admin key exists (the server creates one on first start when not). */
  hasAdminKey(): boolean {
    return !!this.opened.db.select({ id: apiKeys.id }).from(apiKeys).where(and(isNull(apiKeys.galleryId), isNull(apiKeys.revokedAt))).get();
  }

  revoke(id: number): ApiKeyInfo {
    const row = this.opened.db
      .update(apiKeys)
      .set({ revokedAt: new Date() })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning({ id: apiKeys.id })
      .get();
    if (!row) throw new CosfaceError('NOT_FOUND', `no live API key with id ${id}`);
    return this.list().find((k) => k.id === id)!;
  }

  close(): void {
    this.opened.sqlite.close();
  }

  private insert(key: string, o: { name: string; gallery?: string | null }): ApiKeyInfo {
    if (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 256) {
      throw new CosfaceError('BAD_INPUT', 'an API key needs a name of 1 to 256 characters');
    }
    let galleryId: number | null = null;
    if (o.gallery !== undefined && o.gallery !== null) {
      const g = this.opened.db.select({ id: galleries.id }).from(galleries).where(eq(galleries.name, o.gallery)).get();
      if (!g) throw new CosfaceError('GALLERY_NOT_FOUND', `gallery "${o.gallery}" not found`);
      galleryId = g.id;
    }
    const row = this.opened.db
      .insert(apiKeys)
      .values({ name: o.name, keyHash: hashKey(key), galleryId, createdAt: new Date() })
      .returning()
      .get();
    return { id: row.id, name: row.name, gallery: o.gallery ?? null, createdAt: row.createdAt, revokedAt: null };
  }
}

/**
 * Creates an API key in a store's database and returns it with its value (shown once): for the CLI
 * (`cosface keys create`) and for scripts. `gallery` omitted or null: an admin key.
 */
export function createApiKey(store: Store | string, o: { name?: string; gallery?: string | null } = {}): CreatedApiKey {
  const path = typeof store === 'string' ? store : store.dbPath;
  if (!path) throw new CosfaceError('BAD_INPUT', 'API keys need a file database (the store is in memory)');
  const keys = ApiKeys.open(path);
  try {
    return keys.create({ name: o.name ?? (o.gallery ? `key for ${o.gallery}` : 'admin'), gallery: o.gallery ?? null });
  } finally {
    keys.close();
  }
}
