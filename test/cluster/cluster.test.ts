// Clustering faces into people: each algorithm on the HNSW k-NN graph against a plain O(n^2)
// reference written here, the cannot-link and named rules, incremental assignment, unclustered.
import { describe, expect, it } from 'vitest';
import { assignNewFaces, clusterFaces, clusterFacesParallel, clusterGraph, knnGraph, knnGraphParallel, type ClusterAlgorithm } from '../../src/cluster/index.js';
import { ClusterGenerator, seededRandom } from '../../src/bench/search-bench.js';
import { isCosfaceError } from '../../src/errors.js';

const DIM = 48;

/** people x perPerson faces (row = person * perPerson + j), unit vectors; cos(face, centre) ~ q. */
function faces(people: number, perPerson: number, seed: number, q = 0.8, qSd = 0.08): { vectors: Float32Array; person: Int32Array } {
  const gen = new ClusterGenerator({ dim: DIM, qualityMean: q, qualitySd: qSd }, seed);
  const n = people * perPerson;
  const vectors = new Float32Array(n * DIM);
  const person = new Int32Array(n);
  for (let p = 0; p < people; p++) {
    const c = gen.centre();
    for (let j = 0; j < perPerson; j++) {
      gen.sample(c, vectors, (p * perPerson + j) * DIM);
      person[p * perPerson + j] = p;
    }
  }
  return { vectors, person };
}

function dot(v: Float32Array, i: number, j: number): number {
  let s = 0;
  for (let d = 0; d < DIM; d++) s += v[i * DIM + d]! * v[j * DIM + d]!;
  return s;
}

/** Canonical partition: each face -> the smallest face index of its group (-1 stays -1). */
function canon(labels: ArrayLike<number>): number[] {
  const first = new Map<number, number>();
  return Array.from(labels, (l, i) => {
    if (l < 0) return -1;
    if (!first.has(l)) first.set(l, i);
    return first.get(l)!;
  });
}

// ---- plain references: every pair, explicit member lists ----

interface RefGroups {
  members: number[][];
  groupOf: number[];
}

function refGroups(n: number): RefGroups {
  return { members: Array.from({ length: n }, (_, i) => [i]), groupOf: Array.from({ length: n }, (_, i) => i) };
}

function refCanJoin(g: RefGroups, a: number, b: number, photoOf: Int32Array): boolean {
  if (a === b) return false;
  const photos = new Set(g.members[a]!.map((i) => photoOf[i]!));
  return !g.members[b]!.some((i) => photos.has(photoOf[i]!));
}

function refJoin(g: RefGroups, a: number, b: number): void {
  for (const i of g.members[b]!) g.groupOf[i] = a;
  g.members[a]!.push(...g.members[b]!);
  g.members[b] = [];
}

function refLabels(g: RefGroups): number[] {
  return canon(g.groupOf.map((x) => (g.members[x]!.length >= 2 ? x : -1)));
}

function allPairs(v: Float32Array, n: number, t: number): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) {
    const s = dot(v, i, j);
    if (s >= t) out.push([s, i, j]);
  }
  return out.sort((x, y) => y[0] - x[0]);
}

function refUnionFind(v: Float32Array, photoOf: Int32Array, t: number): number[] {
  const n = photoOf.length;
  const g = refGroups(n);
  for (const [, i, j] of allPairs(v, n, t)) {
    const a = g.groupOf[i]!;
    const b = g.groupOf[j]!;
    if (refCanJoin(g, a, b, photoOf)) refJoin(g, a, b);
  }
  return refLabels(g);
}

