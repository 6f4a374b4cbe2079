// Near-duplicate evaluation: from N photos make variants (JPEG quality 60, half size, a 5% crop,
// brightness +15% and -15%), find near-duplicate groups among all of them, and measure the recall
// of the variant groups (all six versions of a photo in one group) and the fraction of pairs of
// versions of different photos that were grouped (false pairs). `cosface eval near-dup`.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { CosfaceError } from '../errors.js';
import type { FacePipeline } from '../pipeline/face-pipeline.js';
import { hashesToText, photoSignature, textToHashes } from '../near-dup/perceptual-hash.js';
import { nearDuplicateGroups, NEAR_DUP_DEFAULTS, type NearDupOptions, type NearDupPhoto } from '../near-dup/near-duplicates.js';
import { createHash } from 'node:crypto';
import { mulberry32 } from '../random.js';

export const VARIANTS = ['original', 'jpeg-q60', 'half-size', 'crop-5pct', 'brighter-15pct', 'darker-15pct'] as const;
export type VariantName = (typeof VARIANTS)[number];

/** The variants of one photo's bytes, as JPEG bytes (the original as it is). */
export async function makeVariants(bytes: Uint8Array): Promise<Record<VariantName, Uint8Array>> {
  const meta = await sharp(bytes).metadata();
  const w = meta.width!;
  const h = meta.height!;
  const jpeg = (s: ReturnType<typeof sharp>, quality = 90) => s.jpeg({ quality }).toBuffer().then((b: Buffer) => new Uint8Array(b));
  return {
    original: bytes,
    'jpeg-q60': await jpeg(sharp(bytes), 60),
    'half-size': await jpeg(sharp(bytes).resize(Math.max(1, Math.round(w / 2)), Math.max(1, Math.round(h / 2)))),
    // 5% of the width and of the height cut off the right and bottom edges.
    'crop-5pct': await jpeg(sharp(bytes).extract({ left: 0, top: 0, width: Math.round(w * 0.95), height: Math.round(h * 0.95) })),
    'brighter-15pct': await jpeg(sharp(bytes).modulate({ brightness: 1.15 })),
    'darker-15pct': await jpeg(sharp(bytes).modulate({ brightness: 0.85 })),
  };
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */

/** `count` image paths (relative to data) picked with a fixed seed from an LFW-style folder tree. */
export async function pickLfwImages(data: string, count: number, seed = 11): Promise<string[]> {
  const root = existsSync(join(data, 'lfw')) ? 'lfw' : '';
  const all: string[] = [];
  let people: string[];
  try {
    people = (await readdir(join(data, root))).sort();
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `eval near-dup: cannot read ${join(data, root)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  for (const p of people) {
    const dir = join(data, root, p);
    const files = await readdir(dir).catch(() => [] as string[]);
    for (const f of files.sort()) if (/\.(jpe?g|png|webp)$/i.test(f)) all.push(join(root, p, f));
  }
  if (all.length < count) throw new CosfaceError('BAD_INPUT', `eval near-dup: ${all.length} images under ${data}, ${count} asked for`);
  const rnd = mulberry32(seed);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, count).sort();
}

export interface SignedVariant {
  source: number; // index of the original
  variant: VariantName;
  contentHash: string;
  /** The whole photo's and its crops' perceptual hashes (hashesToText), null when flat. */
  hashes: string | null;
  width: number;
  height: number;
  faces: number[][]; // embeddings
}

/** Signatures and faces of every variant of every photo (the slow part: the face pipeline). */
export async function signVariants(
  photos: readonly Uint8Array[],
  pipeline: FacePipeline | null,
  onProgress?: () => void,
): Promise<SignedVariant[]> {
  const out: SignedVariant[] = [];
  for (let s = 0; s < photos.length; s++) {
    const v = await makeVariants(photos[s]!);
    for (const name of VARIANTS) {
      const bytes = v[name];
      const sig = await photoSignature(bytes);
      const faces = pipeline ? await pipeline.facesInPhoto(bytes) : [];
      out.push({
        source: s,
        variant: name,
        contentHash: createHash('sha256').update(bytes).digest('hex'),
        hashes: hashesToText(sig),
        width: sig.width,
        height: sig.height,
        faces: faces.map((f) => f.embedding),
      });
      onProgress?.();
    }
  }
  return out;
}

export interface NearDupScore {
  photos: number;
  images: number;
  groupsFound: number;
  /** Variant groups whose six versions all landed in one found group. */
  recalled: number;
  recall: number;
  /** Pairs of versions of different photos grouped together, out of all such pairs. */
  falsePairs: number;
  distinctPairs: number;
  falsePairRate: number;
  /** Per variant: the fraction of variants in the same found group as their original. */
  perVariant: Record<VariantName, number>;
  candidates: number;
  confirmed: number;
  comparisons: number;
  flat: number;
  options: Required<NearDupOptions>;
}

export function scoreNearDup(signed: readonly SignedVariant[], opts: NearDupOptions = {}, useFaces = true): NearDupScore {
  const photos: NearDupPhoto[] = signed.map((s) => ({
    contentHash: s.contentHash,
    ...textToHashes(s.hashes),
    faces: useFaces ? s.faces.map((f) => Float32Array.from(f)) : [],
  }));
  const r = nearDuplicateGroups(photos, opts);
  const groupOf = new Int32Array(signed.length).fill(-1);
  r.groups.forEach((g, gi) => g.forEach((i) => (groupOf[i] = gi)));
  const sources = Math.max(...signed.map((s) => s.source)) + 1;
  let recalled = 0;
  const perVariantHits = Object.fromEntries(VARIANTS.map((v) => [v, 0])) as Record<VariantName, number>;
  const bySource: number[][] = Array.from({ length: sources }, () => []);
  signed.forEach((s, i) => bySource[s.source]!.push(i));
  for (const members of bySource) {
    const g0 = groupOf[members[0]!]!;
    if (g0 >= 0 && members.every((m) => groupOf[m] === g0)) recalled++;
    const orig = members.find((m) => signed[m]!.variant === 'original')!;
    for (const m of members) if (m === orig || (groupOf[m]! >= 0 && groupOf[m] === groupOf[orig])) perVariantHits[signed[m]!.variant]++;
  }
  // False pairs: within each found group, pairs of versions of different photos.
  let falsePairs = 0;
  for (const g of r.groups) {
    const count = new Map<number, number>();
    for (const i of g) count.set(signed[i]!.source, (count.get(signed[i]!.source) ?? 0) + 1);
    const n = g.length;
    let same = 0;
    for (const c of count.values()) same += (c * (c - 1)) / 2;
    falsePairs += (n * (n - 1)) / 2 - same;
  }
  const n = signed.length;
  const per = VARIANTS.length;
  const distinctPairs = (n * (n - 1)) / 2 - sources * ((per * (per - 1)) / 2);
  return {
    photos: sources,
    images: n,
    groupsFound: r.groups.length,
    recalled,
    recall: recalled / sources,
    falsePairs,
    distinctPairs,
    falsePairRate: falsePairs / distinctPairs,
    perVariant: Object.fromEntries(VARIANTS.map((v) => [v, perVariantHits[v] / sources])) as Record<VariantName, number>,
    candidates: r.candidates,
    confirmed: r.confirmed,
    comparisons: r.comparisons,
    flat: photos.filter((p) => !p.hash).length,
    options: { ...NEAR_DUP_DEFAULTS, ...opts },
  };
}

export interface EvalNearDupOptions {
  data: string;
  count?: number;
  pipeline: FacePipeline | null;
  /** A JSON file of signatures from an earlier run with the same data and count (written if missing). */
  cache?: string;
  onProgress?: (done: number, total: number) => void;
  options?: NearDupOptions;
}

export async function evalNearDup(o: EvalNearDupOptions): Promise<{ withFaces: NearDupScore; hashOnly: NearDupScore; images: string[] }> {
  const count = o.count ?? 500;
  const images = await pickLfwImages(o.data, count);
  let signed: SignedVariant[] | null = null;
  const key = createHash('sha256').update(images.join('\n')).digest('hex');
  if (o.cache && existsSync(o.cache)) {
    const c = JSON.parse(await readFile(o.cache, 'utf8')) as { key: string; signed: SignedVariant[] };
    if (c.key === key) signed = c.signed;
  }
  if (!signed) {
    const bytes = await Promise.all(images.map((p) => readFile(join(o.data, p)).then((b) => new Uint8Array(b))));
    let done = 0;
    signed = await signVariants(bytes, o.pipeline, () => o.onProgress?.(++done, images.length * VARIANTS.length));
    if (o.cache) await writeFile(o.cache, JSON.stringify({ key, signed }));
  }
  return { withFaces: scoreNearDup(signed, o.options, true), hashOnly: scoreNearDup(signed, o.options, false), images };
}
