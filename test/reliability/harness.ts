// The reliability suite's tools: the real `cosface` command (node dist/src/cli.js) as server and
// as CLI, an HTTP client with the admin key, deterministic embeddings, and read-only views of the
// SQLite file (a fingerprint of every row, the rows the checks need). Only the CLI/HTTP surface
// and the database file are used, never the store's TypeScript API, so the suite checks what a
// user runs and outlives changes inside src/store.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { mulberry32 } from '../../src/random.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(repoRoot, 'dist/src/cli.js');
export const ADMIN_KEY = 'reliability-admin-key-0123456789abcdef';
export const DIM = 128;

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `cosface-rel-${prefix}-`));
}

/** mulberry32: the same seeded generator as the rest of the tests. */
export const rng = mulberry32;

/** A deterministic embedding for a seed (not unit length: the server normalises it). */
export function vector(seed: number, dim = DIM): number[] {
  const r = rng(seed * 7919 + 17);
  return Array.from({ length: dim }, () => r() * 2 - 1);
}

export function unit(v: readonly number[]): Float32Array {
  const n = Math.hypot(...v);
  return Float32Array.from(v, (x) => x / n);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli.js ...args`. */
export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? repoRoot, env: { ...process.env, ...opts.env }, maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 300_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export interface ServerProcess {
  url: string;
  proc: ChildProcess;
  /** Everything the server printed on stderr so far. */
  log(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `cosface serve --db <db> --port 0` and resolves once it listens. */
export function startServer(db: string, opts: { backend?: string; env?: NodeJS.ProcessEnv; extraArgs?: string[] } = {}): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [CLI, 'serve', '--db', db, '--port', '0', '--backend', opts.backend ?? 'wasm', ...(opts.extraArgs ?? [])], {
    cwd: repoRoot,
    env: { ...process.env, COSFACE_ADMIN_KEY: ADMIN_KEY, ...opts.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not start in 120 s:\n${stderr}`));
    }, 120_000);
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      stderr += d;
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1]!,
          proc,
          log: () => stderr,
          exited,
          kill: (signal = 'SIGKILL') => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${stderr}`));
    });
  });
}

export interface HttpResult {
  status: number; // 0: no response (connection refused or cut)
  body: unknown;
  error?: string;
}

/** One HTTP request with the admin key (or `key`); JSON body unless body is FormData/Uint8Array/string. */
export async function http(base: string, method: string, route: string, body?: unknown, opts: { key?: string | null; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...(opts.key === null ? {} : { authorization: `Bearer ${opts.key ?? ADMIN_KEY}` }), ...opts.headers };
  let payload: BodyInit | undefined;
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Uint8Array || body instanceof FormData) payload = body as BodyInit;
    else {
      payload = JSON.stringify(body);
      headers['content-type'] ??= 'application/json';
    }
  }
  try {
    const r = await fetch(base + route, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: r.status, body: parsed };
  } catch (e) {
    return { status: 0, body: null, error: String((e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message) };
  }
}

export function errorCode(r: HttpResult): string | undefined {
  return (r.body as { error?: { code?: string } } | null)?.error?.code;
}

export { sqliteFingerprint as dbFingerprint } from '../helpers/backends.js';

export interface DbFace {
  id: number;
  galleryId: number;
  identityId: number;
  deleted: boolean;
  embedding: Float32Array;
}
export interface DbIdentity {
  id: number;
  galleryId: number;
  externalId: string;
  deleted: boolean;
}
export interface DbView {
  galleries: Map<string, number>;
  identities: Map<number, DbIdentity>;
  faces: Map<number, DbFace>;
}

/** The rows the crash checks compare with what the server acknowledged. */
export function readDb(file: string): DbView {
  const db = new Database(file, { readonly: true });
  try {
    const galleries = new Map((db.prepare('SELECT name, id FROM galleries').all() as { name: string; id: number }[]).map((r) => [r.name, r.id]));
    const identities = new Map(
      (db.prepare('SELECT id, gallery_id AS g, external_id AS e, deleted_at AS d FROM identities').all() as { id: number; g: number; e: string; d: unknown }[]).map((r) => [
        r.id,
        { id: r.id, galleryId: r.g, externalId: r.e, deleted: r.d !== null },
      ]),
    );
    const faces = new Map(
      (db.prepare('SELECT id, gallery_id AS g, identity_id AS i, deleted AS d, embedding AS e FROM faces').all() as { id: number; g: number; i: number; d: number; e: Buffer }[]).map((r) => [
        r.id,
        { id: r.id, galleryId: r.g, identityId: r.i, deleted: r.d !== 0, embedding: new Float32Array(r.e.buffer.slice(r.e.byteOffset, r.e.byteOffset + r.e.byteLength)) },
      ]),
    );
    return { galleries, identities, faces };
  } finally {
    db.close();
  }
}

export interface Consistency {
  ok: boolean;
  dbLive: number;
  indexLive: number;
  missing: number;
  extra: number;
  mismatched: number;
  raw: string;
}

/** `cosface gallery stats <g> --check --json`: does the HNSW index agree with the database? */
export async function checkGallery(db: string, gallery: string): Promise<Consistency> {
  const r = await cli(['gallery', 'stats', gallery, '--check', '--json', '--db', db]);
  if (r.code !== 0) throw new Error(`gallery stats --check failed (${r.code}): ${r.stderr}`);
  const c = (JSON.parse(r.stdout) as { consistency: { dbLive: number; indexLive: number; missingFromIndex: unknown[]; extraInIndex: unknown[]; vectorMismatches: unknown[] } }).consistency;
  const missing = c.missingFromIndex.length;
  const extra = c.extraInIndex.length;
  const mismatched = c.vectorMismatches.length;
  return { ok: missing + extra + mismatched === 0 && c.dbLive === c.indexLive, dbLive: c.dbLive, indexLive: c.indexLive, missing, extra, mismatched, raw: r.stdout };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A large multipart upload through node:http, keeping the answer even when the server answers
 * before the body is sent and closes the socket (413 from Content-Length): fetch reports the
 * write error then and loses the status, which is a client artefact, not the server's answer.
 */
export function bigUpload(base: string, route: string, bytes: number): Promise<HttpResult> {
  return new Promise((resolve) => {
    const boundary = 'reliability-boundary';
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const u = new URL(base + route);
    let done = false;
    const finish = (r: HttpResult) => {
      if (!done) {
        done = true;
        resolve(r);
      }
    };
    import('node:http').then(({ request }) => {
      const req = request(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + bytes + tail.length } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            let body: unknown = text;
            try {
              body = JSON.parse(text);
            } catch {
              /* not JSON */
            }
            finish({ status: res.statusCode ?? 0, body });
          });
          res.on('error', () => finish({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', (e) => setTimeout(() => finish({ status: 0, body: null, error: (e as NodeJS.ErrnoException).code ?? e.message }), 2000));
      req.write(head);
      const chunk = Buffer.alloc(1 << 20);
      let sent = 0;
      const pump = () => {
        while (sent < bytes && !done) {
          const n = Math.min(chunk.length, bytes - sent);
          sent += n;
          if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
        }
        if (!done) req.end(tail);
      };
      pump();
    });
  });
}
