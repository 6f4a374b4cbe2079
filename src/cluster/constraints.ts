// Union-find over faces that keeps the clustering rules: two faces of one photo are never one
// person (cannot-link), a person the user confirmed (named) is never merged with another person,
// and in incremental mode existing people are never merged with each other at all.
import { CosfaceError } from '../errors.js';

export interface ConstraintInput {
  /** Cannot-link group per face (the photo): faces of one group never share a person. */
  photoOf: Int32Array;
  /** Existing person id per face, -1 if none. Faces of one person start (and stay) together. */
  fixed?: Int32Array;
  /** Person ids the user confirmed: never merged with another person automatically. */
  named?: Set<number>;
  /** Existing people are never merged with each other (incremental assignment). */
  lockFixed?: boolean;
}

/** Union-find whose roots carry the photos of their constrained faces and their existing person. */
export class ConstrainedUnionFind {
  readonly parent: Int32Array;
  readonly size: Int32Array;
  /** Existing person id of the root's set, -1 if none. */
  readonly person: Int32Array;
  /** Photos of the set's faces, kept only for faces whose photo has more than one face. */
  private readonly photos: (Set<number> | null)[];
  private readonly photoOf: Int32Array;
  private readonly constrained: Uint8Array;
  private readonly named: Set<number>;
  private readonly lockFixed: boolean;

  constructor(n: number, c: ConstraintInput) {
    if (c.photoOf.length !== n) throw new CosfaceError('BAD_INPUT', `photoOf has ${c.photoOf.length} entries for ${n} faces`);
    if (c.fixed && c.fixed.length !== n) throw new CosfaceError('BAD_INPUT', `fixed has ${c.fixed.length} entries for ${n} faces`);
    this.parent = new Int32Array(n);
    this.size = new Int32Array(n).fill(1);
    this.person = new Int32Array(n).fill(-1);
    this.photos = new Array<Set<number> | null>(n).fill(null);
    this.photoOf = c.photoOf;
    this.named = c.named ?? new Set();
    this.lockFixed = !!c.lockFixed;
    for (let i = 0; i < n; i++) this.parent[i] = i;
    // Only photos with two or more faces can conflict.
    const count = new Map<number, number>();
    for (let i = 0; i < n; i++) count.set(c.photoOf[i]!, (count.get(c.photoOf[i]!) ?? 0) + 1);
    this.constrained = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (count.get(c.photoOf[i]!)! > 1) {
        this.constrained[i] = 1;
        this.photos[i] = new Set([c.photoOf[i]!]);
      }
    }
    if (c.fixed) {
      const first = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const p = c.fixed[i]!;
        if (p < 0) continue;
        this.person[i] = p;
        const f = first.get(p);
        if (f === undefined) first.set(p, i);
        else this.link(this.find(f), this.find(i));
      }
    }
  }

  find(i: number): number {
    const parent = this.parent;
    let r = i;
    while (parent[r] !== r) r = parent[r]!;
    while (parent[i] !== r) {
      const next = parent[i]!;
      parent[i] = r;
      i = next;
    }
    return r;
  }

  /** Whether the sets with roots ra and rb may become one person. */
  canUnion(ra: number, rb: number): boolean {
    if (ra === rb) return false;
    const pa = this.person[ra]!;
    const pb = this.person[rb]!;
    if (pa >= 0 && pb >= 0 && pa !== pb && (this.lockFixed || this.named.has(pa) || this.named.has(pb))) return false;
    const sa = this.photos[ra];
    const sb = this.photos[rb];
    if (sa && sb) {
      const [small, large] = sa.size <= sb.size ? [sa, sb] : [sb, sa];
      for (const p of small) if (large.has(p)) return false;
    }
    return true;
  }

  /** Whether face i's photo already has a face in the set with root r (other than i). */
  photoConflict(i: number, r: number): boolean {
    if (!this.constrained[i]) return false;
    const s = this.photos[r];
    return !!s && s.has(this.photoOf[i]!);
  }

  /** The cannot-link group (photo) of face i. */
  photoOfFace(i: number): number {
    return this.photoOf[i]!;
  }

  /** Joins two roots without checking the rules (the caller kept them); returns the new root. */
  forceUnion(ra: number, rb: number): number {
    return this.link(ra, rb);
  }

  /** Joins two roots (caller checked canUnion); returns the new root. */
  union(ra: number, rb: number): number {
    return this.link(ra, rb);
  }

  private link(ra: number, rb: number): number {
    if (ra === rb) return ra;
    if (this.size[ra]! < this.size[rb]!) [ra, rb] = [rb, ra];
    this.parent[rb] = ra;
    this.size[ra]! += this.size[rb]!;
    const sa = this.photos[ra];
    const sb = this.photos[rb];
    if (sb) {
      if (sa) {
        for (const p of sb) sa.add(p);
      } else {
        this.photos[ra] = sb;
      }
      this.photos[rb] = null;
    }
    const pa = this.person[ra]!;
    const pb = this.person[rb]!;
    // A merged set keeps the existing person's id (named ones are never merged with another
    // person, see canUnion), the smaller of two unnamed ones.
    if (pa < 0 || (pb >= 0 && pb < pa)) this.person[ra] = pb;
    return ra;
  }
}

/**
 * Person ids from a grouping: a set holding an existing person keeps that id; new people (sets of
 * two or more faces) are numbered from max(existing id) + 1, largest first (ties: lowest face
 * index); single faces without a person are unclustered (-1).
 */
export function labelsFromSets(n: number, rootOf: (i: number) => number, personOfRoot: (r: number) => number, fixed?: Int32Array): Int32Array {
  let next = 0;
  if (fixed) for (let i = 0; i < n; i++) next = Math.max(next, fixed[i]! + 1);
  const size = new Map<number, number>();
  const first = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const r = rootOf(i);
    size.set(r, (size.get(r) ?? 0) + 1);
    if (!first.has(r)) first.set(r, i);
  }
  const fresh = [...size.keys()].filter((r) => personOfRoot(r) < 0 && size.get(r)! >= 2);
  fresh.sort((x, y) => size.get(y)! - size.get(x)! || first.get(x)! - first.get(y)!);
  const id = new Map<number, number>();
  for (const r of fresh) id.set(r, next++);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rootOf(i);
    const p = personOfRoot(r);
    labels[i] = p >= 0 ? p : (id.get(r) ?? -1);
  }
  return labels;
}
