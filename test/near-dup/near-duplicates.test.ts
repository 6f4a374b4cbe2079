// Near-duplicate photos on generated images: every photo of the fixtures in six versions (JPEG
// quality 60, half size, a 5% crop, brightness +15% and -15%) must form one group per photo and
// nothing else; flat, very dark and very bright pictures (the known false positives of perceptual
// hashes) group only when their contents are identical. The hash search is checked against a
// comparison of all pairs, and the face confirmation on embeddings.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeVariants, scoreNearDup, VARIANTS, type SignedVariant } from '../../src/eval/near-dup.js';
import { MultiIndexHash } from '../../src/near-dup/multi-index-hash.js';
import { facesAgree, nearDuplicateGroups, type NearDupPhoto } from '../../src/near-dup/near-duplicates.js';
import { hamming, hashesToText, photoSignature, textToHashes, type Hash64 } from '../../src/near-dup/perceptual-hash.js';
import { mulberry32, repoRoot } from '../helpers/fixtures.js';
import { dedupeCommands } from '../../src/commands/dedupe-commands.js';
import { tempDir } from '../store/helpers.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The photo fixtures but test/fixtures/photos/biden-400.jpg: a resized copy of examples/gallery/biden/biden.jpg. */
function fixturePhotos(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const d of ['examples/probes', 'test/fixtures/photos', ...readdirSync(join(repoRoot, 'examples/gallery')).map((p) => join('examples/gallery', p))]) {
    for (const f of readdirSync(join(repoRoot, d)).sort()) if (/\.(jpe?g|png)$/.test(f) && f !== 'biden-400.jpg') out.push(new Uint8Array(readFileSync(join(repoRoot, d, f))));
  }
  return out;
}

let signed: SignedVariant[];

beforeAll(async () => {
  const photos = fixturePhotos();
  signed = [];
  for (let s = 0; s < photos.length; s++) {
    const v = await makeVariants(photos[s]!);
    for (const name of VARIANTS) {
      const sig = await photoSignature(v[name]);
      signed.push({ source: s, variant: name, contentHash: sha(v[name]), hashes: hashesToText(sig), width: sig.width, height: sig.height, faces: [] });
    }
  }
}, 60_000);

