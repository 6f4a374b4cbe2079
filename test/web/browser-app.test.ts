// The page at /app in a real Chromium, served by a real `cosface serve` on loopback: it finds and
// embeds the fixture photos on the device with WebGPU (SwiftShader here) and with the WASM kernels
// on Web Workers; the faces match what Node's pipeline finds in the same photos; the page identifies
// the people of examples/ against a gallery on the server and enrolls a face, sending embeddings
// only; the models come from Cache Storage on the second load. One browser for every test.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ADMIN = 'browser-admin-key-0123456789abcdef';
const GALLERY = 'demo';

/** The photos the page embeds, and who is in them (few: SwiftShader runs the WGSL on the CPU, 5-15 s a photo here). */
const PHOTOS = [
  { file: 'test/fixtures/photos/obama-240p.jpg', people: ['obama'] },
  { file: 'examples/probes/kit_with_rose.jpg', people: ['rose_leslie', 'kit_harington'] },
  { file: 'examples/probes/johnsnow_test1.jpg', people: ['kit_harington'] },
];
/** On WebGPU the first two: three faces, three people. */
const WEBGPU_PHOTOS = PHOTOS.slice(0, 2);
type Photo = (typeof PHOTOS)[number];

// As test/helpers/webgpu.ts, without opening a Dawn device in this process (the adapter that counts is Chromium's).
const webgpuRequired = process.env.COSFACE_REQUIRE_WEBGPU === '1';
const bundleBuilt = existsSync(join(repoRoot, 'dist/web/cosface.js'));
// In CI (COSFACE_REQUIRE_WEBGPU=1) a missing browser or bundle fails these tests instead of skipping them.
const skip = !webgpuRequired && (!existsSync(CHROMIUM) || !bundleBuilt);

interface NodeFace {
  box: [number, number, number, number];
  embedding: number[];
}
interface PageFace {
  index: number;
  box: [number, number, number, number];
  landmarks: [number, number][];
  quality: number;
  embedding: number[];
  identity: string;
}
interface PageResult {
  name: string;
  faces: PageFace[];
  timings: { decode: number; faces: number; search: number; total: number };
}
interface PageRun {
  backend: string;
  describe: string;
  load: { fetch: number; prepare: number; compile: number; warmUp: number; total: number };
  assets: { cached: number; fetched: number; bytes: number };
  results: PageResult[];
  /** Every face element's data attributes, in document order. */
  elements: { index: string; identity: string; score: string }[];
  faceCount: string;
  requests: Request[];
}

function iou(a: number[], b: number[]): number {
  const [ax, ay, aw, ah] = a as [number, number, number, number];
  const [bx, by, bw, bh] = b as [number, number, number, number];
  const w = Math.max(0, Math.min(ax + aw, bx + bw) - Math.max(ax, bx));
  const h = Math.max(0, Math.min(ay + ah, by + bh) - Math.max(ay, by));
  return (w * h) / (aw * ah + bw * bh - w * h);
}
const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);

/** Starts `cosface serve` from the sources, as the server e2e test does, and waits for its URL. */
function serve(db: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [join(repoRoot, 'node_modules/tsx/dist/cli.mjs'), 'src/server/main.ts', '--db', db, '--port', '0', '--backend', 'wasm'], {
    cwd: repoRoot,
    env: { ...process.env, COSFACE_ADMIN_KEY: ADMIN },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 90 s:\n${err}`)), 90_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${err}`));
    });
  });
}

