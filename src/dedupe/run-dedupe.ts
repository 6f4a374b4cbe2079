// De-duplicating a photo library (cosface dedupe, POST /v1/dedupe): walk the folders, embed every
// face of every photo not yet in the library (committed in batches, so a killed run resumes where
// it stopped), cluster the faces into people (existing people kept; new faces join them), and find
// near-duplicate photos. Knows files, the library store, the clustering and the near-duplicate
// search; the face pipeline comes in as a function, so the CLI and the server share this.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { assignNewFaces, clusterFaces, DEFAULT_CLUSTER_FAR, DEFAULT_CLUSTER_K, DEFAULT_CLUSTER_THRESHOLD, edgesAbove, knnGraph } from '../cluster/index.js';
import { CosfaceError, isCosfaceError } from '../errors.js';
import { walkPhotos, type SkippedFile, type WalkedPhoto, type WalkResult } from '../files/walk.js';
import type { LibraryFace, LibraryPhoto, NewLibraryFace, NewLibraryPhoto, PhotoLibrary } from '../library/library-store.js';
import { nearDuplicateGroups, type NearDupOptions } from '../near-dup/near-duplicates.js';
import { hashesToText, photoSignature, textToHashes } from '../near-dup/perceptual-hash.js';
import { toUnitVector } from '../store/embedding.js';

/** A face as the pipeline gives it (the fields the library keeps). */
export interface DetectedFace {
  box: [number, number, number, number];
  landmarks?: [number, number][];
  score: number;
  quality: number;
  embedding: readonly number[] | Float32Array;
}

export type DedupePhase = 'walk' | 'embed' | 'cluster' | 'near-duplicates';

export interface DedupeProgress {
  phase: DedupePhase;
  done: number;
  total: number;
}

export interface DedupeOptions {
  roots: readonly string[];
  /** The walk of the roots when the caller did it already (to fail before opening anything). */
  walked?: WalkResult;
  library: PhotoLibrary;
  /** Every face of a photo (the face pipeline); BAD_IMAGE / IMAGE_TOO_LARGE make the photo a skip. */
  facesOf: (bytes: Uint8Array) => Promise<DetectedFace[]>;
  /** Cosine edge threshold for the clustering (default: the clustering's own). */
  threshold?: number;
  /** Photos embedded and committed together (default 16). */
  batchSize?: number;
  nearDup?: NearDupOptions;
  onProgress?: (p: DedupeProgress) => void;
  /** Called after each committed batch (tests and jobs use it). */
  onCommit?: (embeddedSoFar: number) => void;
  /** Stops between batches (what is committed stays: a later run resumes). */
  signal?: AbortSignal;
}

export interface DedupeFace {
  photo: string;
  box: [number, number, number, number];
  quality: number;
}

export interface DedupePerson {
  id: string;
  /** The name a user gave (cosface people name); named people are never merged automatically. */
  name: string | null;
  faces: DedupeFace[];
}

export interface DedupePhotoInfo {
  photo: string;
  width: number;
  height: number;
  bytes: number;
  format: string;
}

export interface DedupeResult {
  photos: number;
  faces: number;
  people: DedupePerson[];
  unclustered: DedupeFace[];
  nearDuplicates: string[][];
  skipped: { photo: string; reason: string; detail?: string }[];
  /**
   * What this run did to the library: photos embedded now, photos whose content the library held
   * before the run (`reused`), files with the same content as one met earlier in this run (`copies`),
   * library photos found at a new path (`moved`).
   */
  library: { name: string; embedded: number; reused: number; copies: number; moved: number; photos: number; faces: number };
  /** The cosine edge threshold the clustering used. */
  threshold: number;
  /**
   * Pairs of people with a pair of faces at or above the threshold that the clustering kept apart
   * (a named person, two faces of one photo, or a weak link on average): perhaps one person twice.
   */
  duplicatePeople: { a: string; b: string; score: number }[];
  /** The photos of the near-duplicate groups, with their sizes (the report shows them side by side). */
  nearDuplicateDetails: DedupePhotoInfo[][];
}

interface RunPhoto {
  walked: WalkedPhoto;
  contentHash: string;
}

const DEFAULT_BATCH = 16;