describe('near-duplicate photos', () => {
  it('groups the six versions of each of 15 photos, and no two photos together, by hash alone', () => {
    expect(signed.length).toBe(15 * 6);
    const s = scoreNearDup(signed, {}, false);
    expect(s.flat).toBe(0);
    expect(s.recalled).toBe(15);
    expect(s.groupsFound).toBe(15);
    expect(s.falsePairs).toBe(0);
    for (const v of VARIANTS) expect(s.perVariant[v]).toBe(1);
  });

  it('finds the resized copy among the fixtures (biden-400.jpg of biden.jpg)', async () => {
    const sig = async (f: string) => {
      const b = new Uint8Array(readFileSync(join(repoRoot, f)));
      const x = await photoSignature(b);
      return { contentHash: sha(b), hash: x.hash, crops: x.crops, faces: [] };
    };
    const photos = [await sig('examples/gallery/biden/biden.jpg'), await sig('examples/gallery/biden/biden2.jpg'), await sig('test/fixtures/photos/biden-400.jpg')];
    expect(nearDuplicateGroups(photos).groups).toEqual([[0, 2]]);
  });

  it('a 5% crop is as close as a re-encode because the crop hashes are compared with the whole', () => {
    for (let i = 0; i < signed.length; i += 6) {
      const orig = textToHashes(signed[i]!.hashes);
      const crop = textToHashes(signed.find((x) => x.source === signed[i]!.source && x.variant === 'crop-5pct')!.hashes);
      const whole = hamming(orig.hash!, crop.hash!);
      const best = Math.min(whole, ...orig.crops.map((c) => hamming(c, crop.hash!)));
      expect(best).toBeLessThanOrEqual(6);
      expect(best).toBeLessThanOrEqual(whole);
    }
  });

  it('flat, black and white pictures get no hash and group only with identical bytes; a dark photo still groups with its re-encode', async () => {
    const solid = (r: number, g: number, b: number) => sharp({ create: { width: 64, height: 48, channels: 3, background: { r, g, b } } }).jpeg().toBuffer();
    const rnd = mulberry32(5);
    const noisy = async (level: number, amp: number) => {
      const px = Buffer.alloc(64 * 48 * 3);
      for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(255, Math.round(level + (rnd() - 0.5) * amp)));
      return sharp(px, { raw: { width: 64, height: 48, channels: 3 } }).png().toBuffer();
    };
    const photo = fixturePhotos()[0]!;
    const dark = await sharp(photo).modulate({ brightness: 0.12 }).jpeg({ quality: 90 }).toBuffer();
    const darkAgain = await sharp(dark).jpeg({ quality: 60 }).toBuffer();
    const flatOnes = [await solid(0, 0, 0), await solid(255, 255, 255), await solid(128, 128, 128), await solid(20, 30, 200), await noisy(3, 6), await noisy(252, 6), await noisy(128, 4)];
    const black = await solid(0, 0, 0);
    const all = [...flatOnes, black, dark, darkAgain].map((b) => new Uint8Array(b));
    const photos: NearDupPhoto[] = [];
    for (const b of all) {
      const sig = await photoSignature(b);
      photos.push({ contentHash: sha(b), hash: sig.hash, crops: sig.crops, faces: [] });
    }
    expect(photos.slice(0, flatOnes.length + 1).every((p) => p.hash === null)).toBe(true);
    expect(photos[flatOnes.length + 1]!.hash).not.toBeNull();
    const r = nearDuplicateGroups(photos);
    // The two identical black JPEGs, and the dark photo with its re-encode: nothing else.
    expect(r.groups).toEqual([[0, flatOnes.length], [flatOnes.length + 1, flatOnes.length + 2]]);
  });

  it('faces confirm a pair only when every face of the photo with fewer faces has its own partner', () => {
    const unit = (...v: number[]) => {
      const n = Math.hypot(...v);
      return Float32Array.from(v.map((x) => x / n));
    };
    const a = unit(1, 0, 0);
    const b = unit(0, 1, 0);
    const a2 = unit(1, 0.1, 0);
    expect(facesAgree([a], [a2, b], 0.7)).toBe(true);
    expect(facesAgree([a, b], [a2], 0.7)).toBe(true); // a background face lost in a smaller copy
    expect(facesAgree([a, b], [a2, a], 0.7)).toBe(false); // b has no partner; a2 and a are one face's
    expect(facesAgree([b], [a], 0.7)).toBe(false);
    expect(facesAgree([], [a], 0.7)).toBe(false);
  });

  it('cosface eval near-dup prints the table (hashes only, on an LFW-style folder of the aligned fixtures)', async () => {
    const data = join(tempDir('near-dup-eval'), 'lfw');
    for (const f of readdirSync(join(repoRoot, 'test/fixtures/aligned')).filter((x) => x.endsWith('.png'))) {
      const who = f.replace(/_\d{4}\.png$/, '');
      mkdirSync(join(data, who), { recursive: true });
      symlinkSync(join(repoRoot, 'test/fixtures/aligned', f), join(data, who, f));
    }
    let out = '';
    const io = { out: (s: string) => void (out += s), err: () => undefined, errIsTTY: false };
    const cmd = dedupeCommands({ io, openPipeline: async () => { throw new Error('--no-faces must not open the pipeline'); } })['eval-near-dup'];
    await cmd(['--data', join(data, '..'), '--images', '10', '--no-faces', '--json']);
    const r = JSON.parse(out) as { withFaces: null; hashOnly: { photos: number; images: number; recall: number; falsePairs: number } };
    expect(r.withFaces).toBeNull();
    expect(r.hashOnly).toMatchObject({ photos: 10, images: 60, recall: 1, falsePairs: 0 });
    out = '';
    await cmd(['--data', join(data, '..'), '--images', '10', '--no-faces']);
    expect(out).toMatch(/\| hash only <= 6 \| 60 \| 10 \| 10\/10 = 1\.0000 \| 0 \/ 1620 = 0\.0000% \|/);
    await expect(cmd(['--data', join(data, '..'), '--images', '99', '--no-faces'])).rejects.toThrow(/16 images under .* 99 asked for/);
  });

  it('the multi-index hash search finds exactly what a comparison of all pairs finds, with far fewer distance computations', () => {
    const rnd = mulberry32(11);
    const rand32 = () => Math.floor(rnd() * 2 ** 32) >>> 0;
    const flip = (h: Hash64, bits: number): Hash64 => {
      let { hi, lo } = h;
      const used = new Set<number>();
      while (used.size < bits) used.add(Math.floor(rnd() * 64));
      for (const b of used) if (b < 32) hi = (hi ^ (1 << b)) >>> 0; else lo = (lo ^ (1 << (b - 32))) >>> 0;
      return { hi, lo };
    };
    const hashes: Hash64[] = [];
    for (let i = 0; i < 2000; i++) hashes.push(i % 4 === 0 || hashes.length === 0 ? { hi: rand32(), lo: rand32() } : flip(hashes[hashes.length - 1]!, Math.floor(rnd() * 12)));
    const index = new MultiIndexHash();
    hashes.forEach((h, i) => index.add(h, i));
    for (const radius of [0, 3, 6, 8, 11]) {
      for (let q = 0; q < 2000; q += 37) {
        const got = index.within(hashes[q]!, radius).map((x) => `${x.id}:${x.distance}`).sort();
        const want = hashes.map((h, i) => ({ i, d: hamming(h, hashes[q]!) })).filter((x) => x.d <= radius).map((x) => `${x.i}:${x.d}`).sort();
        expect(got).toEqual(want);
      }
    }
    index.comparisons = 0;
    for (let q = 0; q < 2000; q++) index.within(hashes[q]!, 8);
    expect(index.comparisons).toBeLessThan((2000 * 2000) / 10);
  });
});
