// Times of the face pipeline in Chromium (the /app page, WebGPU and WASM) beside Node's (the same
// pipeline, WASM and WebGPU through Dawn) on the same photos in the same run: model load, first
// photo, later photos (median). Run: npx tsx bench/web-bench.ts [photo or folder ...]
// (default: test/fixtures/photos and examples/probes). Needs `npm run build` (dist/web) and
// /usr/bin/chromium; prints a Markdown table and the raw figures as JSON.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { createBackend } from '../src/engine.js';
import { createFacePipeline } from '../src/pipeline/face-pipeline.js';
import { startServer } from '../src/server/server.js';

const ADMIN = 'bench-admin-key-0123456789abcdef';
const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

interface Row {
  where: string;
  backend: string;
  describe: string;
  loadMs: number;
  loadCachedMs: number | null;
  loadParts: string;
  /** The first photo, cold (right after load and warm-up). */
  firstMs: number;
  /** The same photo in the second pass. */
  firstWarmMs: number;
  /** The other photos of the first pass (median). */
  laterMedianMs: number;
  faces: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function listPhotos(inputs: string[]): string[] {
  return inputs.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).sort().filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).map((f) => join(p, f)) : [p]));
}

async function nodeRow(backendName: 'wasm' | 'webgpu', photos: string[]): Promise<Row> {
  const bytes = photos.map((p) => readFileSync(p));
  const t0 = performance.now();
  const backend = await createBackend(backendName);
  const pipeline = await createFacePipeline({ backend });
  const t1 = performance.now();
  await pipeline.warmUp();
  const t2 = performance.now();
  // Two passes over the photos: the first photo of pass 1 is the cold one; pass 2 times the same photos warm.
  const times: number[] = [];
  let faces = 0;
  for (const pass of [1, 2]) {
    for (const b of bytes) {
      const t = performance.now();
      const n = (await pipeline.facesInPhoto(b)).length;
      if (pass === 1) faces += n;
      times.push(performance.now() - t);
    }
  }
  pipeline.dispose();
  await backend.dispose();
  return {
    where: 'Node',
    backend: backendName,
    describe: backend.describe(),
    loadMs: t2 - t0,
    loadCachedMs: null,
    loadParts: `read+compile ${(t1 - t0).toFixed(0)}, warm-up ${(t2 - t1).toFixed(0)}`,
    firstMs: times[0]!,
    firstWarmMs: times[bytes.length]!,
    laterMedianMs: median(times.slice(1, bytes.length)),
    faces,
  };
}

interface PageState {
  backend: string;
  load: { fetch: number; prepare: number; compile: number; warmUp: number; total: number };
  results: { faces: unknown[]; timings: { decode: number; faces: number } }[];
}

async function browserRow(url: string, backendName: 'wasm' | 'webgpu', photos: string[]): Promise<Row> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    const context = await browser.newContext();
    const load = async (withPhotos: boolean): Promise<PageState> => {
      const page = await context.newPage();
      await page.goto(`${url}/app?backend=${backendName}`);
      if (withPhotos) {
        await page.fill('#key', ADMIN);
        await page.click('#key-form button[type=submit]');
        for (const pass of [1, 2]) {
          await page.setInputFiles('#files', photos);
          await page.waitForFunction((n) => ['ready', 'error'].includes(document.body.dataset.state ?? '') && (window as unknown as { cosfaceApp: PageState }).cosfaceApp.results.length === n, pass * photos.length, { timeout: 600_000, polling: 200 });
        }
      } else await page.waitForFunction(() => ['idle', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 600_000, polling: 50 });
      const s = await page.evaluate(() => ({ state: document.body.dataset.state, error: document.getElementById('error')!.textContent, app: (window as unknown as { cosfaceApp: PageState }).cosfaceApp }));
      if (s.state === 'error' || s.error) throw new Error(`${backendName} page: ${s.error}`);
      await page.close();
      return s.app;
    };
    const cold = await load(true);
    const cached = await load(false);
    // Browser photo time = decode + faces (what Node's facesInPhoto does); the search is separate.
    const times = cold.results.map((r) => r.timings.decode + r.timings.faces);
    const n = photos.length;
    const l = cold.load;
    return {
      where: 'Chromium',
      backend: backendName,
      describe: cold.backend,
      loadMs: l.total,
      loadCachedMs: cached.load.total,
      loadParts: `fetch ${l.fetch.toFixed(0)}, prepare ${l.prepare.toFixed(0)}, compile ${l.compile.toFixed(0)}, warm-up ${l.warmUp.toFixed(0)}`,
      firstMs: times[0]!,
      firstWarmMs: times[n]!,
      laterMedianMs: median(times.slice(1, n)),
      faces: cold.results.slice(0, n).reduce((s, r) => s + r.faces.length, 0),
    };
  } finally {
    await browser.close();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const photos = listPhotos(args.length ? args : ['test/fixtures/photos', 'examples/probes']);
  const dir = mkdtempSync(join(tmpdir(), 'cosface-web-bench-'));
  const server = await startServer({ db: join(dir, 'bench.db'), port: 0, backend: 'wasm', adminKey: ADMIN, log: false, notice: () => undefined });
  const rows: Row[] = [];
  try {
    await fetch(`${server.url}/v1/galleries`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) });
    const done = (r: Row) => {
      rows.push(r);
      process.stderr.write(`${JSON.stringify(r)}\n`);
    };
    for (const b of ['wasm', 'webgpu'] as const) done(await nodeRow(b, photos));
    for (const b of ['wasm', 'webgpu'] as const) done(await browserRow(server.url, b, photos));
  } finally {
    // Print first: closing may wait on connections the browser left open.
    const f = (v: number | null) => (v === null ? '–' : v.toFixed(0));
    console.log(`${photos.length} photos (${photos.map((p) => p.split('/').pop()).join(', ')}); ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
    console.log('| where | backend | model load ms (cached) | first photo ms (same photo warm) | later photos ms (median) | faces | load parts |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.where} | ${r.describe} | ${f(r.loadMs)} (${f(r.loadCachedMs)}) | ${f(r.firstMs)} (${f(r.firstWarmMs)}) | ${f(r.laterMedianMs)} | ${r.faces} | ${r.loadParts} |`);
    console.log('\n' + JSON.stringify(rows));
    await Promise.race([server.close(), new Promise((r) => setTimeout(r, 5000))]);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
