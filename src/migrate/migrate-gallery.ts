// Migrating a gallery to another face model without downtime (`cosface gallery migrate`): every
// live face is re-embedded from its source photo with the new model into the store's staging area
// while the gallery goes on answering identify/verify with its current vectors; then one
// transaction switches the gallery's model, dimension and vectors (Store.switchMigration). Faces
// whose photo cannot be found or whose face is not found again in it are reported; the switch is
// refused while any is left, unless the caller drops them (dropMissing). Photos are found under
// `photosDir` by the path recorded at enrollment (or any tail of it), confirmed by the recorded
// sha256, and by that sha256 alone when a photo was moved or renamed. A photo with several faces
// gives each stored face the detected face whose box overlaps its recorded box best (IoU).
// Adding faces to the gallery fails with MIGRATING while the migration holds it; a killed
// migration leaves the gallery on its old model, and a rerun resumes from the staged vectors.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { CosfaceError, isCosfaceError } from '../errors.js';
import { walkPhotos } from '../files/walk.js';
import type { FaceToStage, MigrationClaim, Store } from '../store/store.js';
import type { FaceBox } from '../db/schema.js';
import type { ScoredPair } from '../store/thresholds.js';

/** A face found in a photo by the new model's pipeline: box [x, y, w, h] in photo pixels. */
export interface PhotoFace {
  box: readonly [number, number, number, number];
  embedding: Float32Array | readonly number[];
}

export interface MigrateGalleryOptions {
  store: Store;
  gallery: string;
  /** The new model: its id (galleries and calibrations name it), version and output dimension. */
  model: { id: string; version?: string; dimension: number };
  /** Faces of a photo with the new model's embeddings (the face pipeline). */
  facesInPhoto: (bytes: Uint8Array, path: string) => Promise<PhotoFace[]>;
  /** Folder the source photos are found under. */
  photosDir: string;
  /** Soft-delete the faces that could not be re-embedded and switch anyway (default: refuse). */
  dropMissing?: boolean;
  /** Calibrate the new model's thresholds from the gallery when it has none (default true). */
  recalibrate?: boolean;
  /** Names this worker in the claim (default host:pid:random). */
  owner?: string;
  /** Least IoU between a recorded box and a detected one to call them the same face (default 0.5). */
  minIoU?: number;
  /** Called after each photo: faces done (staged or reported) of the total. */
  onProgress?: (done: number, total: number) => void;
  /** Renews the claim this often while embedding (default 5000 ms; the lease is 30 s). */
  renewEveryMs?: number;
}

export type MissingReason = 'no photo recorded' | 'photo not found' | 'photo unreadable' | 'no face detected' | 'no matching face';

export interface MissingFace {
  faceId: number;
  identity: string;
  photoPath: string | null;
  photoHash: string | null;
  reason: MissingReason;
  detail?: string;
}

export interface MigrationReport {
  gallery: string;
  from: { modelId: string; dimension: number };
  to: { modelId: string; dimension: number };
  /** Live faces when the migration began. */
  faces: number;
  /** Staged by an earlier, interrupted run of the same migration (resumed, not embedded again). */
  resumed: number;
  /** Re-embedded by this run. */
  reembedded: number;
  /** Photos read and run through the new model. */
  photos: number;
  /** Faces whose photo was found by its content hash at another path than the recorded one. */
  movedPhotos: { faceId: number; recorded: string | null; found: string }[];
  /** Faces not re-embedded, with why; never dropped unless dropMissing. */
  missing: MissingFace[];
  switched: boolean;
  /** Faces deleted by the switch (dropMissing). */
  dropped: number[];
  /** Live faces after the switch (all of them with the new model's vectors). */
  facesAfter: number | null;
  /** Thresholds for the new model: already stored, calibrated now from the gallery, or none (identify then gives scores only, or needs --threshold). */
  calibration: { status: 'stored' | 'recalibrated' | 'uncalibrated' | 'unchanged'; fars: number[]; genuinePairs?: number; impostorPairs?: number; note?: string };
}

