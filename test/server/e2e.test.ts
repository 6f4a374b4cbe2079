// End to end: `cosface serve` (src/server/main.ts) on a loopback port, real photos enrolled and
// identified over HTTP, a 50 MB upload refused on the socket, and a graceful shutdown that saves
// the index so a restarted server answers the same.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';

const ADMIN = 'e2e-admin-key-0123456789abcdef';
const photo = (f: string) => readFileSync(join(repoRoot, 'test/fixtures/photos', f));

interface Served {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  stdout: () => string;
}

/** Starts the server as a user would and waits for the line with its URL. */
function serve(db: string): Promise<Served> {
  const child = spawn(process.execPath, [join(repoRoot, 'node_modules/tsx/dist/cli.mjs'), 'src/server/main.ts', '--db', db, '--port', '0'], {
    cwd: repoRoot,
    env: { ...process.env, COSFACE_ADMIN_KEY: ADMIN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 90 s:\n${err}`)), 90_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, stderr: () => err, stdout: () => out });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${err}`));
    });
  });
}

function stop(s: Served): Promise<number | null> {
  return new Promise((resolve) => {
    if (s.child.exitCode !== null) return resolve(s.child.exitCode);
    s.child.once('exit', (code) => resolve(code));
    s.child.kill('SIGTERM');
  });
}

const auth = { authorization: `Bearer ${ADMIN}` };

async function post(url: string, body: unknown): Promise<Response> {
  const isForm = body instanceof FormData;
  return fetch(url, { method: 'POST', headers: { ...auth, ...(isForm ? {} : { 'content-type': 'application/json' }) }, body: isForm ? body : JSON.stringify(body) });
}

function photoForm(file: string): FormData {
  const f = new FormData();
  f.set('image', new Blob([photo(file) as BlobPart], { type: 'image/jpeg' }), file);
  return f;
}

let dir: string;
let db: string;
let server: Served | null = null;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cosface-e2e-'));
  db = join(dir, 'e2e.db');
});
afterAll(async () => {
  if (server) await stop(server);
  rmSync(dir, { recursive: true, force: true });
});

describe('cosface serve', () => {
  it('enrolls Obama and Biden from photos and identifies another photo of Obama', async () => {
    server = await serve(db);
    const { url } = server;
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect((await fetch(`${url}/v1/galleries`)).status).toBe(401);
    const info = (await (await fetch(`${url}/v1/info`, { headers: auth })).json()) as { backend: string; adapter: string };
    expect(info.backend).toMatch(/webgpu|wasm/);

    expect((await post(`${url}/v1/galleries`, { name: 'people' })).status).toBe(201);
    for (const [id, file] of [['obama', 'obama-240p.jpg'], ['biden', 'biden-400.jpg']] as const) {
      expect((await post(`${url}/v1/galleries/people/identities`, { externalId: id })).status).toBe(201);
      const r = await post(`${url}/v1/galleries/people/identities/${id}/faces`, photoForm(file));
      expect(r.status, await r.clone().text()).toBe(201);
      expect(r.headers.get('x-request-id')).toBeTruthy();
    }
    const r = await post(`${url}/v1/galleries/people/identify`, photoForm('obama_small.jpg'));
    expect(r.status).toBe(200);
    const res = (await r.json()) as { faces: { result: { candidates: { identity: string; score: number }[] } }[] };
    const [first, second] = res.faces[0]!.result.candidates;
    expect(first!.identity).toBe('obama');
    expect(second!.identity).toBe('biden');
    expect(first!.score).toBeGreaterThan(second!.score + 0.2);
    // Every request was logged as a JSON line with its request id.
    const lines = server.stdout().trim().split('\n').map((l) => JSON.parse(l) as { requestId: string; route: string });
    expect(lines.filter((l) => l.route === '/v1/galleries/:g/identities/:id/faces')).toHaveLength(2);
    expect(lines.every((l) => l.requestId.length > 0)).toBe(true);
  }, 240_000);

  it('refuses a 50 MB upload with 413 PAYLOAD_TOO_LARGE and changes nothing', async () => {
    const { url } = server!;
    const before = await (await fetch(`${url}/v1/galleries/people`, { headers: auth })).json();
    const big = new FormData();
    big.set('image', new Blob([new Uint8Array(50 * 1024 * 1024)], { type: 'image/jpeg' }), 'big.jpg');
    let status: number | string;
    let code: string | undefined;
    try {
      const r = await post(`${url}/v1/galleries/people/identities/obama/faces`, big);
      status = r.status;
      code = ((await r.json()) as { error: { code: string } }).error.code;
    } catch (e) {
      // The server may close the socket before the client has sent everything; that is a refusal too.
      status = `socket: ${(e as Error).message}`;
    }
    expect(status).toBe(413);
    expect(code).toBe('PAYLOAD_TOO_LARGE');
    expect(await (await fetch(`${url}/v1/galleries/people`, { headers: auth })).json()).toEqual(before);
  }, 60_000);

  it('shuts down on SIGTERM saving the index; a restarted server answers the same', async () => {
    const probe = (await (await post(`${server!.url}/v1/embed`, photoForm('obama_small.jpg'))).json()) as { faces: { embedding: number[] }[] };
    const embedding = probe.faces[0]!.embedding;
    const before = await (await post(`${server!.url}/v1/galleries/people/identify`, { embedding })).json();
    expect(await stop(server!)).toBe(0);
    expect(server!.stderr()).toMatch(/SIGTERM/);
    expect(existsSync(`${db}.index`) && readdirSync(`${db}.index`).length).toBeGreaterThan(0);
    server = await serve(db);
    expect(server.stderr()).not.toMatch(/Admin API key \(shown once/); // the key came from the environment
    const after = await (await post(`${server.url}/v1/galleries/people/identify`, { embedding })).json();
    expect(after).toEqual(before);
  }, 180_000);
});