function refAverage(v: Float32Array, photoOf: Int32Array, t: number): number[] {
  const n = photoOf.length;
  const g = refGroups(n);
  const blocked = new Set<string>();
  for (;;) {
    let best = -Infinity;
    let pair: [number, number] | null = null;
    const live = g.members.map((m, i) => (m.length ? i : -1)).filter((i) => i >= 0);
    for (const a of live) for (const b of live) {
      if (b <= a || blocked.has(`${a},${b}`)) continue;
      let s = 0;
      for (const i of g.members[a]!) for (const j of g.members[b]!) s += dot(v, i, j);
      s /= g.members[a]!.length * g.members[b]!.length;
      if (s > best) {
        best = s;
        pair = [a, b];
      }
    }
    if (!pair || best < t) break;
    if (refCanJoin(g, pair[0], pair[1], photoOf)) refJoin(g, pair[0], pair[1]);
    else blocked.add(`${pair[0]},${pair[1]}`);
  }
  return refLabels(g);
}

function refDbscan(v: Float32Array, photoOf: Int32Array, t: number, minFaces: number): number[] {
  const n = photoOf.length;
  const pairs = allPairs(v, n, t);
  const count = new Array<number>(n).fill(1);
  for (const [, i, j] of pairs) {
    count[i]!++;
    count[j]!++;
  }
  const core = (i: number): boolean => count[i]! >= minFaces;
  const g = refGroups(n);
  for (const [, i, j] of pairs) {
    if (!core(i) || !core(j)) continue;
    const a = g.groupOf[i]!;
    const b = g.groupOf[j]!;
    if (refCanJoin(g, a, b, photoOf)) refJoin(g, a, b);
  }
  const attached = new Set<number>();
  for (const [, i, j] of pairs) {
    if (core(i) === core(j)) continue;
    const border = core(i) ? j : i;
    if (attached.has(border)) continue;
    const a = g.groupOf[i]!;
    const b = g.groupOf[j]!;
    if (refCanJoin(g, a, b, photoOf)) {
      refJoin(g, a, b);
      attached.add(border);
    }
  }
  return refLabels(g);
}

/** Photos: most faces alone, some photos holding two or three faces of mixed people. */
function photosFor(n: number, seed: number): Int32Array {
  const rand = seededRandom(seed);
  const photoOf = new Int32Array(n);
  for (let i = 0; i < n; i++) photoOf[i] = rand() < 0.3 ? Math.floor(rand() * (n / 8)) : n + i;
  return photoOf;
}

describe('clustering on the HNSW k-NN graph against O(n^2) references', () => {
  // 30 people x 4 faces in 48-d: same-person cosine ~0.64, other people ~0 +- 0.14, so at 0.35
  // some cross-person edges exist and the algorithms differ.
  const { vectors, person } = faces(30, 4, 11, 0.8, 0.1);
  const n = person.length;
  const photoOf = photosFor(n, 5);
  const full = knnGraph(vectors, DIM, n - 1, { ef: 400 });

  for (const t of [0.35, 0.5]) {
    it(`union-find at ${t} equals the all-pairs reference`, () => {
      const r = clusterGraph({ vectors, dim: DIM, photoOf }, full, { algorithm: 'union-find', threshold: t });
      expect(canon(r.labels)).toEqual(refUnionFind(vectors, photoOf, t));
    });
    it(`average linkage at ${t} equals the all-pairs reference`, () => {
      const r = clusterGraph({ vectors, dim: DIM, photoOf }, full, { algorithm: 'average', threshold: t });
      expect(canon(r.labels)).toEqual(refAverage(vectors, photoOf, t));
    });
    it(`dbscan (minFaces 3) at ${t} equals the all-pairs reference`, () => {
      const r = clusterGraph({ vectors, dim: DIM, photoOf }, full, { algorithm: 'dbscan', threshold: t, minFaces: 3 });
      expect(canon(r.labels)).toEqual(refDbscan(vectors, photoOf, t, 3));
    });
  }

  it('the references themselves differ on this data (the comparison is not vacuous)', () => {
    const uf = refUnionFind(vectors, photoOf, 0.35);
    const avg = refAverage(vectors, photoOf, 0.35);
    expect(uf).not.toEqual(avg);
    expect(refAverage(vectors, photoOf, 0.35)).not.toEqual(refAverage(vectors, photoOf, 0.5));
  });

  it('chinese whispers ends at a fixed point: no face prefers another allowed label', () => {
    const t = 0.35;
    const r = clusterGraph({ vectors, dim: DIM, photoOf }, full, { algorithm: 'chinese-whispers', threshold: t });
    const group = Array.from(r.labels, (l, i) => (l >= 0 ? l : -1 - i));
    let checked = 0;
    for (let i = 0; i < n; i++) {
      const score = new Map<number, number>();
      for (let j = 0; j < n; j++) {
        const s = j === i ? 0 : dot(vectors, i, j);
        if (j !== i && s >= t) score.set(group[j]!, (score.get(group[j]!) ?? 0) + s);
      }
      if (score.size === 0) continue;
      checked++;
      const mine = score.get(group[i]!) ?? 0;
      for (const [g, s] of score) {
        const blocked = group.some((gj, j) => j !== i && gj === g && photoOf[j] === photoOf[i]);
        if (!blocked) expect(s).toBeLessThanOrEqual(mine + 1e-5);
      }
    }
    expect(checked).toBeGreaterThan(n / 2);
  });

  it('with k = 10 (a sparse graph) average linkage still finds the same people as the reference', () => {
    const r = clusterFaces({ vectors, dim: DIM, photoOf }, { algorithm: 'average', threshold: 0.5, k: 10 });
    expect(canon(r.labels)).toEqual(refAverage(vectors, photoOf, 0.5));
  });
});