/** Runs a de-duplication (see the header). Fails only when a root is missing or there is no photo at all. */
export async function runDedupe(o: DedupeOptions): Promise<DedupeResult> {
  const progress = o.onProgress ?? (() => undefined);
  progress({ phase: 'walk', done: 0, total: 0 });
  const walk = o.walked ?? (await walkDedupeRoots(o.roots));
  const skipped: DedupeResult['skipped'] = walk.skipped.map(skipJson);

  // ---- embed what the library does not have ----
  const known = o.library.photosByHash();
  const run: RunPhoto[] = [];
  const seenInRun = new Set<string>();
  const moves: { photoId: number; path: string }[] = [];
  let embedded = 0;
  let reused = 0;
  let copies = 0;
  const batchSize = o.batchSize ?? DEFAULT_BATCH;
  const total = walk.photos.length;
  let done = 0;
  progress({ phase: 'embed', done, total });
  for (let b = 0; b < walk.photos.length; b += batchSize) {
    if (o.signal?.aborted) throw new CosfaceError('INTERRUPTED', `stopped after ${embedded} photos embedded (they are kept: run again to resume)`);
    const batch = walk.photos.slice(b, b + batchSize);
    const read = await Promise.all(batch.map((p) => readFile(p.path).then((x) => new Uint8Array(x.buffer, x.byteOffset, x.byteLength), (e: NodeJS.ErrnoException) => e)));
    const pending: NewLibraryPhoto[] = [];
    const pendingHashes = new Set<string>();
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const bytes = read[i]!;
      if (bytes instanceof Error) {
        skipped.push({ photo: p.path, reason: 'unreadable', detail: bytes.code ?? bytes.message });
        progress({ phase: 'embed', done: ++done, total });
        continue;
      }
      const contentHash = createHash('sha256').update(bytes).digest('hex');
      const have = known.get(contentHash);
      if (have || pendingHashes.has(contentHash)) {
        if (seenInRun.has(contentHash)) copies++; // the content of a file met earlier in this run
        else if (have) {
          reused++;
          if (have.path !== p.path) moves.push({ photoId: have.id, path: p.path });
        }
        seenInRun.add(contentHash);
        run.push({ walked: p, contentHash });
        progress({ phase: 'embed', done: ++done, total });
        continue;
      }
      try {
        const sig = await photoSignature(bytes);
        const faces = await o.facesOf(bytes);
        pending.push({
          contentHash,
          path: p.path,
          format: p.format,
          bytes: bytes.byteLength,
          width: sig.width,
          height: sig.height,
          perceptualHashes: hashesToText(sig),
          faces: faces.map(libraryFace),
        });
        pendingHashes.add(contentHash);
        seenInRun.add(contentHash);
        run.push({ walked: p, contentHash });
      } catch (e) {
        if (!isCosfaceError(e, 'BAD_IMAGE') && !isCosfaceError(e, 'IMAGE_TOO_LARGE')) throw e;
        skipped.push({ photo: p.path, reason: e.code === 'IMAGE_TOO_LARGE' ? 'image too large' : 'not a decodable image', detail: e.message.replace(/^image: /, '') });
      }
      progress({ phase: 'embed', done: ++done, total });
    }
    if (pending.length) {
      for (const added of o.library.addPhotos(pending)) known.set(added.contentHash, added);
      embedded += pending.length;
      o.onCommit?.(embedded);
    }
  }
  o.library.updatePaths(moves);

  // ---- the run's photos: one entry per content, shown under its first path ----
  const pathsOf = new Map<string, string[]>(); // content hash -> paths in walk order
  for (const r of run) {
    let l = pathsOf.get(r.contentHash);
    if (!l) pathsOf.set(r.contentHash, (l = []));
    l.push(r.walked.path);
  }
  const runPhotos: LibraryPhoto[] = [...pathsOf.keys()].map((h) => known.get(h)!);
  const shownPath = new Map<number, string>(runPhotos.map((p) => [p.id, pathsOf.get(p.contentHash)![0]!]));

  // ---- people ----
  progress({ phase: 'cluster', done: 0, total: 1 });
  const { faces: allFaces, threshold } = clusterLibrary(o.library, o.threshold);
  progress({ phase: 'cluster', done: 1, total: 1 });

  const people = new Map<number, DedupeFace[]>();
  const unclustered: DedupeFace[] = [];
  let faceCount = 0;
  for (const f of allFaces) {
    const path = shownPath.get(f.photoId);
    if (path === undefined) continue; // a photo of the library not under these folders
    faceCount++;
    const face: DedupeFace = { photo: path, box: f.box, quality: f.quality };
    if (f.personId === null) unclustered.push(face);
    else {
      let l = people.get(f.personId);
      if (!l) people.set(f.personId, (l = []));
      l.push(face);
    }
  }
  const byPath = (a: DedupeFace, b: DedupeFace) => (a.photo < b.photo ? -1 : a.photo > b.photo ? 1 : a.box[0] - b.box[0]);
  const names = o.library.peopleNames();
  const peopleOut: DedupePerson[] = [...people.entries()]
    .map(([id, faces]) => ({ id: personRef(id), name: names.get(id) ?? null, faces: faces.sort(byPath), key: id }))
    .sort((a, b) => b.faces.length - a.faces.length || a.key - b.key)
    .map(({ id, name, faces }) => ({ id, name, faces }));
  unclustered.sort(byPath);
  const duplicatePeople = peoplePairs(allFaces.filter((f) => shownPath.has(f.photoId)), o.library.info.dimension, threshold);

  // ---- near duplicates ----
  progress({ phase: 'near-duplicates', done: 0, total: 1 });
  const facesByPhoto = new Map<number, Float32Array[]>();
  for (const f of allFaces) {
    if (!shownPath.has(f.photoId)) continue;
    let l = facesByPhoto.get(f.photoId);
    if (!l) facesByPhoto.set(f.photoId, (l = []));
    l.push(f.embedding);
  }
  const nd = nearDuplicateGroups(
    runPhotos.map((p) => ({ contentHash: p.contentHash, ...textToHashes(p.perceptualHashes), faces: facesByPhoto.get(p.id) ?? [] })),
    o.nearDup,
  );
  const inGroup = new Set<number>();
  const groups: LibraryPhoto[][] = nd.groups.map((g) => g.map((i) => runPhotos[i]!));
  for (const g of nd.groups) for (const i of g) inGroup.add(i);
  // The same content under several paths is a group by itself too.
  runPhotos.forEach((p, i) => {
    if (!inGroup.has(i) && pathsOf.get(p.contentHash)!.length > 1) groups.push([p]);
  });
  const details: DedupePhotoInfo[][] = groups
    .map((g) => g.flatMap((p) => pathsOf.get(p.contentHash)!.map((path) => ({ photo: path, width: p.width, height: p.height, bytes: p.bytes, format: p.format }))))
    .map((g) => g.sort((a, b) => b.width * b.height - a.width * a.height || (a.photo < b.photo ? -1 : 1)))
    .sort((a, b) => b.length - a.length || (a[0]!.photo < b[0]!.photo ? -1 : 1));
  progress({ phase: 'near-duplicates', done: 1, total: 1 });

  const counts = o.library.counts();
  return {
    photos: run.length,
    faces: faceCount,
    people: peopleOut,
    unclustered,
    nearDuplicates: details.map((g) => g.map((p) => p.photo)),
    skipped,
    library: { name: o.library.info.name, embedded, reused, copies, moved: moves.length, photos: counts.photos, faces: counts.faces },
    threshold,
    duplicatePeople,
    nearDuplicateDetails: details,
  };
}

