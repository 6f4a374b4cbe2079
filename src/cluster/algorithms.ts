// The clustering algorithms compared in docs/clustering.md, all on the thresholded k-NN graph
// and all under the same constraints (ConstrainedUnionFind): cannot-link per photo, named people
// never merged, existing people locked in incremental mode.
import { ConstrainedUnionFind } from './constraints.js';
import type { Edges } from './knn.js';
import { mulberry32 } from '../random.js';

export interface GraphContext {
  n: number;
  dim: number;
  /** n x dim unit vectors. */
  vectors: Float32Array;
  /** Edges at or above the threshold, best first. */
  edges: Edges;
  threshold: number;
  uf: ConstrainedUnionFind;
}

/** Single linkage: join the two ends of every edge, strongest first, unless a rule forbids it. */
export function unionFindClusters(ctx: GraphContext): void {
  const { edges, uf } = ctx;
  for (let e = 0; e < edges.w.length; e++) {
    const ra = uf.find(edges.a[e]!);
    const rb = uf.find(edges.b[e]!);
    if (uf.canUnion(ra, rb)) uf.union(ra, rb);
  }
}

/**
 * DBSCAN's core-point rule as Immich uses it: a face with at least minFaces faces (itself
 * included) within the threshold is a core; cores within the threshold of each other are one
 * person; a non-core face joins the most similar core within the threshold; the rest join nobody.
 */
export function dbscanClusters(ctx: GraphContext, minFaces: number): void {
  const { n, edges, uf } = ctx;
  const count = new Int32Array(n).fill(1);
  for (let e = 0; e < edges.w.length; e++) {
    count[edges.a[e]!]!++;
    count[edges.b[e]!]!++;
  }
  const core = (i: number): boolean => count[i]! >= minFaces;
  for (let e = 0; e < edges.w.length; e++) {
    const a = edges.a[e]!;
    const b = edges.b[e]!;
    if (!core(a) || !core(b)) continue;
    const ra = uf.find(a);
    const rb = uf.find(b);
    if (uf.canUnion(ra, rb)) uf.union(ra, rb);
  }
  // Border faces: edges are best first, so the first allowed core neighbour is the most similar.
  const attached = new Uint8Array(n);
  for (let e = 0; e < edges.w.length; e++) {
    const a = edges.a[e]!;
    const b = edges.b[e]!;
    const ca = core(a);
    if (ca === core(b)) continue;
    const border = ca ? b : a;
    if (attached[border]) continue;
    const ra = uf.find(a);
    const rb = uf.find(b);
    if (uf.canUnion(ra, rb)) {
      uf.union(ra, rb);
      attached[border] = 1;
    }
  }
}

/** Seeded uniform [0, 1) (mulberry32). */
const seeded = mulberry32;

/** Compressed adjacency of the undirected edges. */
function adjacency(n: number, edges: Edges): { start: Int32Array; adj: Int32Array; w: Float32Array } {
  const start = new Int32Array(n + 1);
  for (let e = 0; e < edges.w.length; e++) {
    start[edges.a[e]! + 1]!++;
    start[edges.b[e]! + 1]!++;
  }
  for (let i = 0; i < n; i++) start[i + 1]! += start[i]!;
  const fill = start.slice(0, n);
  const adj = new Int32Array(start[n]!);
  const w = new Float32Array(start[n]!);
  for (let e = 0; e < edges.w.length; e++) {
    const a = edges.a[e]!;
    const b = edges.b[e]!;
    adj[fill[a]!] = b;
    w[fill[a]!++] = edges.w[e]!;
    adj[fill[b]!] = a;
    w[fill[b]!++] = edges.w[e]!;
  }
  return { start, adj, w };
}

/**
 * Chinese Whispers (Biemann 2006): every face starts as its own label and, in a seeded random
 * order, takes the label with the largest summed edge weight among its neighbours; repeated
 * until nothing changes. A face never takes a label that already holds another face of its
 * photo; faces of existing people keep their person's label. The result is applied to uf.
 */
