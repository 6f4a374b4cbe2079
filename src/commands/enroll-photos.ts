// The enrollment loop of `cosface enroll` and `cosface bench enroll`: photos of identity folders ->
// the primary face of each -> the gallery, resumable by photo hash. Two schedules with the same
// result (the same faces, rows and order): photo by photo, or pipelined, where the next photos are
// read, hashed and decoded (sharp works on libuv's threads) while the backend runs the current
// group, the networks run once per step for a whole group of photos (facesInImages), and a group's
// rows are written while the backend works on the next one. At most two groups of decoded photos
// are held (16 at the default 8 per group), so memory stays flat however many photos there are.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { CosfaceError, isCosfaceError } from '../errors.js';
import { primaryFace } from '../eval/orl.js';
import type { SkippedFile } from '../files/walk.js';
import { decodeImage, type RgbImage } from '../pipeline/decode.js';
import type { Face, FacePipeline } from '../pipeline/face-pipeline.js';
import { timed, type StageTimer } from '../stage-timer.js';
import type { FaceInput, Store } from '../store/index.js';

export interface EnrollPhoto {
  identity: string;
  path: string;
}

export interface EnrollSummary {
  gallery: string;
  db: string;
  createdGallery: boolean;
  identityFolders: number;
  photos: number;
  added: number;
  /** Identities that received faces in this run. */
  identitiesAdded: number;
  /** Photos already in the gallery (same sha256), left alone. */
  skipped: number;
  noFace: string[];
  badImages: { photo: string; code: string; message: string }[];
  /** Photos with more than one face: the largest (most central among similar sizes) was enrolled. */
  multipleFaces: { photo: string; faces: number }[];
  /** Files that are not photos (not JPEG, PNG or WebP by content), or not in an identity folder. */
  ignored: string[];
  /** Files left out for another reason: unreadable, a broken link, a second link to the same file. */
  skippedFiles: SkippedFile[];
  gallerySize: { identities: number; faces: number };
  /** With --stats or --json: speed and where the time went. */
  stats?: EnrollStats;
}

export interface EnrollStats {
  schedule: 'pipelined' | 'sequential';
  /** Photos per network call (1 when sequential). */
  batch: number;
  seconds: number;
  photosPerSec: number;
  /** Faces found (all faces of every photo, not only the enrolled ones) per second. */
  facesPerSec: number;
  facesFound: number;
  /** Wall time per stage (overlapping calls counted once) and its share of the run. */
  stages: { stage: string; ms: number; share: number }[];
}

export interface EnrollLoopOptions {
  store: Store;
  gallery: string;
  photos: readonly EnrollPhoto[];
  /** Opens the face pipeline, called once and only when a photo needs it. */
  pipeline: () => Promise<FacePipeline>;
  /** Pipelined (default) or photo by photo. */
  pipelined?: boolean;
  /** Photos per group when pipelined (default DEFAULT_ENROLL_BATCH, 8). */
  batch?: number;
  /** Receives the stages read, decode, open (the pipeline), detect, landmarks, align, embed, validate, write, index. */
  timer?: StageTimer;
  /** Called once per photo, in order, when its outcome is known. */
  onPhoto?: () => void;
}

export interface EnrollOutcome {
  added: number;
  identitiesAdded: number;
  skipped: number;
  noFace: string[];
  badImages: EnrollSummary['badImages'];
  multipleFaces: EnrollSummary['multipleFaces'];
  /** Faces found in the photos that were enrolled (all of each photo's faces, not only the enrolled one). */
  facesFound: number;
}

/**
 * Photos per group when pipelined. On this 2-core machine, 300 LFW photos: 8 gave 1.65x the photo
 * by photo rate, 4 gave 1.54x, 16 gave 1.72x (BENCHMARKS.md, "Bulk enrollment").
 */
export const DEFAULT_ENROLL_BATCH = 8;

