// The bad-input matrix: every way a caller can get a request wrong, over HTTP (a real `cosface
// serve`) and the CLI, each with its documented status and error code, and the database byte for
// byte the same afterwards (a fingerprint of every row of every table). docs/errors.md lists the
// same cases; `casesTable()` prints them.
import { writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import path from 'node:path';
import { bigUpload, cli, dbFingerprint, errorCode, http, repoRoot, startServer, vector, type ServerProcess } from './harness.js';

export interface CaseResult {
  surface: 'HTTP' | 'CLI';
  name: string;
  request: string;
  expected: string; // "400 BAD_INPUT" or "exit 2 BAD_INPUT"
  got: string;
  ok: boolean;
  unchanged: boolean;
}

const photo = (f: string) => path.join(repoRoot, 'test/fixtures/photos', f);

/** A PNG whose header claims width x height; the (tiny) pixel data does not match. */
export function pngBomb(width: number, height: number): Buffer {
  const crc32 = (b: Buffer) => {
    let c = ~0;
    for (const x of b) {
      c ^= x;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    }
    return ~c >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0))]);
}

function form(fields: Record<string, string | Uint8Array>): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') f.set(k, v);
    else f.set(k, new Blob([v as Uint8Array<ArrayBuffer>]), `${k}.bin`);
  }
  return f;
}

/** CLI cases of the short run (each CLI case is a process start of about a second). */
const SHORT_CLI = new Set(['not an image', 'decompression bomb', 'unknown gallery', 'k = 10^9', 'bad gallery name', 'unknown key id']);