export function chineseWhispersClusters(ctx: GraphContext, iterations: number, seed = 1): void {
  const { n, edges, uf } = ctx;
  const { start, adj, w } = adjacency(n, edges);
  const label = new Int32Array(n);
  const fixed = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    label[i] = uf.find(i);
    fixed[i] = uf.person[label[i]!]! >= 0 ? 1 : 0;
  }
  // Photos per label, for faces of multi-face photos only.
  const photoCount = new Map<number, Map<number, number>>();
  const multi = new Set<number>();
  {
    const seen = new Map<number, number>();
    for (let i = 0; i < n; i++) seen.set(ctx.uf.photoOfFace(i), (seen.get(ctx.uf.photoOfFace(i)) ?? 0) + 1);
    for (let i = 0; i < n; i++) if (seen.get(ctx.uf.photoOfFace(i))! > 1) multi.add(i);
  }
  const bump = (l: number, p: number, d: number): void => {
    let m = photoCount.get(l);
    if (!m) photoCount.set(l, (m = new Map()));
    const c = (m.get(p) ?? 0) + d;
    if (c === 0) m.delete(p);
    else m.set(p, c);
  };
  for (const i of multi) bump(label[i]!, uf.photoOfFace(i), 1);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const rand = seeded(seed);
  const score = new Map<number, number>();
  for (let it = 0; it < iterations; it++) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    let changed = 0;
    for (let o = 0; o < n; o++) {
      const i = order[o]!;
      if (fixed[i] || start[i] === start[i + 1]) continue;
      score.clear();
      for (let t = start[i]!; t < start[i + 1]!; t++) {
        const l = label[adj[t]!]!;
        score.set(l, (score.get(l) ?? 0) + w[t]!);
      }
      const cur = label[i]!;
      const photo = uf.photoOfFace(i);
      let best = cur;
      let bestScore = score.get(cur) ?? 0;
      for (const [l, s] of score) {
        if (l === cur || !(s > bestScore || (s === bestScore && l < best))) continue;
        if (multi.has(i) && (photoCount.get(l)?.get(photo) ?? 0) > 0) continue;
        best = l;
        bestScore = s;
      }
      if (best !== cur) {
        if (multi.has(i)) {
          bump(cur, photo, -1);
          bump(best, photo, 1);
        }
        label[i] = best;
        changed++;
      }
    }
    if (changed === 0) break;
  }
  // Apply: faces sharing a label become one set (joined to the label's first face; the face
  // whose index names the label may itself have moved to another label).
  const rep = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const r = rep.get(label[i]!);
    if (r === undefined) {
      rep.set(label[i]!, i);
      continue;
    }
    const ri = uf.find(i);
    const rr = uf.find(r);
    if (ri !== rr) uf.forceUnion(ri, rr);
  }
}

/** A max-heap of candidate merges (similarity, two roots, their versions when pushed). */
class MergeHeap {
  private sim = new Float64Array(1024);
  private a = new Int32Array(1024);
  private b = new Int32Array(1024);
  private va = new Int32Array(1024);
  private vb = new Int32Array(1024);
  size = 0;

  push(s: number, a: number, b: number, va: number, vb: number): void {
    if (this.size === this.sim.length) this.grow();
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.sim[p]! >= s) break;
      this.move(p, i);
      i = p;
    }
    this.sim[i] = s;
    this.a[i] = a;
    this.b[i] = b;
    this.va[i] = va;
    this.vb[i] = vb;
  }

  /** Removes the top into out: [sim, a, b, va, vb]. */
  pop(out: number[]): void {
    out[0] = this.sim[0]!;
    out[1] = this.a[0]!;
    out[2] = this.b[0]!;
    out[3] = this.va[0]!;
    out[4] = this.vb[0]!;
    const last = --this.size;
    if (last === 0) return;
    const s = this.sim[last]!;
    const [a, b, va, vb] = [this.a[last]!, this.b[last]!, this.va[last]!, this.vb[last]!];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && this.sim[c + 1]! > this.sim[c]!) c++;
      if (this.sim[c]! <= s) break;
      this.move(c, i);
      i = c;
    }
    this.sim[i] = s;
    this.a[i] = a;
    this.b[i] = b;
    this.va[i] = va;
    this.vb[i] = vb;
  }

  private move(from: number, to: number): void {
    this.sim[to] = this.sim[from]!;
    this.a[to] = this.a[from]!;
    this.b[to] = this.b[from]!;
    this.va[to] = this.va[from]!;
    this.vb[to] = this.vb[from]!;
  }

  private grow(): void {
    const g = <T extends Float64Array | Int32Array>(x: T): T => {
      const y = new (x.constructor as new (n: number) => T)(x.length * 2);
      y.set(x);
      return y;
    };
    this.sim = g(this.sim);
    this.a = g(this.a);
    this.b = g(this.b);
    this.va = g(this.va);
    this.vb = g(this.vb);
  }
}

