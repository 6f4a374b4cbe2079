// Groups of near-duplicate photos (re-encodes, resizes, small crops, brightness changes, bursts):
// candidates come from a multi-index hash search of the perceptual hashes (not a comparison of all
// pairs),
// and a candidate pair is kept only when the faces agree: the faces of the photo with fewer faces
// all have a partner in the other at a high cosine. Photos without faces, or with a face on one
// side only, need a much closer hash. Identical contents always group; flat photos (no hash) group
// only by identical contents.
import { MultiIndexHash } from './multi-index-hash.js';
import type { Hash64 } from './perceptual-hash.js';

export interface NearDupPhoto {
  /** Photos with the same content hash are the same file content (always one group). */
  contentHash: string;
  /** Perceptual hash of the whole photo; null for flat photos. */
  hash: Hash64 | null;
  /** Perceptual hashes of crops of it (CROP_REGIONS), so that a cropped copy is found. */
  crops?: readonly Hash64[];
  /** Unit face embeddings (any order). */
  faces: readonly Float32Array[];
}

export interface NearDupOptions {
  /** Hamming radius for photos whose faces agree (default 8 of 64 bits). */
  maxDistance?: number;
  /** Hamming radius when a side has no face to confirm with (default 6). */
  maxDistanceWithoutFaces?: number;
  /** Cosine two faces need to count as the same face of the same shot (default 0.7). */
  faceMatch?: number;
}

/**
 * Measured on 500 LFW images in six versions each (docs in BENCHMARKS.md): the versions of one photo
 * are at most 6 bits apart (crops compared with the matching crop hash), different photos at
 * least 6 and rarely under 10; the same face in two versions scored at least 0.75 (a
 * brightened copy), different photos' faces under 0.65 where the hashes were within 10 bits.
 */
export const NEAR_DUP_DEFAULTS: Required<NearDupOptions> = { maxDistance: 8, maxDistanceWithoutFaces: 6, faceMatch: 0.7 };

export interface NearDupResult {
  /** Groups of photo indices (each at least two, ascending), largest group first. */
  groups: number[][];
  /** Candidate pairs the hash search returned, and those the faces confirmed. */
  candidates: number;
  confirmed: number;
  /** Hash distance computations of the searches (all pairs would take n(n-1)/2 x 11). */
  comparisons: number;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Whether every face of the photo with fewer faces has its own partner at >= minCos in the other. */
export function facesAgree(a: readonly Float32Array[], b: readonly Float32Array[], minCos: number): boolean {
  const [few, many] = a.length <= b.length ? [a, b] : [b, a];
  if (few.length === 0) return false;
  const pairs: { i: number; j: number; s: number }[] = [];
  for (let i = 0; i < few.length; i++) for (let j = 0; j < many.length; j++) {
    const s = dot(few[i]!, many[j]!);
    if (s >= minCos) pairs.push({ i, j, s });
  }
  pairs.sort((x, y) => y.s - x.s);
  const usedI = new Set<number>();
  const usedJ = new Set<number>();
  for (const p of pairs) {
    if (usedI.has(p.i) || usedJ.has(p.j)) continue;
    usedI.add(p.i);
    usedJ.add(p.j);
  }
  return usedI.size === few.length;
}

export function nearDuplicateGroups(photos: readonly NearDupPhoto[], opts: NearDupOptions = {}): NearDupResult {
  const o = { ...NEAR_DUP_DEFAULTS, ...opts };
  const parent = Int32Array.from({ length: photos.length }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  // Identical contents.
  const byContent = new Map<string, number>();
  photos.forEach((p, i) => {
    const first = byContent.get(p.contentHash);
    if (first === undefined) byContent.set(p.contentHash, i);
    else union(first, i);
  });
  // Hash neighbours: each photo searches the trees of the photos before it, then joins them, so
  // every pair is looked at once. Whole hashes are compared with whole hashes and with crop hashes
  // both ways (a cropped copy looks like a crop of the original), crops never with crops.
  const wholes = new MultiIndexHash();
  const crops = new MultiIndexHash();
  const radius = Math.max(o.maxDistance, o.maxDistanceWithoutFaces);
  let candidates = 0;
  let confirmed = 0;
  for (let i = 0; i < photos.length; i++) {
    const p = photos[i]!;
    if (!p.hash || byContent.get(p.contentHash) !== i) continue;
    const best = new Map<number, number>();
    const note = (hits: { id: number; distance: number }[]) => {
      for (const h of hits) if (!(best.get(h.id)! <= h.distance)) best.set(h.id, h.distance);
    };
    note(wholes.within(p.hash, radius));
    note(crops.within(p.hash, radius));
    for (const c of p.crops ?? []) note(wholes.within(c, radius));
    for (const [j, distance] of [...best.entries()].sort((a, b) => a[0] - b[0])) {
      candidates++;
      const q = photos[j]!;
      const withFaces = p.faces.length > 0 && q.faces.length > 0;
      const ok = withFaces ? distance <= o.maxDistance && facesAgree(p.faces, q.faces, o.faceMatch) : distance <= o.maxDistanceWithoutFaces;
      if (ok) {
        confirmed++;
        union(i, j);
      }
    }
    wholes.add(p.hash, i);
    for (const c of p.crops ?? []) crops.add(c, i);
  }
  const members = new Map<number, number[]>();
  for (let i = 0; i < photos.length; i++) {
    const r = find(i);
    let m = members.get(r);
    if (!m) members.set(r, (m = []));
    m.push(i);
  }
  const groups = [...members.values()].filter((g) => g.length > 1).sort((a, b) => b.length - a.length || a[0]! - b[0]!);
  return { groups, candidates, confirmed, comparisons: wholes.comparisons + crops.comparisons };
}
