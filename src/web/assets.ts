// Fetching what the engine needs from the server that serves the page (the three models and the
// WASM kernels), once: each file is kept in Cache Storage under its content hash from the
// server's manifest, so a later visit reads it locally and a changed file is fetched again.
import { CosfaceError } from '../errors.js';

/** GET <base>manifest.json: every asset by its path under base, with its size and SHA-256. */
export interface AssetManifest {
  files: Record<string, { bytes: number; sha256: string }>;
}

export const ASSET_CACHE = 'cosface-assets-v1';

export interface AssetStats {
  /** Files read from Cache Storage / fetched over the network. */
  cached: number;
  fetched: number;
  bytes: number;
}

export class AssetLoader {
  readonly stats: AssetStats = { cached: 0, fetched: 0, bytes: 0 };
  private constructor(
    readonly base: URL,
    readonly manifest: AssetManifest,
    private readonly cache: Cache | null,
  ) {}

  /** Reads the manifest (never cached) and opens the cache; useCache false (or no Cache Storage, e.g. not a secure context) fetches every time. */
  static async open(base: URL, useCache = true): Promise<AssetLoader> {
    const url = new URL('manifest.json', base);
    let manifest: AssetManifest;
    try {
      const r = await fetch(url, { cache: 'no-store' });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      manifest = (await r.json()) as AssetManifest;
    } catch (e) {
      throw new CosfaceError('BAD_MODEL', `cannot read the asset manifest ${url}: ${(e as Error).message}`, { cause: e });
    }
    let cache: Cache | null = null;
    if (useCache && typeof caches !== 'undefined') {
      try {
        cache = await caches.open(ASSET_CACHE);
      } catch {
        cache = null;
      }
    }
    return new AssetLoader(base, manifest, cache);
  }

  has(path: string): boolean {
    return path in this.manifest.files;
  }

  /** The bytes of one asset (a path under base, as the manifest names it), checked against its hash. */
  async bytes(path: string): Promise<Uint8Array> {
    const entry = this.manifest.files[path];
    if (!entry) throw new CosfaceError('BAD_MODEL', `${path} is not in the server's asset manifest`);
    // The hash in the URL makes each version its own cache entry (and defeats HTTP caches).
    const url = new URL(`${path}?sha256=${entry.sha256}`, this.base);
    if (this.cache) {
      const hit = await this.cache.match(url);
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        if (bytes.byteLength === entry.bytes) {
          this.stats.cached++;
          this.stats.bytes += bytes.byteLength;
          return bytes;
        }
      }
    }
    let bytes: Uint8Array;
    try {
      const r = await fetch(url);
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      bytes = new Uint8Array(await r.arrayBuffer());
    } catch (e) {
      throw new CosfaceError('BAD_MODEL', `cannot fetch ${url}: ${(e as Error).message}`, { cause: e });
    }
    const sha = await sha256Hex(bytes);
    if (sha !== null && sha !== entry.sha256) throw new CosfaceError('BAD_MODEL', `${path}: content does not match the manifest (sha256 ${sha}, expected ${entry.sha256})`);
    this.stats.fetched++;
    this.stats.bytes += bytes.byteLength;
    if (this.cache) {
      await this.cache.put(url, new Response(bytes as unknown as BodyInit, { headers: { 'content-type': 'application/octet-stream' } })).catch(() => undefined);
      // Older versions of the same file are no longer needed.
      for (const req of await this.cache.keys()) {
        const u = new URL(req.url);
        if (u.pathname === url.pathname && u.search !== url.search) await this.cache.delete(req);
      }
    }
    return bytes;
  }

  async json<T>(path: string): Promise<T> {
    return JSON.parse(new TextDecoder().decode(await this.bytes(path))) as T;
  }
}

/** Hex SHA-256, or null where SubtleCrypto is missing (not a secure context). */
async function sha256Hex(bytes: Uint8Array): Promise<string | null> {
  if (typeof crypto === 'undefined' || !crypto.subtle) return null;
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as unknown as BufferSource));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}