/**
 * Average linkage on the k-NN graph: two people are merged while the mean cosine over all pairs
 * of their faces is at least the threshold, best pair first. Unit vectors make that mean exact and
 * cheap: mean_{a in A, b in B} a.b = (sum A).(sum B) / (|A| |B|). Only people joined by a graph
 * edge at or above the threshold are candidates, so the work follows the graph, not n^2.
 */
export function averageLinkageClusters(ctx: GraphContext): void {
  const { n, dim, vectors, edges, threshold, uf } = ctx;
  const sums = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const r = uf.find(i);
    for (let d = 0; d < dim; d++) sums[r * dim + d]! += vectors[i * dim + d]!;
  }
  const mean = (ra: number, rb: number): number => {
    let s = 0;
    const oa = ra * dim;
    const ob = rb * dim;
    for (let d = 0; d < dim; d++) s += sums[oa + d]! * sums[ob + d]!;
    return s / (uf.size[ra]! * uf.size[rb]!);
  };
  // Neighbouring roots per root (deduplicated).
  const nb: (number[] | null)[] = new Array<number[] | null>(n).fill(null);
  const nbSet: (Set<number> | null)[] = new Array<Set<number> | null>(n).fill(null);
  for (let e = 0; e < edges.w.length; e++) {
    const ra = uf.find(edges.a[e]!);
    const rb = uf.find(edges.b[e]!);
    if (ra === rb) continue;
    (nbSet[ra] ??= new Set()).add(rb);
    (nbSet[rb] ??= new Set()).add(ra);
  }
  const version = new Int32Array(n);
  const heap = new MergeHeap();
  for (let r = 0; r < n; r++) {
    const s = nbSet[r];
    if (!s) continue;
    nb[r] = [...s];
    nbSet[r] = null;
    for (const c of nb[r]!) {
      if (c <= r) continue;
      const m = mean(r, c);
      if (m >= threshold) heap.push(m, r, c, 0, 0);
    }
  }
  const top = [0, 0, 0, 0, 0];
  const seen = new Set<number>();
  while (heap.size > 0) {
    heap.pop(top);
    const a = top[1]!;
    const b = top[2]!;
    if (uf.parent[a] !== a || uf.parent[b] !== b || version[a] !== top[3] || version[b] !== top[4]) continue;
    if (!uf.canUnion(a, b)) continue;
    const r = uf.union(a, b);
    const other = r === a ? b : a;
    const so = other * dim;
    const sr = r * dim;
    for (let d = 0; d < dim; d++) sums[sr + d]! += sums[so + d]!;
    version[r]!++;
    seen.clear();
    const merged: number[] = [];
    for (const list of [nb[r], nb[other]]) {
      if (!list) continue;
      for (const c of list) {
        const rc = uf.find(c);
        if (rc === r || seen.has(rc)) continue;
        seen.add(rc);
        merged.push(rc);
      }
    }
    nb[other] = null;
    nb[r] = merged;
    for (const c of merged) {
      const m = mean(r, c);
      if (m >= threshold) heap.push(m, Math.min(r, c), Math.max(r, c), version[Math.min(r, c)]!, version[Math.max(r, c)]!);
    }
  }
}