export async function runBadInputMatrix(o: { dir: string; cli: 'all' | 'short' | 'none'; log?: (l: string) => void }): Promise<CaseResult[]> {
  const db = path.join(o.dir, 'bad.db');
  const results: CaseResult[] = [];
  const jpeg = readFileSync(photo('obama-240p.jpg'));
  const files = {
    notImage: path.join(o.dir, 'not-an-image.jpg'),
    truncated: path.join(o.dir, 'truncated.jpg'),
    bomb: path.join(o.dir, 'bomb.png'),
    empty: path.join(o.dir, 'empty.jpg'),
  };
  writeFileSync(files.notImage, 'this is a text file, not a photo\n');
  writeFileSync(files.truncated, jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  writeFileSync(files.bomb, pngBomb(100_000, 100_000));
  writeFileSync(files.empty, '');

  let s: ServerProcess = await startServer(db);
  const keys: Record<string, string> = {};
  try {
    const setup = async (method: string, route: string, body: unknown) => {
      const r = await http(s.url, method, route, body);
      if (r.status >= 300) throw new Error(`setup ${method} ${route}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as Record<string, unknown>;
    };
    await setup('POST', '/v1/galleries', { name: 'staff' });
    await setup('POST', '/v1/galleries', { name: 'other' });
    await setup('POST', '/v1/galleries/staff/identities', { externalId: 'alice' });
    await setup('POST', '/v1/galleries/staff/identities/alice/faces', { embedding: vector(1) });
    keys.staff = (await setup('POST', '/v1/keys', { name: 'staff key', gallery: 'staff' })).key as string;
    keys.other = (await setup('POST', '/v1/keys', { name: 'other key', gallery: 'other' })).key as string;
    const revoked = await setup('POST', '/v1/keys', { name: 'revoked key', gallery: 'staff' });
    keys.revoked = revoked.key as string;
    await setup('DELETE', `/v1/keys/${String(revoked.id)}`, undefined);

    const e128 = vector(2);
    const ident = '/v1/galleries/staff/identify';
    type HttpCase = [name: string, request: string, status: number, code: string, send: () => ReturnType<typeof http>];
    const j = (method: string, route: string, body: unknown, key?: string) => () => http(s.url, method, route, body, key === undefined ? {} : { key });
    const raw = (method: string, route: string, body: string | Uint8Array, type: string) => () => http(s.url, method, route, body, { headers: { 'content-type': type } });
    const cases: HttpCase[] = [
      ['not an image', 'POST identify, multipart image = a text file', 422, 'BAD_IMAGE', () => http(s.url, 'POST', ident, form({ image: readFileSync(files.notImage) }))],
      ['truncated JPEG', 'POST identify, multipart image = first half of a JPEG', 422, 'BAD_IMAGE', () => http(s.url, 'POST', ident, form({ image: readFileSync(files.truncated) }))],
      ['decompression bomb', 'POST identify, PNG whose header says 100000 x 100000', 413, 'IMAGE_TOO_LARGE', () => http(s.url, 'POST', ident, form({ image: readFileSync(files.bomb) }))],
      ['60 MB upload', 'POST add face, 60 MB multipart body', 413, 'PAYLOAD_TOO_LARGE', () => bigUpload(s.url, '/v1/galleries/staff/identities/alice/faces', 60 << 20)],
      ['empty image', 'POST identify, multipart image of 0 bytes', 422, 'BAD_IMAGE', () => http(s.url, 'POST', ident, form({ image: new Uint8Array(0) }))],
      ['empty body', 'POST identify, JSON content type, no body', 400, 'BAD_JSON', raw('POST', ident, '', 'application/json')],
      ['empty JSON object', 'POST identify {}', 400, 'BAD_INPUT', j('POST', ident, {})],
      ['invalid JSON', "POST identify '{\"embedding\": [1,'", 400, 'BAD_JSON', raw('POST', ident, '{"embedding": [1,', 'application/json')],
      ['NaN in embedding', 'POST identify {"embedding": [NaN, ...]} (not JSON)', 400, 'BAD_JSON', raw('POST', ident, `{"embedding": [NaN${',0.1'.repeat(127)}]}`, 'application/json')],
      ['NaN in embedding (multipart)', 'POST identify, multipart embedding = "[NaN, ...]"', 400, 'BAD_INPUT', () => http(s.url, 'POST', ident, form({ embedding: `[NaN${',0.1'.repeat(127)}]` }))],
      ['Infinity in embedding', 'POST identify {"embedding": [1e999, ...]}', 400, 'BAD_INPUT', raw('POST', ident, `{"embedding": [1e999${',0.1'.repeat(127)}]}`, 'application/json')],
      ['string in embedding', 'POST identify {"embedding": ["a", ...]}', 400, 'BAD_INPUT', j('POST', ident, { embedding: ['a', ...e128.slice(1)] })],
      ['wrong dimension', 'POST identify with a 127-d embedding', 400, 'DIMENSION_MISMATCH', j('POST', ident, { embedding: e128.slice(1) })],
      ['wrong dimension (add face)', 'POST add face with a 129-d embedding', 400, 'DIMENSION_MISMATCH', j('POST', '/v1/galleries/staff/identities/alice/faces', { embedding: [...e128, 0.5] })],
      ['zero vector', 'POST add face with 128 zeros', 400, 'BAD_INPUT', j('POST', '/v1/galleries/staff/identities/alice/faces', { embedding: Array(128).fill(0) })],
      ['k = 0', 'POST identify k=0', 400, 'BAD_INPUT', j('POST', ident, { embedding: e128, k: 0 })],
      ['k = 10^9', 'POST identify k=1000000000', 400, 'BAD_INPUT', j('POST', ident, { embedding: e128, k: 1e9 })],
      ['k not an integer', 'POST identify k=2.5', 400, 'BAD_INPUT', j('POST', ident, { embedding: e128, k: 2.5 })],
      ['unknown gallery', 'POST /v1/galleries/nobody/identify', 404, 'GALLERY_NOT_FOUND', j('POST', '/v1/galleries/nobody/identify', { embedding: e128 })],
      ['unknown identity', 'POST add face to identity "bob" (none)', 404, 'IDENTITY_NOT_FOUND', j('POST', '/v1/galleries/staff/identities/bob/faces', { embedding: e128 })],
      ['unknown face', 'DELETE /v1/galleries/staff/faces/999999', 404, 'FACE_NOT_FOUND', j('DELETE', '/v1/galleries/staff/faces/999999', undefined)],
      ['duplicate identity', 'POST identity "alice" again', 409, 'DUPLICATE_IDENTITY', j('POST', '/v1/galleries/staff/identities', { externalId: 'alice' })],
      ['duplicate gallery', 'POST gallery "staff" again', 409, 'GALLERY_EXISTS', j('POST', '/v1/galleries', { name: 'staff' })],
      ['bad gallery name', 'POST gallery "../../etc"', 400, 'BAD_INPUT', j('POST', '/v1/galleries', { name: '../../etc' })],
      ['NUL in gallery name', 'POST gallery "a\\u0000b"', 400, 'BAD_INPUT', j('POST', '/v1/galleries', { name: 'a\u0000b' })],
      ['NUL in identity id', 'POST identity "a\\u0000b"', 400, 'BAD_INPUT', j('POST', '/v1/galleries/staff/identities', { externalId: 'a\u0000b' })],
      ['unknown field', 'POST identify {"embedding", "kk": 5}', 400, 'BAD_INPUT', j('POST', ident, { embedding: e128, kk: 5 })],
      ['wrong content type', 'POST identify as text/plain', 415, 'UNSUPPORTED_MEDIA_TYPE', raw('POST', ident, '{}', 'text/plain')],
      ['no key', 'POST identify without Authorization', 401, 'UNAUTHORIZED', () => http(s.url, 'POST', ident, { embedding: e128 }, { key: null })],
      ['wrong key', 'POST identify with an unknown key', 401, 'UNAUTHORIZED', j('POST', ident, { embedding: e128 }, 'not-a-key-of-this-server-0123456789')],
      ['revoked key', 'POST identify with a revoked key', 401, 'UNAUTHORIZED', () => http(s.url, 'POST', ident, { embedding: e128 }, { key: keys.revoked! })],
      ['key of another gallery', "POST staff's identify with other's key", 403, 'FORBIDDEN', () => http(s.url, 'POST', ident, { embedding: e128 }, { key: keys.other! })],
      ['gallery key on admin route', 'POST /v1/galleries with a gallery key', 403, 'FORBIDDEN', () => http(s.url, 'POST', '/v1/galleries', { name: 'mine' }, { key: keys.staff! })],
      ['unknown route', 'GET /v1/nothing', 404, 'NOT_FOUND', j('GET', '/v1/nothing', undefined)],
    ];

    const before = dbFingerprint(db);
    for (const [name, request, status, code, send] of cases) {
      const r = await send();
      const got = `${r.status} ${errorCode(r) ?? (r.error ? `(${r.error})` : '')}`.trim();
      const unchanged = dbFingerprint(db) === before;
      results.push({ surface: 'HTTP', name, request, expected: `${status} ${code}`, got, ok: r.status === status && errorCode(r) === code, unchanged });
      o.log?.(`HTTP ${name}: expected ${status} ${code}, got ${got}${unchanged ? '' : ' (DATABASE CHANGED)'}`);
    }
    // The server is still healthy after all of it.
    const health = await http(s.url, 'POST', ident, { embedding: vector(1), k: 1 });
    results.push({ surface: 'HTTP', name: 'still answers', request: 'POST identify with a good embedding afterwards', expected: '200', got: String(health.status), ok: health.status === 200, unchanged: dbFingerprint(db) === before });
  } finally {
    await s.kill('SIGTERM');
  }

  if (o.cli !== 'none') {
    const before = dbFingerprint(db);
    const dbArgs = ['--db', db, '--backend', 'wasm'];
    type CliCase = [name: string, args: string[], code: string];
    const cases: CliCase[] = [
      ['not an image', ['identify', files.notImage, '--gallery', 'staff', ...dbArgs], 'BAD_IMAGE'],
      ['truncated JPEG', ['identify', files.truncated, '--gallery', 'staff', ...dbArgs], 'BAD_IMAGE'],
      ['decompression bomb', ['identify', files.bomb, '--gallery', 'staff', ...dbArgs], 'IMAGE_TOO_LARGE'],
      ['empty file', ['verify', files.empty, photo('obama-240p.jpg'), ...dbArgs], 'BAD_IMAGE'],
      ['missing file', ['identify', path.join(o.dir, 'nope.jpg'), '--gallery', 'staff', ...dbArgs], 'BAD_IMAGE'],
      ['unknown gallery', ['identify', photo('obama-240p.jpg'), '--gallery', 'nobody', ...dbArgs], 'GALLERY_NOT_FOUND'],
      ['k = 0', ['identify', photo('obama-240p.jpg'), '--gallery', 'staff', '--k', '0', ...dbArgs], 'BAD_INPUT'],
      ['k = 10^9', ['identify', photo('obama-240p.jpg'), '--gallery', 'staff', '--k', '1000000000', ...dbArgs], 'BAD_INPUT'],
      ['bad gallery name', ['enroll', o.dir, '--gallery', '../../etc', ...dbArgs], 'BAD_INPUT'],
      ['unknown gallery (stats)', ['gallery', 'stats', 'nobody', '--db', db], 'GALLERY_NOT_FOUND'],
      ['unknown gallery (delete)', ['gallery', 'delete', 'nobody', '--db', db], 'GALLERY_NOT_FOUND'],
      ['unknown key id', ['keys', 'revoke', '999999', '--db', db], 'NOT_FOUND'],
      ['unknown backend', ['identify', photo('obama-240p.jpg'), '--gallery', 'staff', '--db', db, '--backend', 'cuda'], 'UNKNOWN_BACKEND'],
    ];
    for (const [name, args, code] of cases.filter(([n]) => o.cli === 'all' || SHORT_CLI.has(n))) {
      const r = await cli(args);
      const m = /^error ([A-Z_]+):/m.exec(r.stderr);
      const got = `exit ${r.code} ${m?.[1] ?? ''}`.trim();
      const unchanged = dbFingerprint(db) === before;
      results.push({ surface: 'CLI', name, request: `cosface ${args.filter((a) => a !== db && a !== o.dir).map((a) => (a.startsWith('/') ? path.basename(a) : a)).join(' ')}`.replace(/ --db| --backend wasm/g, ''), expected: `exit 2 ${code}`, got, ok: r.code === 2 && m?.[1] === code, unchanged });
      o.log?.(`CLI ${name}: expected exit 2 ${code}, got ${got}${unchanged ? '' : ' (DATABASE CHANGED)'}`);
    }
  }
  return results;
}

/** The cases as a markdown table (docs/errors.md). */
export function casesTable(results: CaseResult[]): string {
  const rows = results.map((r) => `| ${r.surface} | ${r.name} | ${r.request.replace(/\|/g, '\\|')} | ${r.expected} |`);
  return ['| surface | case | request | status / exit, code |', '|---|---|---|---|', ...rows].join('\n');
}