describe('rules', () => {
  const algorithms: ClusterAlgorithm[] = ['average', 'union-find', 'dbscan', 'chinese-whispers'];

  for (const algorithm of algorithms) {
    it(`${algorithm}: two faces of one photo are never one person`, () => {
      // One person photographed 6 times; faces 0 and 1 come from the same photo (a mirror shot).
      const { vectors } = faces(1, 6, 3, 0.9, 0.02);
      const photoOf = Int32Array.from([7, 7, 1, 2, 3, 4]);
      const free = clusterFaces({ vectors, dim: DIM, photoOf: Int32Array.from([0, 1, 2, 3, 4, 5]) }, { algorithm, threshold: 0.4 });
      expect(new Set(free.labels).size).toBe(1);
      const r = clusterFaces({ vectors, dim: DIM, photoOf }, { algorithm, threshold: 0.4 });
      expect(r.labels[0] === -1 || r.labels[0] !== r.labels[1]).toBe(true);
      // The other four faces are still one person, with one of the two mirror faces.
      expect(new Set(r.labels.subarray(2)).size).toBe(1);
      expect(r.labels[2]).toBeGreaterThanOrEqual(0);
      expect([r.labels[0], r.labels[1]]).toContain(r.labels[2]);
    });

    it(`${algorithm}: a face like nobody stays unclustered (-1)`, () => {
      const { vectors: a } = faces(2, 5, 21, 0.9, 0.02);
      const { vectors: lone } = faces(1, 1, 99);
      const vectors = new Float32Array([...a, ...lone]);
      const photoOf = Int32Array.from({ length: 11 }, (_, i) => i);
      const r = clusterFaces({ vectors, dim: DIM, photoOf }, { algorithm, threshold: 0.4 });
      expect(r.labels[10]).toBe(-1);
      expect(canon(r.labels)).toEqual([0, 0, 0, 0, 0, 5, 5, 5, 5, 5, -1]);
      expect([...new Set(r.labels)].sort()).toEqual([-1, 0, 1]);
    });
  }

  it('named people are never merged automatically; unnamed existing people may be', () => {
    // One real person split into two existing people 10 and 20 (faces 0-3 and 4-7), plus new faces 8-11.
    const { vectors } = faces(1, 12, 8, 0.9, 0.02);
    const photoOf = Int32Array.from({ length: 12 }, (_, i) => i);
    const fixed = Int32Array.from([10, 10, 10, 10, 20, 20, 20, 20, -1, -1, -1, -1]);
    for (const algorithm of ['average', 'union-find', 'dbscan'] as ClusterAlgorithm[]) {
      const merged = clusterFaces({ vectors, dim: DIM, photoOf, fixed }, { algorithm });
      expect(new Set(merged.labels)).toEqual(new Set([10]));
      for (const named of [new Set([20]), new Set([10]), new Set([10, 20])]) {
        const r = clusterFaces({ vectors, dim: DIM, photoOf, fixed, named }, { algorithm });
        expect(Array.from(r.labels.subarray(0, 8))).toEqual(Array.from(fixed.subarray(0, 8)));
        expect(r.labels.subarray(8).every((l) => l === 10 || l === 20)).toBe(true);
      }
    }
    // Chinese Whispers keeps every existing person's faces where they are.
    const cw = clusterFaces({ vectors, dim: DIM, photoOf, fixed, named: new Set([10, 20]) }, { algorithm: 'chinese-whispers' });
    expect(Array.from(cw.labels.subarray(0, 8))).toEqual(Array.from(fixed.subarray(0, 8)));
  });

  it('new people are numbered after the largest existing id, largest first', () => {
    const { vectors } = faces(3, 4, 31, 0.9, 0.02);
    const keep = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; // person 2 has 2 faces, person 1 has 4, person 0 has 4
    const v = new Float32Array(keep.length * DIM);
    keep.forEach((r, i) => v.set(vectors.subarray(r * DIM, (r + 1) * DIM), i * DIM));
    const fixed = Int32Array.from([41, 41, -1, -1, -1, -1, -1, -1, -1, -1]);
    const r = clusterFaces({ vectors: v, dim: DIM, photoOf: Int32Array.from(keep), fixed });
    expect(Array.from(r.labels)).toEqual([41, 41, 41, 41, 42, 42, 42, 42, 43, 43]);
  });

  it('rejects malformed input with a clear message', () => {
    expect(() => clusterFaces({ vectors: new Float32Array(10), dim: 3, photoOf: new Int32Array(3) })).toThrow(/multiple of dim/);
    expect(() => clusterFaces({ vectors: new Float32Array(6), dim: 3, photoOf: new Int32Array(3) })).toThrow(/photoOf has 3 entries for 2 faces/);
    expect(() => clusterFaces({ vectors: new Float32Array(6), dim: 3, photoOf: new Int32Array(2) }, { algorithm: 'kmeans' as ClusterAlgorithm })).toThrow(/unknown clustering algorithm/);
    expect(() => clusterFaces({ vectors: new Float32Array(6), dim: 3, photoOf: new Int32Array(2) }, { threshold: 2 })).toThrow(/threshold/);
    let err: unknown;
    try {
      assignNewFaces({ dim: 2, existing: { vectors: new Float32Array(4), labels: new Int32Array(1), photoOf: new Int32Array(2) }, added: { vectors: new Float32Array(2), photoOf: new Int32Array(1) } });
    } catch (e) {
      err = e;
    }
    expect(isCosfaceError(err, 'BAD_INPUT')).toBe(true);
    expect((err as Error).message).toMatch(/existing.labels has 1 entries for 2 faces/);
  });

  it('no faces gives no labels', () => {
    expect(clusterFaces({ vectors: new Float32Array(0), dim: 8, photoOf: new Int32Array(0) }).labels.length).toBe(0);
  });
});