/** A face computed elsewhere (a browser, an edge device): its photo's name, box and embedding. */
export interface UploadedFace {
  photo: string;
  box?: [number, number, number, number];
  embedding: readonly number[];
}

/**
 * People among faces whose embeddings were computed elsewhere (POST /v1/dedupe with `faces`):
 * the same clustering and cannot-link rule (faces with the same `photo` are never one person),
 * nothing stored, no near-duplicate search (no pixels). Embeddings are L2-normalised here;
 * a wrong length is DIMENSION_MISMATCH, a zero or non-finite one BAD_INPUT.
 */
export function clusterUploadedFaces(faces: readonly UploadedFace[], dim: number, threshold?: number): DedupeResult {
  const photoIds = new Map<string, number>();
  const vectors = new Float32Array(faces.length * dim);
  const photoOf = new Int32Array(faces.length);
  faces.forEach((f, i) => {
    vectors.set(toUnitVector(f.embedding, dim, `faces[${i}].embedding`), i * dim);
    let p = photoIds.get(f.photo);
    if (p === undefined) photoIds.set(f.photo, (p = photoIds.size));
    photoOf[i] = p;
  });
  const labels = faces.length ? clusterFaces({ vectors, dim, photoOf }, threshold === undefined ? {} : { threshold }).labels : new Int32Array(0);
  const people = new Map<number, DedupeFace[]>();
  const unclustered: DedupeFace[] = [];
  const listed: LibraryFace[] = [];
  faces.forEach((f, i) => {
    const face: DedupeFace = { photo: f.photo, box: f.box ?? [0, 0, 0, 0], quality: 1 };
    const l = labels[i]!;
    if (l < 0) unclustered.push(face);
    else {
      let list = people.get(l);
      if (!list) people.set(l, (list = []));
      list.push(face);
    }
    listed.push({ id: i, photoId: photoOf[i]!, box: face.box, score: 1, quality: 1, embedding: vectors.subarray(i * dim, (i + 1) * dim), personId: l < 0 ? null : l + 1, clustered: true });
  });
  const used = threshold ?? DEFAULT_CLUSTER_THRESHOLD;
  return {
    photos: photoIds.size,
    faces: faces.length,
    people: [...people.entries()].sort((a, b) => b[1].length - a[1].length || a[0] - b[0]).map(([l, f]) => ({ id: personRef(l + 1), name: null, faces: f })),
    unclustered,
    nearDuplicates: [],
    skipped: [],
    library: { name: '', embedded: 0, reused: 0, copies: 0, moved: 0, photos: 0, faces: 0 },
    threshold: used,
    duplicatePeople: peoplePairs(listed, dim, used),
    nearDuplicateDetails: [],
  };
}