/** A photo read, hashed, checked against the gallery and decoded: what the pipeline needs. */
type Loaded =
  | { kind: 'skip'; p: EnrollPhoto }
  | { kind: 'bad'; p: EnrollPhoto; code: string; message: string }
  | { kind: 'image'; p: EnrollPhoto; hash: string; img: RgbImage | null }; // null once its faces are found

type Found = { faces: Face[]; primary: Face | undefined } | { error: CosfaceError };

const BAD_IMAGE_CODES = new Set(['BAD_IMAGE', 'IMAGE_TOO_LARGE']);

export async function enrollPhotos(o: EnrollLoopOptions): Promise<EnrollOutcome> {
  const { store, gallery, timer } = o;
  const out: EnrollOutcome = { added: 0, identitiesAdded: 0, skipped: 0, noFace: [], badImages: [], multipleFaces: [], facesFound: 0 };
  const touched = new Set<string>();
  let pipeline: Promise<FacePipeline> | null = null;
  // Opening compiles the networks (seconds): its own stage, so the photo stages show the steady state.
  const getPipeline = () => (pipeline ??= timed(timer, 'open', o.pipeline));

  async function load(p: EnrollPhoto): Promise<Loaded> {
    const read = await timed(timer, 'read', async (): Promise<{ bad: string } | { bytes: Uint8Array; hash: string; enrolled: boolean }> => {
      const bytes = await readFile(p.path).catch((e: NodeJS.ErrnoException) => e);
      if (bytes instanceof Error) return { bad: `cannot read the file (${bytes.code ?? bytes.message})` };
      const hash = createHash('sha256').update(bytes).digest('hex');
      return { bytes, hash, enrolled: await store.hasPhoto(gallery, hash) };
    });
    if ('bad' in read) return { kind: 'bad', p, code: 'BAD_IMAGE', message: read.bad };
    if (read.enrolled) return { kind: 'skip', p };
    try {
      return { kind: 'image', p, hash: read.hash, img: await timed(timer, 'decode', () => decodeImage(read.bytes)) };
    } catch (e) {
      if (!isCosfaceError(e) || !BAD_IMAGE_CODES.has(e.code)) throw e;
      return { kind: 'bad', p, code: e.code, message: fileMessage(p.path, e).message };
    }
  }

  function found(l: Loaded & { kind: 'image' }, r: Face[] | Error): Found {
    if (r instanceof Error) {
      if (isCosfaceError(r) && BAD_IMAGE_CODES.has(r.code)) return { error: r };
      throw r;
    }
    return { faces: r, primary: primaryFace(r, l.img!.width, l.img!.height) };
  }

  // Photos enrolled by this run (a second copy of a photo is skipped, as when the first copy's
  // face was already in the gallery before it was read).
  const enrolledNow = new Set<string>();
  const knownIdentities = new Set<string>();

  /** Records the outcomes of a group of photos in order; the faces of the group in one transaction. */
  async function write(group: readonly { l: Loaded; f?: Found }[]): Promise<void> {
    const items: { identity: string; face: FaceInput }[] = [];
    for (const { l, f } of group) {
      if (l.kind === 'skip' || (l.kind === 'image' && enrolledNow.has(l.hash))) out.skipped++;
      else if (l.kind === 'bad') out.badImages.push({ photo: l.p.path, code: l.code, message: l.message });
      else if (!f) throw new Error('enrollPhotos: a decoded photo without a result');
      else if ('error' in f) out.badImages.push({ photo: l.p.path, code: f.error.code, message: fileMessage(l.p.path, f.error).message });
      else if (!f.primary) out.noFace.push(l.p.path);
      else {
        out.facesFound += f.faces.length;
        if (f.faces.length > 1) out.multipleFaces.push({ photo: l.p.path, faces: f.faces.length });
        const [x, y, w, h] = f.primary.box;
        items.push({
          identity: l.p.identity,
          face: {
            embedding: f.primary.embedding,
            box: { x, y, width: w, height: h },
            keypoints: f.primary.landmarks,
            quality: f.primary.quality,
            photoHash: l.hash,
            photoPath: relative(process.cwd(), resolve(l.p.path)),
          },
        });
        enrolledNow.add(l.hash);
        touched.add(l.p.identity);
      }
    }
    if (items.length > 0) {
      // The identities the gallery lacks are created in the faces' transaction: a crash leaves
      // neither an identity without its face nor a face without its identity.
      const newIdentities: { externalId: string }[] = [];
      const named = new Set<string>();
      for (const it of items) {
        if (knownIdentities.has(it.identity) || named.has(it.identity)) continue;
        named.add(it.identity);
        const exists = await timed(timer, 'validate', () =>
          store.getIdentity(gallery, it.identity).then(
            () => true,
            (e: unknown) => {
              if (isCosfaceError(e, 'IDENTITY_NOT_FOUND')) return false;
              throw e;
            },
          ),
        );
        if (!exists) newIdentities.push({ externalId: it.identity });
      }
      await store.addFaces(gallery, items, { newIdentities, ...(timer ? { timer } : {}) });
      for (const id of named) knownIdentities.add(id);
      out.added += items.length;
    }
    for (let i = 0; i < group.length; i++) o.onPhoto?.();
  }

  if (o.pipelined === false) {
    for (const p of o.photos) {
      const l = await load(p);
      let f: Found | undefined;
      if (l.kind === 'image' && !enrolledNow.has(l.hash)) {
        const pipe = await getPipeline();
        f = found(l, await pipe.facesInImage(l.img!, timer ? { timer } : {}).catch((e: unknown) => asError(e)));
      }
      await write([{ l, f }]);
    }
  } else {
    const batch = o.batch ?? DEFAULT_ENROLL_BATCH;
    if (!(Number.isInteger(batch) && batch >= 1)) throw new CosfaceError('BAD_INPUT', `enroll: the batch must be a positive integer, got ${batch}`);
    // The next group loads while the current one runs: at most two groups of decoded photos are
    // held (a group's pixels are dropped once its faces are found). Each group waits for its own
    // loads in order.
    const loads: Promise<Loaded>[] = [];
    let next = 0;
    const fill = () => {
      while (next < o.photos.length && loads.length < batch) {
        const pr = load(o.photos[next++]!);
        pr.catch(() => undefined); // awaited in order below; a failure surfaces there
        loads.push(pr);
      }
    };
    let pendingWrite: (() => Promise<void>) | null = null;
    try {
      fill();
      while (loads.length > 0) {
        const group: { l: Loaded; f?: Found }[] = [];
        for (const pr of loads.splice(0, batch)) group.push({ l: await pr });
        fill();
        const toRun = group.filter((g): g is { l: Loaded & { kind: 'image' } } => g.l.kind === 'image' && !enrolledNow.has(g.l.hash));
        let running: Promise<(Face[] | Error)[]> | null = null;
        if (toRun.length > 0) {
          const pipe = await getPipeline();
          running = pipe.facesInImages(toRun.map((g) => g.l.img!), timer ? { timer } : {});
        }
        // The previous group's rows go in while the backend works on this one.
        if (pendingWrite) {
          try {
            await pendingWrite();
          } catch (e) {
            await running; // never rejects (a photo's failure is its Error); the caller closes the backend next
            throw e;
          }
        }
        pendingWrite = null;
        if (running) {
          const results = await running;
          toRun.forEach((g, i) => {
            (g as { f?: Found }).f = found(g.l, results[i]!);
            g.l.img = null;
          });
        }
        pendingWrite = () => write(group);
      }
      if (pendingWrite) await pendingWrite();
    } finally {
      // Let loads still in flight settle before the caller closes the store.
      await Promise.allSettled(loads);
    }
  }
  out.identitiesAdded = touched.size;
  return out;
}

/** decodeImage names bytes 'image'; say which file, on one line. */
function fileMessage(path: string, e: CosfaceError): CosfaceError {
  if (e.message.startsWith('image:')) return new CosfaceError(e.code, `${path}:${e.message.slice(6).replace(/\s*\n\s*/g, '; ')}`, { cause: e });
  return e;
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));