/** A claim owner name: this host and process, so a rerun on the host can tell a dead owner (ownerGone). */
export function migrationOwner(): string {
  return `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
}

/** Whether a claim's owner was a process of this host that no longer runs (a killed migration). */
export function ownerGone(holder: MigrationClaim): boolean {
  const [host, pidText] = holder.owner.split(':');
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export function boxIoU(a: FaceBox, b: readonly [number, number, number, number]): number {
  const [bx, by, bw, bh] = b;
  const x0 = Math.max(a.x, bx);
  const y0 = Math.max(a.y, by);
  const x1 = Math.min(a.x + a.width, bx + bw);
  const y1 = Math.min(a.y + a.height, by + bh);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  const union = a.width * a.height + bw * bh - inter;
  return union > 0 ? inter / union : 0;
}

/** Paths a recorded photo path may be at under `dir`: the whole path, then each shorter tail of it. */
export function photoPathCandidates(dir: string, recorded: string): string[] {
  const parts = recorded.split(/[\\/]+/).filter((p) => p.length > 0 && p !== '.' && p !== '..');
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) out.push(join(dir, ...parts.slice(i)));
  return out;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export async function migrateGallery(o: MigrateGalleryOptions): Promise<MigrationReport> {
  const { store, gallery } = o;
  const photosDir = resolve(o.photosDir);
  const st = await stat(photosDir).catch(() => null);
  if (!st || !st.isDirectory()) throw new CosfaceError('BAD_INPUT', `gallery migrate: --photos ${o.photosDir} is not a folder`);
  const before = await store.getGallery(gallery);
  const owner = o.owner ?? migrationOwner();
  const begun = await store.beginMigration(gallery, { modelId: o.model.id, modelVersion: o.model.version ?? '1', dimension: o.model.dimension }, { owner, ownerGone });
  const report: MigrationReport = {
    gallery,
    from: { modelId: before.modelId, dimension: before.dimension },
    to: { modelId: o.model.id, dimension: o.model.dimension },
    faces: before.faces,
    resumed: begun.staged,
    reembedded: 0,
    photos: 0,
    movedPhotos: [],
    missing: [],
    switched: false,
    dropped: [],
    facesAfter: null,
    calibration: { status: 'unchanged', fars: [] },
  };
  // The claim is renewed by each staged photo and by this timer (embedding one photo may take a while).
  let renewError: unknown = null;
  const timer = setInterval(() => {
    store.renewMigration(gallery, owner).catch((e: unknown) => (renewError = e));
  }, o.renewEveryMs ?? 5000);
  timer.unref?.();
  try {
    const minIoU = o.minIoU ?? 0.5;
    let done = begun.staged;
    const total = () => Math.max(report.faces, done);
    o.onProgress?.(done, total());
    let byHash: Map<string, string> | null = null;
    const hashIndex = async () => {
      if (!byHash) {
        byHash = new Map();
        const walked = await walkPhotos([photosDir], { recursive: true });
        for (const p of walked.photos) {
          const b = await readFile(p.path).catch(() => null);
          if (b) byHash.set(sha256(b), p.path);
        }
      }
      return byHash;
    };
    const reported = new Set<number>();
    const miss = (f: FaceToStage, reason: MissingReason, detail?: string) => {
      reported.add(f.id);
      report.missing.push({ faceId: f.id, identity: f.externalId, photoPath: f.photoPath, photoHash: f.photoHash, reason, ...(detail ? { detail } : {}) });
    };
    // Rounds: a face added while the claim had lapsed (a slow step) is picked up by the next round.
    for (let round = 0; round < 3; round++) {
      let afterId = 0;
      for (;;) {
        if (renewError) throw renewError;
        const raw = await store.facesToMigrate(gallery, afterId, 64);
        if (raw.length === 0) break;
        afterId = raw[raw.length - 1]!.id;
        const page = raw.filter((f) => !reported.has(f.id));
        // One read and one pipeline run per photo, for all its faces.
        const groups = new Map<string, FaceToStage[]>();
        for (const f of page) {
          const key = f.photoHash ?? `path:${f.photoPath ?? `face:${f.id}`}`;
          groups.set(key, [...(groups.get(key) ?? []), f]);
        }
        for (const group of groups.values()) {
          const f0 = group[0]!;
          if (!f0.photoHash && !f0.photoPath) {
            for (const f of group) miss(f, 'no photo recorded', 'the face was enrolled as an embedding, without its photo');
            done += group.length;
            o.onProgress?.(done, total());
            continue;
          }
          const found = await findPhoto(photosDir, f0, hashIndex);
          if ('reason' in found) {
            for (const f of group) miss(f, found.reason, found.detail);
            done += group.length;
            o.onProgress?.(done, total());
            continue;
          }
          if (found.moved) for (const f of group) report.movedPhotos.push({ faceId: f.id, recorded: f.photoPath, found: found.path });
          let faces: PhotoFace[];
          try {
            faces = await o.facesInPhoto(found.bytes, found.path);
          } catch (e) {
            if (!isCosfaceError(e, 'BAD_IMAGE') && !isCosfaceError(e, 'IMAGE_TOO_LARGE')) throw e;
            for (const f of group) miss(f, 'photo unreadable', e.message);
            done += group.length;
            o.onProgress?.(done, total());
            continue;
          }
          report.photos++;
          const rows: { faceId: number; embedding: Float32Array | readonly number[] }[] = [];
          for (const f of group) {
            if (faces.length === 0) {
              miss(f, 'no face detected', found.path);
              continue;
            }
            let best = -1;
            let bestIoU = -1;
            if (f.box) {
              faces.forEach((d, i) => {
                const iou = boxIoU(f.box!, d.box);
                if (iou > bestIoU) [best, bestIoU] = [i, iou];
              });
              if (bestIoU < minIoU) {
                miss(f, 'no matching face', `best box overlap (IoU) ${bestIoU.toFixed(2)} < ${minIoU} among ${faces.length} faces in ${found.path}`);
                continue;
              }
            } else {
              // No box recorded: the largest face (what enroll takes from a single-person photo).
              best = faces.reduce((bi, d, i) => (d.box[2] * d.box[3] > faces[bi]!.box[2] * faces[bi]!.box[3] ? i : bi), 0);
            }
            rows.push({ faceId: f.id, embedding: faces[best]!.embedding });
          }
          if (rows.length > 0) {
            await store.stageMigratedFaces(gallery, owner, rows);
            report.reembedded += rows.length;
          }
          done += group.length;
          o.onProgress?.(done, total());
        }
      }
      if (report.missing.length > 0 && !o.dropMissing) break;
      try {
        const sw = await store.switchMigration(gallery, owner, { drop: o.dropMissing ? report.missing.map((m) => m.faceId) : [] });
        report.switched = true;
        report.dropped = sw.dropped;
        report.facesAfter = sw.faces;
        break;
      } catch (e) {
        if (!isCosfaceError(e, 'MIGRATION_INCOMPLETE') || round === 2) throw e;
        // Faces arrived after the pass (the claim had lapsed): another round embeds them.
      }
    }
    if (!report.switched) {
      // Nothing switched: the gallery stays on its model and takes faces again; the staged vectors
      // stay, so a rerun (after the photos are back) embeds only what is left.
      await store.abortMigration(gallery, owner);
      return report;
    }
    report.calibration = await calibrationAfter(store, gallery, o.model.id, o.recalibrate ?? true);
    return report;
  } catch (e) {
    await store.abortMigration(gallery, owner).catch(() => undefined);
    throw e;
  } finally {
    clearInterval(timer);
  }
}

async function findPhoto(
  dir: string,
  f: FaceToStage,
  hashIndex: () => Promise<Map<string, string>>,
): Promise<{ path: string; bytes: Uint8Array; moved: boolean } | { reason: MissingReason; detail?: string }> {
  let unreadable: string | null = null;
  for (const p of f.photoPath ? photoPathCandidates(dir, f.photoPath) : []) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') unreadable = `${p}: ${code ?? (e as Error).message}`;
      continue;
    }
    // A file at the recorded path with other content is another photo (replaced): not this one.
    if (!f.photoHash || sha256(bytes) === f.photoHash) return { path: p, bytes, moved: false };
  }
  if (f.photoHash) {
    const at = (await hashIndex()).get(f.photoHash);
    if (at) {
      const bytes = await readFile(at).catch(() => null);
      if (bytes) return { path: at, bytes, moved: true };
    }
  }
  if (unreadable) return { reason: 'photo unreadable', detail: unreadable };
  return { reason: 'photo not found', detail: `neither ${f.photoPath ?? '(no path recorded)'} under ${dir} nor a file with its sha256` };
}

/**
 * Thresholds are calibrated per model. After a switch the gallery decides with the new model's
 * stored thresholds when there are any; otherwise (recalibrate) they are calibrated from the
 * gallery itself: every pair of its live faces, same identity = genuine. A gallery too small for
 * any FAR leaves the model uncalibrated: identify then gives scores only, or takes --threshold.
 */
async function calibrationAfter(store: Store, gallery: string, modelId: string, recalibrate: boolean): Promise<MigrationReport['calibration']> {
  const have = await store.thresholds(modelId);
  if (have.length > 0) return { status: 'stored', fars: have.map((t) => t.far), note: `the thresholds stored for ${modelId} apply` };
  if (!recalibrate) return { status: 'uncalibrated', fars: [], note: `no thresholds for ${modelId}: identify gives scores only until cosface calibrate --model runs, or with --threshold` };
  const faces: { identity: string; v: Float32Array }[] = [];
  const CAP = 2000; // about 2 million pairs
  for (let offset = 0; faces.length < CAP; offset += 500) {
    const page = await store.listIdentities(gallery, { limit: 500, offset });
    for (const ident of page) {
      if (faces.length >= CAP) break;
      for (const f of await store.identityEmbeddings(gallery, ident.externalId)) faces.push({ identity: ident.externalId, v: f.embedding });
    }
    if (page.length < 500) break;
  }
  const pairs: ScoredPair[] = [];
  for (let i = 0; i < faces.length; i++) {
    for (let j = i + 1; j < faces.length; j++) {
      let s = 0;
      const a = faces[i]!.v;
      const b = faces[j]!.v;
      for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
      pairs.push({ score: s, same: faces[i]!.identity === faces[j]!.identity });
    }
  }
  const impostor = pairs.filter((p) => !p.same).length;
  if (impostor === 0) return { status: 'uncalibrated', fars: [], note: `the gallery has no pairs of different identities to calibrate ${modelId} on: identify gives scores only, or takes --threshold` };
  const c = await store.calibrateModel(modelId, pairs);
  if (c.thresholds.length === 0) {
    return {
      status: 'uncalibrated',
      fars: [],
      genuinePairs: c.genuinePairs,
      impostorPairs: c.impostorPairs,
      note: `${c.impostorPairs} impostor pairs in the gallery support no FAR: identify gives scores only until cosface calibrate --model runs, or with --threshold`,
    };
  }
  return { status: 'recalibrated', fars: c.thresholds.map((t) => t.far), genuinePairs: c.genuinePairs, impostorPairs: c.impostorPairs, note: `calibrated on the gallery's ${faces.length} faces` };
}