/** Pairs of different people joined by a k-NN edge at or above the threshold, best first. */
function peoplePairs(faces: readonly LibraryFace[], dim: number, threshold: number): DedupeResult['duplicatePeople'] {
  if (faces.length < 2) return [];
  const v = new Float32Array(faces.length * dim);
  faces.forEach((f, i) => v.set(f.embedding, i * dim));
  const e = edgesAbove(knnGraph(v, dim, Math.min(DEFAULT_CLUSTER_K, faces.length - 1)), threshold);
  const best = new Map<string, { a: string; b: string; score: number }>();
  for (let i = 0; i < e.w.length; i++) {
    const pa = faces[e.a[i]!]!.personId;
    const pb = faces[e.b[i]!]!.personId;
    if (pa === null || pb === null || pa === pb) continue;
    const [x, y] = pa < pb ? [pa, pb] : [pb, pa];
    const key = `${x}:${y}`;
    const w = e.w[i]!;
    const had = best.get(key);
    if (!had || w > had.score) best.set(key, { a: personRef(x), b: personRef(y), score: Math.round(w * 1e4) / 1e4 });
  }
  return [...best.values()].sort((p, q) => q.score - p.score);
}

/**
 * The clustering's edge threshold: --threshold as given; --far's calibrated threshold (NOT_CALIBRATED
 * without one); else the threshold calibrated at DEFAULT_CLUSTER_FAR when there is one, else
 * undefined (the clustering's DEFAULT_CLUSTER_THRESHOLD, measured at that FAR on LFW).
 */
export async function clusterThreshold(calibrated: readonly { far: number; threshold: number }[], chosen: { far?: number; threshold?: number }, modelId: string): Promise<number | undefined> {
  if (chosen.threshold !== undefined) return chosen.threshold;
  const at = (far: number) => calibrated.find((r) => Math.abs(r.far - far) <= 1e-9 * far);
  if (chosen.far !== undefined) {
    const hit = at(chosen.far);
    if (!hit) throw new CosfaceError('NOT_CALIBRATED', `no threshold calibrated at FAR ${chosen.far} for model "${modelId}" (calibrated: ${calibrated.map((r) => r.far).join(', ') || 'none'}); run cosface calibrate, or pass --threshold`);
    return hit.threshold;
  }
  return at(DEFAULT_CLUSTER_FAR)?.threshold;
}

/** The photos under the roots; BAD_INPUT when a root is missing or there is no photo at all. */
export async function walkDedupeRoots(roots: readonly string[]): Promise<WalkResult> {
  if (roots.length === 0) throw new CosfaceError('BAD_INPUT', 'give at least one folder');
  const walk = await walkPhotos(roots);
  if (walk.photos.length === 0) {
    throw new CosfaceError(
      'BAD_INPUT',
      `no photos (JPEG, PNG or WebP) under ${roots.join(', ')}${walk.skipped.length ? `; ${walk.skipped.length} file${walk.skipped.length === 1 ? '' : 's'} left out (${walk.skipped.slice(0, 3).map((s) => `${s.photo}: ${s.reason}`).join(', ')}${walk.skipped.length > 3 ? ', ...' : ''})` : ''}`,
    );
  }
  return walk;
}