describe.skipIf(skip)('the /app page in Chromium', () => {
  let dir: string;
  let server: { child: ChildProcess; url: string };
  let browser: Browser;
  let context: BrowserContext;
  let galleryKey: string;
  const nodeFaces = new Map<string, NodeFace[]>();
  const runs: Partial<Record<'webgpu' | 'wasm', PageRun>> = {};

  const api = async <T>(method: string, path: string, payload?: unknown): Promise<T> => {
    const r = await fetch(server.url + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
      ...(payload ? { body: JSON.stringify(payload) } : {}),
    });
    const json = (await r.json()) as T;
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };

  beforeAll(async () => {
    if (!bundleBuilt) throw new Error('dist/web/ is missing: run `npm run build` (the page is bundled at build time)');
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    dir = mkdtempSync(join(tmpdir(), 'cosface-browser-'));
    [server, browser] = await Promise.all([serve(join(dir, 'faces.db')), chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })]);
    // The gallery: examples/gallery, one folder per person, enrolled from the photos on the server
    // (the test's own setup; the page itself never sends a photo).
    await api('POST', '/v1/galleries', { name: GALLERY });
    const faces = readdirSync(join(repoRoot, 'examples/gallery')).flatMap((person) =>
      readdirSync(join(repoRoot, 'examples/gallery', person)).map((f) => ({ identity: person, image: readFileSync(join(repoRoot, 'examples/gallery', person, f)).toString('base64') })),
    );
    await api('POST', `/v1/galleries/${GALLERY}/enroll`, { faces });
    galleryKey = (await api<{ key: string }>('POST', '/v1/keys', { name: 'page', gallery: GALLERY })).key;
    // Node's faces for the same photos (the server's pipeline: WASM kernels, sharp decoding).
    for (const p of PHOTOS) {
      const r = await api<{ faces: NodeFace[] }>('POST', '/v1/embed', { image: readFileSync(join(repoRoot, p.file)).toString('base64') });
      nodeFaces.set(p.file, r.faces);
    }
    // One context for both pages: the second load reads the models from Cache Storage.
    context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    if (server && server.child.exitCode === null) {
      const exited = new Promise((r) => server.child.once('exit', r));
      server.child.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function runPage(backend: 'webgpu' | 'wasm', photos: Photo[]): Promise<{ page: Page; run: PageRun }> {
    const page = await context.newPage();
    const requests: Request[] = [];
    const errors: string[] = [];
    page.on('request', (r) => requests.push(r));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}/app?backend=${backend}&threshold=0.3`);
    // The key is entered once, as a user would.
    await page.fill('#key', galleryKey);
    await page.click('#key-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#gallery option[value="demo"]') !== null || document.body.dataset.state === 'error');
    await page.setInputFiles('#files', photos.map((p) => join(repoRoot, p.file)));
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 200_000, polling: 250 });
    const state = await page.evaluate(() => ({ state: document.body.dataset.state, error: document.getElementById('error')!.textContent }));
    expect(state, `page errors: ${errors.join('; ')}`).toEqual({ state: 'ready', error: '' });
    const run = await page.evaluate(() => {
      const app = (window as unknown as { cosfaceApp: { backend: string; load: unknown; assets: unknown; results: unknown } }).cosfaceApp;
      return {
        backend: document.body.dataset.backend!,
        describe: app.backend,
        load: app.load,
        assets: app.assets,
        results: app.results,
        elements: Array.from(document.querySelectorAll<HTMLElement>('.face')).map((e) => ({ index: e.dataset.faceIndex!, identity: e.dataset.identity!, score: e.dataset.score! })),
        faceCount: document.body.dataset.faceCount!,
      };
    });
    return { page, run: { ...(run as Omit<PageRun, 'requests'>), requests } };
  }

  /** The browser's faces against Node's on the same photos: same count, boxes IoU > 0.95, cosine > 0.999. */
  function expectSameFacesAsNode(run: PageRun, photos: Photo[]): void {
    expect(run.results.map((r) => r.name)).toEqual(photos.map((p) => p.file.split('/').pop()));
    photos.forEach((p, i) => {
      const mine = run.results[i]!.faces;
      const node = nodeFaces.get(p.file)!;
      expect(mine.length, p.file).toBe(node.length);
      for (const n of node) {
        const best = mine.reduce((a, b) => (iou(b.box, n.box) > iou(a.box, n.box) ? b : a));
        expect(iou(best.box, n.box), `${p.file} box`).toBeGreaterThan(0.95);
        expect(best.embedding).toHaveLength(128);
        expect(dot(best.embedding, n.embedding) / Math.sqrt(dot(n.embedding, n.embedding)), `${p.file} cosine`).toBeGreaterThan(0.999);
      }
    });
  }

  /** The page's machine-readable faces: one element per face, numbered, with identities of the examples' people. */
  function expectIdentified(run: PageRun, photos: Photo[]): void {
    const total = photos.reduce((s, p) => s + p.people.length, 0);
    expect(run.faceCount).toBe(String(total));
    expect(run.elements.map((e) => e.index)).toEqual(Array.from({ length: total }, (_, i) => String(i)));
    photos.forEach((p, i) => {
      const ids = run.results[i]!.faces.map((f) => run.elements[f.index]!.identity);
      expect(ids.sort(), p.file).toEqual([...p.people].sort());
    });
    for (const e of run.elements) expect(Number(e.score)).toBeGreaterThan(0.3);
  }

  /** Nothing but embeddings leaves the page: every request with a body is JSON of numbers, no image bytes. */
  function expectOnlyEmbeddingsSent(run: PageRun): void {
    const withBody = run.requests.filter((r) => r.postDataBuffer() !== null);
    expect(withBody.length).toBeGreaterThan(0);
    for (const r of run.requests) {
      const url = new URL(r.url());
      expect(url.origin).toBe(server.url);
      if (r.method() === 'GET') expect(url.pathname === '/v1/info' || url.pathname.startsWith('/app')).toBe(true);
    }
    for (const r of withBody) {
      const bytes = r.postDataBuffer()!;
      expect(r.headers()['content-type']).toBe('application/json');
      expect(bytes.includes(Buffer.from([0xff, 0xd8, 0xff])), 'JPEG bytes in a request').toBe(false);
      const text = bytes.toString('utf8');
      expect(text).not.toMatch(/\/9j\/|iVBORw0KGgo|UklGR|"image"/); // base64 JPEG, PNG, WebP; an image field
      const body = JSON.parse(text) as { probes?: number[][]; faces?: { embedding: number[] }[] };
      const vectors = body.probes ?? body.faces?.map((f) => f.embedding) ?? [];
      expect(vectors.length).toBeGreaterThan(0);
      for (const v of vectors) {
        expect(v).toHaveLength(128);
        expect(v.every((x) => typeof x === 'number')).toBe(true);
      }
    }
  }

  it('on WebGPU: the same faces as Node, identified on the server from embeddings only', async (ctx) => {
    const probe = await context.newPage();
    await probe.goto(`${server.url}/app/style.css`);
    const adapter = await probe.evaluate(async () => {
      const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      return gpu ? (await gpu.requestAdapter()) !== null : false;
    });
    await probe.close();
    if (!adapter) {
      if (webgpuRequired) throw new Error('no WebGPU adapter in Chromium (COSFACE_REQUIRE_WEBGPU=1 requires one)');
      ctx.skip();
    }
    const { page, run } = await runPage('webgpu', WEBGPU_PHOTOS);
    runs.webgpu = run;
    expect(run.backend).toBe('webgpu');
    expect(run.describe).toMatch(/^webgpu \(/);
    expect(run.assets.fetched).toBeGreaterThanOrEqual(5); // a fresh profile: every model over the network
    expectSameFacesAsNode(run, WEBGPU_PHOTOS);
    expectIdentified(run, WEBGPU_PHOTOS);
    expectOnlyEmbeddingsSent(run);
    const shot = await page.screenshot({ fullPage: true, type: 'jpeg', quality: 80 });
    expect(shot.byteLength).toBeGreaterThan(50_000);
    // The figure in docs/ is written on request only, so a test run leaves the tree as it was.
    const figure = process.env.COSFACE_WRITE_FIGURES === '1' ? join(repoRoot, 'docs/figures') : dir;
    mkdirSync(figure, { recursive: true });
    writeFileSync(join(figure, 'web-app.jpg'), shot);
    await page.close();
  }, 300_000);

  it('on WASM (Web Workers): the same faces as Node, the models read from Cache Storage, and a face enrolled by embedding', async () => {
    const { page, run } = await runPage('wasm', PHOTOS);
    runs.wasm = run;
    expect(run.backend).toBe('wasm');
    expect(run.describe).toMatch(/^wasm \((relaxed )?SIMD, \d+ workers?\)/);
    if (runs.webgpu) expect(run.assets.cached).toBeGreaterThanOrEqual(5); // the models the WebGPU page stored
    expectSameFacesAsNode(run, PHOTOS);
    expectIdentified(run, PHOTOS);
    // Enroll Rose (face of kit_with_rose.jpg) as a new identity from the page; it is then her best match.
    const rose = run.results[1]!.faces.find((f) => f.identity === 'rose_leslie')!;
    const li = page.locator(`.face[data-face-index="${rose.index}"]`);
    await li.locator('input').fill('rose_from_page');
    await li.locator('button').click();
    await page.waitForFunction((i) => document.querySelector(`.face[data-face-index="${i}"]`)?.getAttribute('data-identity') === 'rose_from_page', rose.index);
    expect(await li.getAttribute('data-score')).toMatch(/^(0\.99|1\.0)/);
    const enrolled = await api<{ faces: { quality: number | null }[] }>('GET', `/v1/galleries/${GALLERY}/identities/rose_from_page/faces`);
    expect(enrolled.faces).toHaveLength(1);
    expectOnlyEmbeddingsSent(run);
    expect(run.requests.some((r) => r.url().endsWith(`/v1/galleries/${GALLERY}/enroll`))).toBe(true);
    // A file that is not an image: its own error with the stable code, nothing else changes.
    const bogus = join(dir, 'not-a-photo.jpg');
    writeFileSync(bogus, 'this is text, not a JPEG');
    await page.setInputFiles('#files', [bogus]);
    await page.waitForFunction(() => document.body.dataset.state === 'ready' && document.querySelector('.photo-error') !== null);
    expect(await page.locator('.photo-error').textContent()).toMatch(/^BAD_IMAGE: not-a-photo\.jpg: not a decodable image/);
    expect(await page.evaluate(() => document.body.dataset.faceCount)).toBe(run.faceCount);
    await page.close();
  });

  it('works as a library in any page: import /app/cosface.js, load a pipeline (auto), embed a photo (as in the README)', async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}/app/style.css`); // any page of the origin
    const photo = PHOTOS[0]!.file;
    // As text: the test runner rewrites import() in functions it compiles, and this one runs in the page.
    const photoUrl = `data:image/jpeg;base64,${readFileSync(join(repoRoot, photo)).toString('base64')}`;
    const got = (await page.evaluate(`(async () => {
      const { loadFacePipeline } = await import('/app/cosface.js');
      const faces = await loadFacePipeline({ backend: 'auto' });
      const blob = await (await fetch(${JSON.stringify(photoUrl)})).blob();
      const found = await faces.facesInPhoto(blob);
      let badImage = '';
      try {
        await faces.facesInPhoto(new Blob([new Uint8Array([1, 2, 3])], { type: 'image/jpeg' }));
      } catch (e) {
        badImage = e.code ?? String(e);
      }
      faces.dispose();
      return { describe: faces.describe(), found, badImage };
    })()`)) as { describe: string; found: { box: number[]; embedding: number[] }[]; badImage: string };
    await page.close();
    // auto: WebGPU on a hardware adapter; WASM without one or on a software one (SwiftShader), saying why.
    expect(got.describe).toMatch(/^webgpu \(|^wasm \(.*\) \[auto: (no WebGPU adapter|WebGPU adapter is software \(.*swiftshader)/);
    expect(got.badImage).toBe('BAD_IMAGE');
    const node = nodeFaces.get(photo)!;
    expect(got.found).toHaveLength(node.length);
    expect(iou(got.found[0]!.box, node[0]!.box)).toBeGreaterThan(0.95);
    expect(dot(got.found[0]!.embedding, node[0]!.embedding)).toBeGreaterThan(0.999);
  });

  it('times are shown in the page: model load, first photo, later photos', () => {
    for (const run of Object.values(runs)) {
      expect(run.load.total).toBeGreaterThan(0);
      expect(run.load.total).toBeGreaterThanOrEqual(run.load.compile + run.load.warmUp);
      for (const r of run.results) expect(r.timings.total).toBeGreaterThanOrEqual(r.timings.faces);
    }
    const summary = Object.entries(runs).map(([b, r]) => `${b}: load ${r.load.total.toFixed(0)} ms, photos ${r.results.map((x) => x.timings.total.toFixed(0)).join(' / ')} ms`);
    console.log(`browser timings (${summary.join('; ')})`);
    expect(Object.keys(runs).length).toBeGreaterThan(0);
  });
});