describe('assignNewFaces', () => {
  // 6 people x 6 faces: the first 4 faces of people 0-3 are clustered first; later photos bring
  // the remaining 2 faces of people 0-3 and all 6 faces of people 4 and 5, and one stranger.
  const { vectors, person } = faces(6, 6, 42, 0.88, 0.03);
  const { vectors: stranger } = faces(1, 1, 77);
  const rows = (pred: (p: number, j: number) => boolean): number[] => [...person.keys()].filter((r) => pred(person[r]!, r % 6));
  const oldRows = rows((p, j) => p < 4 && j < 4);
  const newRows = rows((p, j) => p >= 4 || j >= 4);
  const pick = (rs: number[]): Float32Array => {
    const out = new Float32Array(rs.length * DIM);
    rs.forEach((r, i) => out.set(vectors.subarray(r * DIM, (r + 1) * DIM), i * DIM));
    return out;
  };

  for (const algorithm of ['average', 'union-find', 'dbscan', 'chinese-whispers'] as ClusterAlgorithm[]) {
    it(`${algorithm}: new faces join their existing people, the rest form new people, existing labels stay`, () => {
      const old = clusterFaces({ vectors: pick(oldRows), dim: DIM, photoOf: Int32Array.from(oldRows) }, { algorithm });
      expect(canon(old.labels)).toEqual(oldRows.map((_, i) => i - (i % 4)));
      const existingPerson = new Map(oldRows.map((r, i) => [person[r]!, old.labels[i]!]));
      const added = new Float32Array([...pick(newRows), ...stranger]);
      const addedPhotos = Int32Array.from([...newRows, 1000]);
      const r = assignNewFaces({ dim: DIM, existing: { vectors: pick(oldRows), labels: old.labels, photoOf: Int32Array.from(oldRows) }, added: { vectors: added, photoOf: addedPhotos } }, { algorithm });
      expect(Array.from(r.existing)).toEqual(Array.from(old.labels));
      newRows.forEach((row, i) => {
        const p = person[row]!;
        if (p < 4) expect(r.labels[i]).toBe(existingPerson.get(p));
        else expect(r.labels[i]).toBeGreaterThan(Math.max(...old.labels));
      });
      const p4 = newRows.map((row, i) => (person[row] === 4 ? r.labels[i]! : null)).filter((x) => x !== null);
      const p5 = newRows.map((row, i) => (person[row] === 5 ? r.labels[i]! : null)).filter((x) => x !== null);
      expect(new Set(p4).size).toBe(1);
      expect(new Set(p5).size).toBe(1);
      expect(p4[0]).not.toBe(p5[0]);
      expect(r.labels[r.labels.length - 1]).toBe(-1);
    });
  }

  it('existing people are never merged by new faces, even when those bridge them', () => {
    const { vectors: one } = faces(1, 9, 5, 0.9, 0.02);
    // Faces 0-3 are person 1, faces 4-7 person 2 (the same real person, split); face 8 is new.
    const r = assignNewFaces({
      dim: DIM,
      existing: { vectors: one.subarray(0, 8 * DIM), labels: Int32Array.from([1, 1, 1, 1, 2, 2, 2, 2]), photoOf: Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]) },
      added: { vectors: one.subarray(8 * DIM), photoOf: Int32Array.from([8]) },
    });
    expect(Array.from(r.existing)).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
    expect([1, 2]).toContain(r.labels[0]);
  });

  it('a new face never joins a person that already has a face of its photo', () => {
    const { vectors: one } = faces(1, 5, 6, 0.9, 0.02);
    const r = assignNewFaces({
      dim: DIM,
      existing: { vectors: one.subarray(0, 4 * DIM), labels: Int32Array.from([3, 3, 3, 3]), photoOf: Int32Array.from([0, 1, 2, 3]) },
      added: { vectors: one.subarray(4 * DIM), photoOf: Int32Array.from([2]) },
    });
    expect(r.labels[0]).toBe(-1);
  });

  it('a caller-supplied neighbour search over the existing faces gives the same result', () => {
    const ex = pick(oldRows);
    const labels = clusterFaces({ vectors: ex, dim: DIM, photoOf: Int32Array.from(oldRows) }).labels;
    const added = pick(newRows);
    const brute = (q: Float32Array, k: number) => {
      const s = Array.from({ length: oldRows.length }, (_, i) => {
        let d = 0;
        for (let x = 0; x < DIM; x++) d += q[x]! * ex[i * DIM + x]!;
        return [d, i] as const;
      }).sort((a, b) => b[0] - a[0]).slice(0, k);
      return { ids: s.map((x) => x[1]), sims: s.map((x) => x[0]) };
    };
    const input = { dim: DIM, existing: { vectors: ex, labels, photoOf: Int32Array.from(oldRows) }, added: { vectors: added, photoOf: Int32Array.from(newRows) } };
    expect(Array.from(assignNewFaces({ ...input, searchExisting: brute }).labels)).toEqual(Array.from(assignNewFaces(input).labels));
  });
});