/** A person's id in outputs ("person-12"), and back. */
export const personRef = (id: number) => `person-${id}`;
export function personId(ref: string): number | null {
  const m = /^person-([1-9]\d{0,15})$/.exec(ref);
  return m ? Number(m[1]) : null;
}

function skipJson(s: SkippedFile): DedupeResult['skipped'][number] {
  return s.detail ? { photo: s.photo, reason: s.reason, detail: s.detail } : { photo: s.photo, reason: s.reason };
}

function libraryFace(f: DetectedFace): NewLibraryFace {
  return { box: f.box, keypoints: f.landmarks, score: f.score, quality: f.quality, embedding: f.embedding };
}

/**
 * Clusters the faces of the library and stores the people: the first time all faces at once; later,
 * faces not clustered yet join the existing people (assignNewFaces: existing people are never
 * merged or split, named people never merged). Returns every face with its person afterwards.
 */
export function clusterLibrary(library: PhotoLibrary, threshold?: number): { faces: LibraryFace[]; threshold: number } {
  const faces = library.allFaces();
  const dim = library.info.dimension;
  const opts = threshold === undefined ? {} : { threshold };
  const existing = faces.filter((f) => f.clustered);
  const added = faces.filter((f) => !f.clustered);
  if (added.length === 0) return { faces, threshold: threshold ?? DEFAULT_CLUSTER_THRESHOLD };
  const named = library.namedPeople();
  const pack = (list: LibraryFace[]) => {
    const v = new Float32Array(list.length * dim);
    list.forEach((f, i) => v.set(f.embedding, i * dim));
    return { vectors: v, photoOf: Int32Array.from(list, (f) => f.photoId) };
  };
  let labelsExisting: Int32Array;
  let labelsAdded: Int32Array;
  if (existing.length === 0) {
    labelsExisting = new Int32Array(0);
    labelsAdded = clusterFaces({ ...pack(added), dim, named }, opts).labels;
  } else {
    const r = assignNewFaces({ dim, existing: { ...pack(existing), labels: Int32Array.from(existing, (f) => f.personId ?? -1) }, added: pack(added), named }, opts);
    labelsExisting = r.existing;
    labelsAdded = r.labels;
  }
  // Labels that are not people of the library yet become new people, largest first.
  const knownPeople = new Set(existing.map((f) => f.personId).filter((p): p is number => p !== null));
  const size = new Map<number, number>();
  for (const l of [...labelsExisting, ...labelsAdded]) if (l >= 0 && !knownPeople.has(l)) size.set(l, (size.get(l) ?? 0) + 1);
  const fresh = [...size.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([l]) => l);
  const slot = new Map(fresh.map((l, k) => [l, -(k + 1)]));
  const assign: { faceId: number; person: number | null }[] = [];
  const want = (l: number) => (l < 0 ? null : knownPeople.has(l) ? l : slot.get(l)!);
  existing.forEach((f, i) => {
    const p = want(labelsExisting[i]!);
    if (p !== f.personId) assign.push({ faceId: f.id, person: p });
  });
  added.forEach((f, i) => assign.push({ faceId: f.id, person: want(labelsAdded[i]!) }));
  const ids = library.savePeople(assign, fresh.length);
  const finalPerson = new Map<number, number | null>();
  for (const a of assign) finalPerson.set(a.faceId, a.person === null ? null : a.person < 0 ? ids[-a.person - 1]! : a.person);
  for (const f of faces) {
    if (finalPerson.has(f.id)) f.personId = finalPerson.get(f.id)!;
    f.clustered = true;
  }
  return { faces, threshold: threshold ?? DEFAULT_CLUSTER_THRESHOLD };
}

/** The JSON of a run (the contract of `cosface dedupe --json`, plus the library counts). */
export function dedupeJson(r: DedupeResult): Record<string, unknown> {
  const face = (f: DedupeFace) => ({ photo: f.photo, box: f.box });
  return {
    photos: r.photos,
    faces: r.faces,
    people: r.people.map((p) => ({ id: p.id, ...(p.name !== null ? { name: p.name } : {}), faces: p.faces.map(face) })),
    unclustered: r.unclustered.map(face),
    nearDuplicates: r.nearDuplicates,
    skipped: r.skipped,
    library: r.library,
    threshold: r.threshold,
    duplicatePeople: r.duplicatePeople,
  };
}
