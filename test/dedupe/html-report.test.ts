// The HTML report in a real browser (Chromium through playwright-core): it loads from its folder
// with no network request at all, every thumbnail decodes, a contact sheet per person with counts,
// near-duplicate photos side by side with their sizes, and file names are shown as text, never run.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDedupeReport } from '../../src/dedupe/html-report.js';
import type { DedupeResult } from '../../src/dedupe/run-dedupe.js';
import { repoRoot } from '../helpers/fixtures.js';
import { tempDir } from '../store/helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const g = (p: string) => join(repoRoot, 'examples/gallery', p);
// Boxes as the pipeline found them in these photos.
const result: DedupeResult = {
  photos: 6,
  faces: 5,
  people: [
    { id: 'person-1', name: 'Barack <b>Obama</b>', faces: [{ photo: g('obama/obama.jpg'), box: [191.82, 80.8, 135.83, 135.83], quality: 0.9 }, { photo: g('obama/obama2.jpg'), box: [144.83, 237.39, 234.29, 234.29], quality: 0.8 }] },
    { id: 'person-2', name: null, faces: [{ photo: g('biden/biden.jpg'), box: [203.59, 131.11, 147.87, 147.87], quality: 0.9 }, { photo: g('biden/biden2.jpg'), box: [161.77, 97.35, 202.85, 202.87], quality: 0.9 }] },
  ],
  unclustered: [{ photo: g('alex_lacamoire/img1.jpg'), box: [149.56, 108.24, 190.33, 190.33], quality: 0.7 }],
  nearDuplicates: [[g('biden/biden.jpg'), join(repoRoot, 'test/fixtures/photos/biden-400.jpg')]],
  nearDuplicateDetails: [
    [
      { photo: g('biden/biden.jpg'), width: 480, height: 1091, bytes: 65_000, format: 'jpeg' },
      { photo: join(repoRoot, 'test/fixtures/photos/biden-400.jpg'), width: 400, height: 909, bytes: 62_000, format: 'jpeg' },
    ],
  ],
  skipped: [{ photo: '/photos/<script>alert(1)</script>.jpg', reason: 'not an image' }],
  library: { name: 'default', embedded: 6, reused: 0, copies: 0, moved: 0, photos: 6, faces: 5 },
  threshold: 0.4,
  duplicatePeople: [{ a: 'person-1', b: 'person-2', score: 0.41 }],
};

let browser: Browser | null = null;
let dir: string;
let index: string;
beforeAll(async () => {
  dir = tempDir('report');
  index = await writeDedupeReport(result, join(dir, 'report'));
  if (existsSync(CHROMIUM)) {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  }
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

describe('dedupe HTML report', () => {
  it('is one folder: index.html and the thumbnails it names, nothing else referenced', () => {
    const html = readFileSync(index, 'utf8');
    const srcs = [...html.matchAll(/src="([^"]+)"/g)].map((m) => m[1]!);
    expect(srcs.length).toBe(5 + 2 + 2); // faces, near-duplicate photos, one face per person of the pair
    for (const s of srcs) expect(existsSync(join(dir, 'report', s)), s).toBe(true);
    expect(readdirSync(join(dir, 'report', 'thumbs'))).toHaveLength(srcs.length);
    expect(html).not.toMatch(/https?:\/\//);
  });

  // CI (COSFACE_REQUIRE_WEBGPU=1, which also installs chromium) runs it for real: a missing browser fails there.
  it.skipIf(!existsSync(CHROMIUM) && process.env.COSFACE_REQUIRE_WEBGPU !== '1')('renders in Chromium offline: every thumbnail decodes, people with counts, near duplicates with sizes', async () => {
    const page = await browser!.newPage({ viewport: { width: 1100, height: 3000 } }); // tall: lazy thumbnails all load
    const requests: string[] = [];
    const errors: string[] = [];
    let dialogs = 0;
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    await page.goto(pathToFileURL(index).href);
    await page.waitForLoadState('load');
    await page.waitForFunction(() => Array.from(document.querySelectorAll("img")).every((i) => i.complete));
    // Whatever the page asked for (requests Chromium reports, the images' sources) is in its folder;
    // its Content-Security-Policy would block (and log) anything else.
    const base = pathToFileURL(join(dir, 'report')).href;
    const sources = await page.$$eval('img', (els) => els.map((e) => (e as HTMLImageElement).currentSrc));
    expect(requests.length).toBeGreaterThan(0);
    for (const u of [...requests, ...sources]) expect(u.startsWith(base), u).toBe(true);
    const images = await page.$$eval('img', (els) => els.map((e) => ({ ok: (e as HTMLImageElement).complete && (e as HTMLImageElement).naturalWidth > 0, w: (e as HTMLImageElement).naturalWidth })));
    expect(images).toHaveLength(9);
    for (const i of images) expect(i.ok).toBe(true);
    expect(await page.$$eval('section.person h3', (els) => els.map((e) => e.textContent))).toEqual(['Barack <b>Obama</b> (person-1) 2 faces in 2 photos', 'person-2 2 faces in 2 photos']);
    expect(await page.$$eval('section.person', (els) => els.map((e) => e.querySelectorAll('img').length))).toEqual([2, 2]);
    expect(await page.textContent('#unclustered')).toContain('1');
    expect(await page.$$eval('.dups figcaption b', (els) => els.map((e) => e.textContent))).toEqual(['480 x 1091', '400 x 909']);
    expect(await page.$$eval('table tr', (els) => els.length)).toBe(2);
    expect(await page.textContent('.skipped li')).toBe('/photos/<script>alert(1)</script>.jpg: not an image');
    expect(dialogs).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});