describe('the k-NN graph', () => {
  const { vectors, person } = faces(40, 6, 17, 0.8, 0.1);
  const n = person.length;
  /** Exact k nearest other faces of each face, by brute force. */
  const exact = (k: number): number[][] => Array.from({ length: n }, (_, i) => {
    const s = Array.from({ length: n }, (_, j) => [j === i ? -Infinity : dot(vectors, i, j), j] as const);
    return s.sort((a, b) => b[0] - a[0]).slice(0, k).map((x) => x[1]);
  });

  it('HNSW lists equal the brute-force k nearest (small set, wide search), on one thread and on three workers (both strategies)', async () => {
    const want = exact(8).map((l) => [...l].sort((a, b) => a - b));
    const one = knnGraph(vectors, DIM, 8, { ef: 300 });
    const shards = await knnGraphParallel(vectors, DIM, 8, { ef: 300, workers: 3, strategy: 'shards' });
    const shared = await knnGraphParallel(vectors, DIM, 8, { ef: 300, workers: 3, strategy: 'shared' });
    for (const g of [one, shards, shared]) {
      const got = Array.from({ length: n }, (_, i) => Array.from(g.neighbors.subarray(i * 8, (i + 1) * 8)).sort((a, b) => a - b));
      expect(got).toEqual(want);
      // Best first, with the cosine of each listed neighbour.
      for (let i = 0; i < n; i += 17) {
        for (let t = 0; t < 8; t++) expect(g.sims[i * 8 + t]).toBeCloseTo(dot(vectors, i, g.neighbors[i * 8 + t]!), 5);
        for (let t = 1; t < 8; t++) expect(g.sims[i * 8 + t]!).toBeLessThanOrEqual(g.sims[i * 8 + t - 1]! + 1e-6);
      }
    }
  });

  it("clusterFaces on the caller's neighbour search (no index built) gives the same people", () => {
    const photoOf = photosFor(n, 4);
    const brute = (q: Float32Array, k: number) => {
      const s = Array.from({ length: n }, (_, j) => {
        let d = 0;
        for (let x = 0; x < DIM; x++) d += q[x]! * vectors[j * DIM + x]!;
        return [d, j] as const;
      }).sort((a, b) => b[0] - a[0]).slice(0, k);
      return { ids: s.map((x) => x[1]), sims: s.map((x) => x[0]) };
    };
    const a = clusterFaces({ vectors, dim: DIM, photoOf }, { knn: { ef: 300 } });
    const b = clusterFaces({ vectors, dim: DIM, photoOf }, { search: brute });
    expect(Array.from(b.labels)).toEqual(Array.from(a.labels));
    expect(() => clusterFaces({ vectors, dim: DIM, photoOf }, { search: () => ({ ids: [n + 5], sims: [0.9] }) })).toThrow(/returned id/);
  });

  it('clusterFacesParallel gives the same people as clusterFaces', async () => {
    const photoOf = photosFor(n, 9);
    const a = clusterFaces({ vectors, dim: DIM, photoOf }, { knn: { ef: 300 } });
    const b = await clusterFacesParallel({ vectors, dim: DIM, photoOf }, { knn: { ef: 300 }, workers: 2 });
    expect(Array.from(b.labels)).toEqual(Array.from(a.labels));
    expect(new Set(a.labels).size).toBeGreaterThan(30);
  });
});
