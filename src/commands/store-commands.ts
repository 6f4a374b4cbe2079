// CLI commands over the face store: enroll a folder of people, identify a photo, verify two
// photos, inspect and delete galleries, calibrate thresholds on labelled pairs, the ORL evaluation
// and the search benchmark. The database defaults to ./cosface.db (--db chooses another).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULT_EMBEDDER_ID } from '../embedder.js';
import { createBackend, loadModelFile, parseBackendChoice } from '../engine.js';
import { numel } from '../graph/ir.js';
import { modelIdOf, parseChannels, parseTriple, type MetadataOverrides } from '../import/model-metadata.js';
export { modelIdOf } from '../import/model-metadata.js';
import { CosfaceError, isCosfaceError } from '../errors.js';
import { decodeImage } from '../pipeline/decode.js';
import { createFacePipeline, type Face, type FacePipeline } from '../pipeline/face-pipeline.js';
import { withReferenceFallback } from '../pipeline/reference-backend.js';
import { describeLocation, openStore, parseLocation, storeLocation, storeMayExist, type Store } from '../store/index.js';
import { checkGalleryName, EXTERNAL_ID_RULE, isExternalId } from '../store/names.js';
import type { ScoredPair } from '../store/thresholds.js';
import { primaryFace } from '../eval/orl.js';
import type { Command } from './index.js';
import { ProgressBar } from './progress.js';
import { describeSkip, walkPhotos, type SkippedFile } from '../files/walk.js';
import { DEFAULT_ENROLL_BATCH, enrollPhotos, type EnrollPhoto, type EnrollStats, type EnrollSummary } from './enroll-photos.js';
import { StageTimes } from '../stage-timer.js';
export type { EnrollSummary } from './enroll-photos.js';

/** The embedding model the CLI's pipeline produces by default (--model gives another), as galleries and calibrations name it. */
export const CLI_MODEL_ID = DEFAULT_EMBEDDER_ID;
export const CLI_MODEL_DIM = 128;
/** Where the CLI keeps its store unless --db says otherwise (relative to the working directory). */
export const DEFAULT_DB_PATH = './cosface.db';
/** The FAR identify and verify decide at when none is given and the model is calibrated there. */
export const DEFAULT_FAR = 1e-4;

// ---- output and pipeline, injectable so tests can share one pipeline and read the output ----

export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal: progress bars redraw in place there, and print a line per 10% elsewhere. */
  readonly errIsTTY: boolean;
}

export const processIo: CommandIo = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  get errIsTTY() {
    return !!process.stderr.isTTY;
  },
};

export interface PipelineSession {
  pipeline: FacePipeline;
  /** The backend, in words. */
  describe: string;
  close(): Promise<void>;
}

export type PipelineOpener = (o: { backend: string; workers?: number; note: (line: string) => void; model?: CliModel }) => Promise<PipelineSession>;

/** The face pipeline on a fresh backend; graphs the backend cannot run fall back to the reference kernels. */
export const openCliPipeline: PipelineOpener = async ({ backend: choice, workers, note, model }) => {
  const backend = await createBackend(choice, { workers });
  try {
    const compiler = withReferenceFallback(backend, (g, reason) => note(`note: ${g.source ?? 'a graph'} runs on the reference kernels (${reason})`));
    const pipeline = await createFacePipeline({ backend: compiler, ...(model?.path ? { embedder: { path: model.path, metadata: model.metadata } } : {}) });
    return {
      pipeline,
      describe: backend.describe(),
      async close() {
        pipeline.dispose();
        await backend.dispose();
      },
    };
  } catch (e) {
    await backend.dispose();
    throw e;
  }
};

export interface StoreCommandOptions {
  io?: CommandIo;
  openPipeline?: PipelineOpener;
}

// Progress bars live in ./progress.ts (terminal bar, or a plain line every few seconds when piped).
export { ProgressBar } from './progress.js';

// ---- argument helpers ----

type Values = Record<string, string | boolean | undefined>;

export function parse(cmd: string, args: string[], options: ParseArgsConfig['options']): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `${cmd}: ${(e as Error).message}`);
  }
}

export const PIPELINE_OPTIONS = {
  backend: { type: 'string' },
  workers: { type: 'string' },
  // A face embedder of the user's (TFLite or ONNX) and what its file cannot say (see model-metadata.ts).
  model: { type: 'string' },
  'input-mean': { type: 'string' },
  'input-std': { type: 'string' },
  channels: { type: 'string' },
} as const;

export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function intOpt(cmd: string, v: string | boolean | undefined, name: string, dflt: number, max = 1_000_000): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new CosfaceError('BAD_INPUT', `${cmd}: --${name} must be an integer from 1 to ${max}, got '${String(v)}'`);
  return n;
}

/** --backend and --workers, checked before anything is opened or written. */
/** The embedder a command runs: the vendored one, or --model's (its id names the file's content). */
export interface CliModel {
  id: string;
  dimension: number;
  /** Absent: the vendored embedder. */
  path?: string;
  metadata?: MetadataOverrides;
}

export const DEFAULT_CLI_MODEL: CliModel = { id: CLI_MODEL_ID, dimension: CLI_MODEL_DIM };

export async function pipelineOpts(cmd: string, v: Values, o: Required<StoreCommandOptions>): Promise<Parameters<PipelineOpener>[0]> {
  let model = DEFAULT_CLI_MODEL;
  const metadata: MetadataOverrides = {
    ...(v['input-mean'] !== undefined ? { inputMean: parseTriple(String(v['input-mean']), '--input-mean') } : {}),
    ...(v['input-std'] !== undefined ? { inputStd: parseTriple(String(v['input-std']), '--input-std') } : {}),
    ...(v.channels !== undefined ? { channels: parseChannels(String(v.channels)) } : {}),
  };
  const path = str(v.model);
  if (path) {
    const graph = await loadModelFile(path);
    model = { id: await modelIdOf(path), dimension: numel(graph.output.shape), path, metadata };
  } else if (Object.keys(metadata).length > 0) {
    throw new CosfaceError('BAD_INPUT', `${cmd}: --input-mean, --input-std and --channels describe a --model file`);
  }
  return {
    backend: parseBackendChoice(str(v.backend) ?? 'auto'),
    workers: v.workers === undefined ? undefined : intOpt(cmd, v.workers, 'workers', 1, 256),
    note: (s) => o.io.err(`${s}\n`),
    model,
  };
}

/** A gallery holds one model's embeddings: another model's would be compared as if they were alike. */
function checkGalleryModel(g: { name: string; modelId: string; dimension: number }, model: CliModel): void {
  if (g.modelId !== model.id || g.dimension !== model.dimension) {
    throw new CosfaceError('MODEL_MISMATCH', `gallery "${g.name}" holds ${g.modelId} (${g.dimension}-d) embeddings; this pipeline makes ${model.id} (${model.dimension}-d)${model.path ? '' : ' (give --model)'}`);
  }
}

/** --far and --threshold: at most one; a FAR in (0, 1), a threshold in [-1, 1] (cosine). */
export function thresholdOpts(cmd: string, v: Values): { far?: number; threshold?: number } {
  if (v.far !== undefined && v.threshold !== undefined) throw new CosfaceError('BAD_INPUT', `${cmd}: give --far or --threshold, not both`);
  if (v.far !== undefined) {
    const far = Number(v.far);
    if (!(far > 0 && far < 1)) throw new CosfaceError('BAD_INPUT', `${cmd}: --far must be a number in (0, 1), got '${String(v.far)}'`);
    return { far };
  }
  if (v.threshold !== undefined) {
    const t = Number(v.threshold);
    if (!(Number.isFinite(t) && t >= -1 && t <= 1)) throw new CosfaceError('BAD_INPUT', `${cmd}: --threshold must be a cosine in [-1, 1], got '${String(v.threshold)}'`);
    return { threshold: t };
  }
  return {};
}

/**
 * The decision rule when neither --far nor --threshold is given: DEFAULT_FAR if the model is
 * calibrated there, else the strictest calibrated FAR, else none (scores only).
 */
async function defaultDecision(store: Store | null, modelId: string, chosen: { far?: number; threshold?: number }): Promise<{ far?: number; threshold?: number; note?: string }> {
  if (chosen.far !== undefined || chosen.threshold !== undefined) {
    if (chosen.far !== undefined) {
      const have = store ? await store.thresholds(modelId) : [];
      if (!have.some((r) => Math.abs(r.far - chosen.far!) <= 1e-9 * chosen.far!)) {
        throw new CosfaceError(
          'NOT_CALIBRATED',
          `no threshold calibrated at FAR ${chosen.far} for model "${modelId}" (calibrated: ${have.map((r) => r.far).join(', ') || 'none'}); run cosface calibrate, or pass --threshold`,
        );
      }
    }
    return chosen;
  }
  const have = store ? await store.thresholds(modelId) : [];
  if (have.length === 0) return { note: `no calibrated threshold for ${modelId}: scores only (run cosface calibrate, or pass --threshold)` };
  const exact = have.find((r) => Math.abs(r.far - DEFAULT_FAR) <= 1e-9 * DEFAULT_FAR);
  if (exact) return { far: exact.far };
  const strictest = have[have.length - 1]!;
  return { far: strictest.far, note: `FAR ${DEFAULT_FAR} is not calibrated for ${modelId}: deciding at FAR ${strictest.far}, the strictest calibrated` };
}

/** Opens the store at an existing path; never creates a database as a side effect of a read. */
async function openExistingStore(dbPath: string): Promise<Store> {
  if (!storeMayExist(dbPath)) throw new CosfaceError('GALLERY_NOT_FOUND', `no database at ${dbPath} (cosface enroll creates one; --db chooses another)`);
  return openStore(dbPath);
}

async function photoBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new CosfaceError('BAD_IMAGE', `${path}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

/** Every face in a photo plus the one a single-person photo means (largest, central on ties). */
async function facesOf(pipeline: FacePipeline, path: string, bytes?: Uint8Array): Promise<{ faces: Face[]; primary: Face | undefined; width: number; height: number }> {
  let img;
  try {
    img = await decodeImage(bytes ?? (await photoBytes(path)));
  } catch (e) {
    // decodeImage names bytes 'image'; say which file, on one line.
    if (isCosfaceError(e) && e.message.startsWith('image:')) throw new CosfaceError(e.code, `${path}:${e.message.slice(6).replace(/\s*\n\s*/g, '; ')}`, { cause: e });
    throw e;
  }
  const faces = await pipeline.facesInImage(img);
  return { faces, primary: primaryFace(faces, img.width, img.height), width: img.width, height: img.height };
}

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

function fmtFar(far: number | null | undefined): string {
  return far === null || far === undefined ? '' : ` at FAR ${far.toExponential(0)}`;
}

// ---- enroll ----

/**
 * The photos of an enrollment folder: one sub-folder per identity (a symbolic link to a folder
 * counts), and the photo files directly in it (links followed; JPEG, PNG or WebP by content).
 */
export async function listEnrollPhotos(dir: string): Promise<{ photos: EnrollPhoto[]; folders: string[]; ignored: string[]; skipped: SkippedFile[] }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `enroll: cannot read folder ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const folders: string[] = [];
  const ignored: string[] = [];
  const skipped: SkippedFile[] = [];
  for (const e of entries.filter((x) => !x.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const st = await stat(join(dir, e.name)).catch((err: NodeJS.ErrnoException) => err);
    if (st instanceof Error) skipped.push({ photo: join(dir, e.name), reason: e.isSymbolicLink() && st.code === 'ENOENT' ? 'broken link' : 'unreadable', detail: st.code });
    else if (st.isDirectory()) folders.push(e.name);
    else ignored.push(join(dir, e.name));
  }
  const photos: EnrollPhoto[] = [];
  for (const f of folders) {
    if (!isExternalId(f)) throw new CosfaceError('BAD_INPUT', `enroll: folder name ${JSON.stringify(f)} is not a usable identity id (${EXTERNAL_ID_RULE})`);
    const walked = await walkPhotos([join(dir, f)], { recursive: false });
    for (const p of walked.photos) photos.push({ identity: f, path: p.path });
    for (const s of walked.skipped) {
      if (s.reason === 'not an image') ignored.push(s.photo);
      else skipped.push(s);
    }
  }
  return { photos, folders, ignored, skipped };
}

/** An on|off option. */
export function onOff(cmd: string, v: string | boolean | undefined, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new CosfaceError('BAD_INPUT', `${cmd}: --${name} must be on or off, got '${String(v)}'`);
}

/** Speed and stage split of an enrollment run from its timer. */
export function enrollStats(timer: StageTimes, pipelined: boolean, batch: number, photos: number, facesFound: number): EnrollStats {
  const ms = timer.elapsedMs();
  return {
    schedule: pipelined ? 'pipelined' : 'sequential',
    batch: pipelined ? batch : 1,
    seconds: ms / 1000,
    photosPerSec: (photos * 1000) / ms,
    facesPerSec: (facesFound * 1000) / ms,
    facesFound,
    stages: timer.shares(ms).map(({ stage, ms: t, share }) => ({ stage, ms: t, share })),
  };
}

export function formatEnrollStats(s: EnrollStats): string[] {
  const lines = [
    `speed: ${s.photosPerSec.toFixed(2)} photos/s, ${s.facesPerSec.toFixed(2)} faces/s (${s.seconds.toFixed(1)} s, ${s.schedule}${s.schedule === 'pipelined' ? `, ${s.batch} photos per network call` : ''})`,
    `stages (wall time with the stage running; ${s.schedule === 'pipelined' ? 'stages overlap, so shares add up to more than 100%' : 'one stage at a time'}):`,
  ];
  for (const st of s.stages) lines.push(`  ${st.stage.padEnd(9)} ${(st.ms / 1000).toFixed(2).padStart(8)} s  ${(100 * st.share).toFixed(1).padStart(5)}%`);
  return lines;
}

async function enroll(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('enroll', args, {
    gallery: { type: 'string' },
    db: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    stats: { type: 'boolean' },
    pipeline: { type: 'string' },
    batch: { type: 'string' },
    ...PIPELINE_OPTIONS,
  });
  const pipe = await pipelineOpts('enroll', values, o);
  const pipelined = onOff('enroll', values.pipeline, 'pipeline', true);
  const batch = intOpt('enroll', values.batch, 'batch', DEFAULT_ENROLL_BATCH, 256);
  if (positionals.length !== 1) throw new CosfaceError('BAD_INPUT', 'enroll: give one folder: cosface enroll <dir> --gallery <name>');
  const gallery = str(values.gallery);
  if (!gallery) throw new CosfaceError('BAD_INPUT', 'enroll: --gallery <name> is required');
  checkGalleryName(gallery); // before anything is opened or created
  const dir = positionals[0]!;
  const dbPath = storeLocation(str(values.db));
  const { photos, folders, ignored, skipped } = await listEnrollPhotos(dir);
  if (photos.length === 0) throw new CosfaceError('BAD_INPUT', `enroll: no photos (JPEG, PNG or WebP) in identity folders under ${dir}${skipped.length ? `; left out: ${skipped.slice(0, 5).map(describeSkip).join(', ')}` : ''}`);

  const store = await openStore(dbPath);
  let session = null as PipelineSession | null; // opened inside enrollPhotos, when needed
  try {
    let createdGallery = false;
    try {
      const g = await store.getGallery(gallery);
      checkGalleryModel(g, pipe.model!);
    } catch (e) {
      if (!isCosfaceError(e, 'GALLERY_NOT_FOUND')) throw e;
      await store.createGallery(gallery, { modelId: pipe.model!.id, dimension: pipe.model!.dimension });
      createdGallery = true;
    }
    const summary: EnrollSummary = {
      gallery,
      db: describeLocation(dbPath),
      createdGallery,
      identityFolders: folders.length,
      photos: photos.length,
      added: 0,
      identitiesAdded: 0,
      skipped: 0,
      noFace: [],
      badImages: [],
      multipleFaces: [],
      ignored,
      skippedFiles: skipped,
      gallerySize: { identities: 0, faces: 0 },
    };
    const bar = new ProgressBar(o.io, photos.length, 'enrolling', { quiet: !!values.quiet, unit: 'photos' });
    const timer = values.stats || values.json ? new StageTimes() : undefined;
    const outcome = await enrollPhotos({
      store,
      gallery,
      photos,
      // The pipeline compiles three networks (seconds): only when there is something to enroll.
      pipeline: async () => (session ??= await o.openPipeline(pipe)).pipeline,
      pipelined,
      batch,
      ...(timer ? { timer } : {}),
      onPhoto: () => bar.tick(),
    });
    const { facesFound, ...counts } = outcome;
    Object.assign(summary, counts);
    if (timer) summary.stats = enrollStats(timer, pipelined, batch, photos.length, facesFound);
    const g = await store.getGallery(gallery);
    summary.gallerySize = { identities: g.identities, faces: g.faces };
    if (values.json) {
      o.io.out(`${JSON.stringify(summary)}\n`);
      return;
    }
    const lines = [
      `gallery "${gallery}" in ${dbPath}${createdGallery ? ' (created)' : ''}`,
      `photos: ${summary.photos} in ${summary.identityFolders} identity folders`,
      `added: ${summary.added} faces to ${summary.identitiesAdded} identities`,
      `skipped: ${summary.skipped} already enrolled`,
      `no face: ${summary.noFace.length}${summary.noFace.length ? ` (${summary.noFace.join(', ')})` : ''}`,
    ];
    if (summary.badImages.length) lines.push(`unreadable: ${summary.badImages.length} (${summary.badImages.map((b) => `${b.photo}: ${b.code}`).join(', ')})`);
    if (summary.multipleFaces.length) lines.push(`several faces (the largest, most central one enrolled): ${summary.multipleFaces.map((m) => `${m.photo} (${m.faces})`).join(', ')}`);
    if (summary.ignored.length) lines.push(`ignored (not a photo in an identity folder): ${summary.ignored.length}`);
    if (skipped.length) lines.push(`left out: ${skipped.length} (${skipped.map(describeSkip).join(', ')})`);
    lines.push(`gallery now: ${g.identities} identities, ${g.faces} faces`);
    if (values.stats && summary.stats) lines.push(...formatEnrollStats(summary.stats));
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await session?.close();
    await store.close();
  }
}

// ---- identify ----

async function identify(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('identify', args, {
    gallery: { type: 'string' },
    db: { type: 'string' },
    k: { type: 'string' },
    far: { type: 'string' },
    threshold: { type: 'string' },
    exact: { type: 'boolean' },
    json: { type: 'boolean' },
    ...PIPELINE_OPTIONS,
  });
  if (positionals.length !== 1) throw new CosfaceError('BAD_INPUT', 'identify: give one photo: cosface identify <photo> --gallery <name>');
  const pipe = await pipelineOpts('identify', values, o);
  const gallery = str(values.gallery);
  if (!gallery) throw new CosfaceError('BAD_INPUT', 'identify: --gallery <name> is required');
  const k = intOpt('identify', values.k, 'k', 5, 1000);
  const chosen = thresholdOpts('identify', values);
  const photo = positionals[0]!;
  const store = await openExistingStore(storeLocation(str(values.db)));
  let session: PipelineSession | null = null;
  try {
    // Everything that can fail without a pipeline fails before one is loaded.
    const g = await store.getGallery(gallery);
    checkGalleryModel(g, pipe.model!);
    const rule = await defaultDecision(store, g.modelId, chosen);
    if (rule.note && !values.json) o.io.err(`${rule.note}\n`);
    const bytes = await photoBytes(photo);
    session = await o.openPipeline(pipe);
    const { faces } = await facesOf(session.pipeline, photo, bytes);
    if (faces.length === 0) throw new CosfaceError('NO_FACE', `${photo}: no face found`);
    const results = [];
    let threshold: number | null = null;
    for (const f of faces) {
      const r = await store.identify(gallery, f.embedding, { k, far: rule.far, threshold: rule.threshold, exact: !!values.exact });
      threshold = r.threshold;
      results.push({
        box: f.box,
        candidates: r.candidates.map((c) => ({ identity: c.identity, score: r4(c.score) })),
        match: r.match?.identity ?? null,
      });
    }
    const far = rule.far ?? null;
    if (values.json) {
      o.io.out(`${JSON.stringify({ faces: results, threshold, far, decision: threshold === null ? 'no-threshold' : 'threshold' })}\n`);
      return;
    }
    const lines = [`${photo}: ${faces.length} face${faces.length === 1 ? '' : 's'} in gallery "${gallery}"${threshold === null ? '' : `, threshold ${threshold.toFixed(4)}${fmtFar(far)}`}`];
    results.forEach((r, i) => {
      const [x, y, w, h] = r.box.map((v) => Math.round(v));
      const verdict = threshold === null ? 'no decision' : r.match ? `match: ${r.match}` : 'unknown (not enrolled)';
      lines.push(`face ${i + 1} box [${x}, ${y}, ${w}, ${h}]: ${verdict}`);
      for (const c of r.candidates) lines.push(`  ${c.score.toFixed(4)}  ${c.identity}`);
    });
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await session?.close();
    await store.close();
  }
}

// ---- verify ----

async function verify(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('verify', args, { db: { type: 'string' }, far: { type: 'string' }, threshold: { type: 'string' }, json: { type: 'boolean' }, ...PIPELINE_OPTIONS });
  const pipe = await pipelineOpts('verify', values, o);
  if (positionals.length !== 2) throw new CosfaceError('BAD_INPUT', 'verify: give two photos: cosface verify <a> <b>');
  const chosen = thresholdOpts('verify', values);
  const dbPath = storeLocation(str(values.db));
  // The calibration lives in the database; without one, a raw --threshold still decides.
  const store = storeMayExist(dbPath) ? await openStore(dbPath) : await openStore(':memory:');
  let session: PipelineSession | null = null;
  try {
    const rule = await defaultDecision(store, pipe.model!.id, chosen);
    if (rule.note && !values.json) o.io.err(`${rule.note}\n`);
    const [a, b] = positionals as [string, string];
    const bytes = [await photoBytes(a), await photoBytes(b)];
    session = await o.openPipeline(pipe);
    const sides = [];
    for (const [i, p] of [a, b].entries()) {
      const found = await facesOf(session.pipeline, p, bytes[i]);
      if (!found.primary) throw new CosfaceError('NO_FACE', `${p}: no face found`);
      sides.push({ photo: p, faces: found.faces.length, box: found.primary.box, embedding: found.primary.embedding });
    }
    const r = await store.verify(sides[0]!.embedding, sides[1]!.embedding, { far: rule.far, threshold: rule.threshold, modelId: pipe.model!.id });
    const out = {
      a: { photo: a, faces: sides[0]!.faces, box: sides[0]!.box },
      b: { photo: b, faces: sides[1]!.faces, box: sides[1]!.box },
      score: r4(r.score),
      same: r.same,
      threshold: r.threshold,
      far: r.far,
    };
    if (values.json) {
      o.io.out(`${JSON.stringify(out)}\n`);
      return;
    }
    const verdict = r.same === null ? 'no decision (no threshold)' : r.same ? 'same person' : 'different people';
    o.io.out(`score ${r.score.toFixed(4)}: ${verdict}${r.threshold === null ? '' : ` (threshold ${r.threshold.toFixed(4)}${fmtFar(r.far)})`}\n`);
  } finally {
    await session?.close();
    await store.close();
  }
}

// ---- gallery list | stats | delete ----

async function galleryCommand(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === 'duplicates') return galleryDuplicates(rest, o);
  if (sub === 'migrate') return galleryMigrate(rest, o);
  const { values, positionals } = parse(`gallery ${sub ?? ''}`.trim(), rest, { db: { type: 'string' }, json: { type: 'boolean' }, check: { type: 'boolean' } });
  const dbPath = storeLocation(str(values.db));
  const json = (x: unknown) => o.io.out(`${JSON.stringify(x)}\n`);
  if (sub === 'list') {
    if (positionals.length) throw new CosfaceError('BAD_INPUT', 'gallery list takes no names');
    if (!storeMayExist(dbPath)) {
      if (values.json) json({ galleries: [] });
      else o.io.out(`no galleries (no database at ${dbPath})\n`);
      return;
    }
    const store = await openStore(dbPath);
    try {
      const list = await store.listGalleries();
      if (values.json) json({ galleries: list });
      else if (list.length === 0) o.io.out('no galleries\n');
      else o.io.out(`${list.map((g) => `${g.name}: ${g.identities} identities, ${g.faces} faces (${g.modelId}, ${g.dimension}-d)`).join('\n')}\n`);
    } finally {
      await store.close();
    }
    return;
  }
  if (sub !== 'stats' && sub !== 'delete') throw new CosfaceError('BAD_INPUT', `gallery: unknown subcommand '${sub ?? ''}' (list, stats <name>, delete <name>, duplicates <name>, migrate <name>)`);
  if (positionals.length !== 1) throw new CosfaceError('BAD_INPUT', `gallery ${sub}: give one gallery name`);
  const name = positionals[0]!;
  const store = await openExistingStore(dbPath);
  try {
    if (sub === 'delete') {
      const g = await store.getGallery(name);
      await store.deleteGallery(name);
      if (values.json) json({ deleted: name, identities: g.identities, faces: g.faces });
      else o.io.out(`deleted gallery "${name}" (${g.identities} identities, ${g.faces} faces)\n`);
      return;
    }
    const s = await store.galleryStats(name);
    const check = values.check ? await store.checkConsistency(name) : undefined;
    const mig = await store.migrationStatus(name);
    const migration = mig.claim ? { ...mig.claim, active: mig.active, staged: mig.staged } : null;
    if (values.json) {
      json({ ...s, migration, ...(check ? { consistency: check } : {}) });
      return;
    }
    const lines = [
      `gallery "${s.name}": ${s.identities} identities, ${s.faces} faces (${s.deletedFaces} deleted)`,
      `model: ${s.modelId} v${s.modelVersion}, ${s.dimension}-d`,
      `index: HNSW M=${s.m}, efConstruction=${s.efConstruction}, ef=${s.ef}; ${s.index.live} live, ${s.index.deleted} deleted, capacity ${s.index.capacity}` +
        `${s.index.snapshotLastFaceId === null ? ', no snapshot yet' : `; snapshot up to face ${s.index.snapshotLastFaceId} (${s.index.snapshotBytes} bytes)`}` +
        `${s.index.unsavedChanges ? `, ${s.index.unsavedChanges} changes since` : ''}`,
      `created: ${s.createdAt.toISOString()}`,
    ];
    if (migration) {
      lines.push(
        `migration to ${migration.modelId} (${migration.dimension}-d): ${migration.staged}/${s.faces} faces re-embedded; ` +
          `${migration.active ? `held by ${migration.owner}, adding faces refused (MIGRATING)` : `stopped (claim lapsed ${Math.round((Date.now() - migration.heartbeatAt) / 1000)} s after the last sign of life); rerun gallery migrate to resume`}`,
      );
    }
    if (check) {
      const ok = check.missingFromIndex.length + check.extraInIndex.length + check.vectorMismatches.length === 0;
      lines.push(
        `consistency: ${ok ? 'index and database agree' : 'MISMATCH'} (database ${check.dbLive} live, index ${check.indexLive} live` +
          `${ok ? '' : `; missing ${check.missingFromIndex.length}, extra ${check.extraInIndex.length}, vector mismatches ${check.vectorMismatches.length}`})`,
      );
    }
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await store.close();
  }
}

/** cosface gallery duplicates <name>: identities enrolled twice (templates matching above the threshold). */
async function galleryDuplicates(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('gallery duplicates', args, { db: { type: 'string' }, json: { type: 'boolean' }, far: { type: 'string' }, threshold: { type: 'string' }, k: { type: 'string' } });
  if (positionals.length !== 1) throw new CosfaceError('BAD_INPUT', 'gallery duplicates: give one gallery name');
  const chosen = thresholdOpts('gallery duplicates', values);
  const k = intOpt('gallery duplicates', values.k, 'k', 10, 1000);
  const store = await openExistingStore(storeLocation(str(values.db)));
  try {
    const g = await store.getGallery(positionals[0]!);
    const rule = await defaultDecision(store, g.modelId, chosen);
    if (rule.far === undefined && rule.threshold === undefined) throw new CosfaceError('NOT_CALIBRATED', `gallery duplicates: ${rule.note ?? 'no threshold'}`);
    if (rule.note && !values.json) o.io.err(`${rule.note}\n`);
    const r = await store.duplicateIdentities(g.name, { far: rule.far, threshold: rule.threshold, k });
    if (values.json) {
      o.io.out(`${JSON.stringify({ gallery: g.name, threshold: r.threshold, far: r.far, facesSearched: r.facesSearched, pairs: r.pairs.map((p) => ({ ...p, score: r4(p.score) })) })}\n`);
      return;
    }
    const lines = [`gallery "${g.name}": ${r.pairs.length} pair${r.pairs.length === 1 ? '' : 's'} of identities at or above ${r.threshold.toFixed(4)}${fmtFar(r.far)} (${r.facesSearched} faces searched)`];
    for (const p of r.pairs) lines.push(`  ${p.score.toFixed(4)}  ${p.a.identity}  ${p.b.identity}`);
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await store.close();
  }
}

/**
 * cosface gallery migrate <name> --model <file> --photos <dir>: re-embeds every face from its source
 * photo with the new model while the gallery answers on the old one, then switches in one
 * transaction (src/migrate/migrate-gallery.ts). Faces that cannot be re-embedded are listed; with
 * any of them nothing is switched (MIGRATION_INCOMPLETE) unless --drop-missing.
 * --abort ends a migration in progress (its claim; --discard also its staged vectors).
 */
async function galleryMigrate(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('gallery migrate', args, {
    db: { type: 'string' },
    photos: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    'drop-missing': { type: 'boolean' },
    'no-recalibrate': { type: 'boolean' },
    abort: { type: 'boolean' },
    discard: { type: 'boolean' },
    ...PIPELINE_OPTIONS,
  });
  if (positionals.length !== 1) throw new CosfaceError('BAD_INPUT', 'gallery migrate: give one gallery name: cosface gallery migrate <name> --model <file> --photos <dir>');
  const name = positionals[0]!;
  const dbPath = storeLocation(str(values.db));
  if (values.abort) {
    const store = await openExistingStore(dbPath);
    try {
      const ended = await store.abortMigration(name, null, { discard: !!values.discard });
      if (values.json) o.io.out(`${JSON.stringify({ gallery: name, aborted: ended, discarded: ended && !!values.discard })}
`);
      else o.io.out(ended ? `gallery "${name}": migration stopped${values.discard ? ', staged vectors removed' : ' (staged vectors kept for a rerun)'}
` : `gallery "${name}": no migration in progress
`);
    } finally {
      await store.close();
    }
    return;
  }
  if (!str(values.model)) throw new CosfaceError('BAD_INPUT', 'gallery migrate: --model <file> (the new model) is required');
  const photos = str(values.photos);
  if (!photos) throw new CosfaceError('BAD_INPUT', 'gallery migrate: --photos <dir> (where the enrolled photos are) is required');
  const st = await stat(photos).catch(() => null);
  if (!st?.isDirectory()) throw new CosfaceError('BAD_INPUT', `gallery migrate: --photos ${photos} is not a folder`);
  // The model is loaded (and its errors raised) before the store is touched.
  const pipe = await pipelineOpts('gallery migrate', values, o);
  const store = await openExistingStore(dbPath);
  let session: PipelineSession | null = null;
  try {
    await store.getGallery(name); // GALLERY_NOT_FOUND before a pipeline is compiled
    const { migrateGallery } = await import('../migrate/migrate-gallery.js');
    let bar: ProgressBar | null = null;
    const report = await migrateGallery({
      store,
      gallery: name,
      model: { id: pipe.model!.id, dimension: pipe.model!.dimension },
      photosDir: photos,
      dropMissing: !!values['drop-missing'],
      recalibrate: !values['no-recalibrate'],
      facesInPhoto: async (bytes, path) => {
        session ??= await o.openPipeline(pipe);
        const found = await facesOf(session.pipeline, path, bytes);
        return found.faces.map((f) => ({ box: f.box, embedding: f.embedding }));
      },
      onProgress: (done, total) => {
        bar ??= new ProgressBar(o.io, total, 're-embedding', { quiet: !!values.quiet, unit: 'faces' });
        bar.setTotal(total);
        if (done > bar.count) bar.tick(done - bar.count);
      },
    });
    if (values.json) o.io.out(`${JSON.stringify({ ...report, db: describeLocation(dbPath) })}
`);
    else {
      const lines = [
        `gallery "${name}": ${report.from.modelId} (${report.from.dimension}-d) -> ${report.to.modelId} (${report.to.dimension}-d)`,
        `faces: ${report.faces}; re-embedded now ${report.reembedded} from ${report.photos} photos${report.resumed ? `, ${report.resumed} from an earlier run` : ''}`,
      ];
      if (report.movedPhotos.length) lines.push(`found by content hash (moved or renamed): ${report.movedPhotos.map((m) => `${m.recorded ?? '?'} -> ${m.found}`).join(', ')}`);
      if (report.missing.length) {
        lines.push(`not re-embedded: ${report.missing.length}${report.switched ? ' (deleted: --drop-missing)' : ''}`);
        for (const m of report.missing) lines.push(`  face ${m.faceId} (${m.identity}) ${m.photoPath ?? '(no path)'}: ${m.reason}${m.detail ? ` (${m.detail})` : ''}`);
      }
      if (report.switched) {
        lines.push(`switched: the gallery now holds ${report.to.modelId} (${report.to.dimension}-d) vectors for all ${report.facesAfter} faces`);
        lines.push(`thresholds: ${report.calibration.status}${report.calibration.fars.length ? ` at FAR ${report.calibration.fars.join(', ')}` : ''}${report.calibration.note ? ` (${report.calibration.note})` : ''}`);
      } else lines.push('not switched: the gallery stays on its model; bring the photos back and rerun (done faces are kept), or pass --drop-missing to delete those faces');
      o.io.out(`${lines.join('\n')}\n`);
    }
    if (!report.switched) {
      throw new CosfaceError('MIGRATION_INCOMPLETE', `gallery migrate: ${report.missing.length} face${report.missing.length === 1 ? '' : 's'} could not be re-embedded (listed above); nothing was switched`);
    }
  } finally {
    await (session as PipelineSession | null)?.close();
    await store.close();
  }
}

// ---- calibrate ----

async function calibrateCommand(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('calibrate', args, {
    data: { type: 'string' },
    pairs: { type: 'string' },
    db: { type: 'string' },
    'all-pairs': { type: 'boolean' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    ...PIPELINE_OPTIONS,
  });
  if (positionals.length) throw new CosfaceError('BAD_INPUT', `calibrate: unexpected argument '${positionals[0]}'`);
  const pipe = await pipelineOpts('calibrate', values, o);
  const data = str(values.data);
  if (!data) throw new CosfaceError('BAD_INPUT', 'calibrate: --data <dir> is required');
  const { parseLfwPairs, embedLfwImages } = await import('../eval/lfw.js');
  const pairsPath = str(values.pairs) ?? join(data, 'pairs.csv');
  let csv: string;
  try {
    csv = await readFile(pairsPath, 'utf8');
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `calibrate: cannot read the pair list ${pairsPath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  const pairs = parseLfwPairs(csv, pairsPath);
  const images = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
  for (const im of images) if (!existsSync(join(data, im))) throw new CosfaceError('BAD_INPUT', `calibrate: ${join(data, im)} (from ${pairsPath}) does not exist`);
  // --all-pairs: every pair of the listed images, labelled by the image's folder (LFW: one per person).
  const who = images.map((p) => basename(dirname(p)));
  if (values['all-pairs'] && new Set(who).size < 2) {
    throw new CosfaceError('BAD_INPUT', `calibrate --all-pairs labels images by their folder (one per person, as in LFW), but all ${images.length} images are in one folder`);
  }
  const dbPath = storeLocation(str(values.db));
  const session = await o.openPipeline(pipe);
  let emb: Awaited<ReturnType<typeof embedLfwImages>>;
  try {
    const bar = new ProgressBar(o.io, images.length, 'embedding', { quiet: !!values.quiet, unit: 'images' });
    emb = await embedLfwImages(session.pipeline, data, images, () => bar.tick());
  } finally {
    await session.close();
  }
  const score = (a: string, b: string) => {
    const x = emb.get(a)!.embedding;
    const y = emb.get(b)!.embedding;
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
    return s;
  };
  let scored: ScoredPair[];
  let source: string;
  if (values['all-pairs']) {
    // Many more impostor pairs than the list has, so stricter FARs become measurable.
    scored = [];
    for (let i = 0; i < images.length; i++) for (let j = i + 1; j < images.length; j++) scored.push({ score: score(images[i]!, images[j]!), same: who[i] === who[j] });
    source = `all ${scored.length} pairs of the ${images.length} images in ${pairsPath} (identity = folder name)`;
  } else {
    scored = pairs.map((p) => ({ score: score(p.a, p.b), same: p.same }));
    source = `the ${pairs.length} pairs of ${pairsPath}`;
  }
  const noFace = [...emb.entries()].filter(([, e]) => e.source === 'fallback').map(([p]) => p);
  const store = await openStore(dbPath);
  try {
    const c = await store.calibrateModel(pipe.model!.id, scored);
    const out = {
      model: pipe.model!.id,
      db: describeLocation(dbPath),
      source,
      genuinePairs: c.genuinePairs,
      impostorPairs: c.impostorPairs,
      thresholds: c.thresholds.map((t) => ({ far: t.far, threshold: t.threshold, falseAccepts: t.falseAccepts, measuredFar: t.measuredFar, tar: t.tar })),
      unsupported: c.unsupported,
      noFace: { count: noFace.length, images: noFace },
    };
    if (values.json) {
      o.io.out(`${JSON.stringify(out)}\n`);
      return;
    }
    const lines = [
      `calibrated ${pipe.model!.id} in ${dbPath} from ${source}: ${c.genuinePairs} genuine, ${c.impostorPairs} impostor pairs`,
      ...c.thresholds.map(
        (t) => `  FAR ${t.far.toExponential(0)}: threshold ${t.threshold.toFixed(4)} (${t.falseAccepts} false accepts, measured FAR ${t.measuredFar.toExponential(2)}, TAR ${t.tar === null ? 'n/a' : t.tar.toFixed(4)})`,
      ),
      ...c.unsupported.map((u) => `  FAR ${u.far.toExponential(0)}: not supported by the data (needs at least ${u.impostorPairsNeeded} impostor pairs)`),
    ];
    if (noFace.length) lines.push(`images without a detected face: ${noFace.length} (aligned on the mean landmarks of their image size)`);
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await store.close();
  }
}

// ---- eval-orl ----

async function evalOrlCommand(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('eval orl', args, {
    data: { type: 'string' },
    far: { type: 'string' },
    threshold: { type: 'string' },
    holdout: { type: 'string' },
    pad: { type: 'string' },
    calibration: { type: 'string' },
    db: { type: 'string' },
    'gallery-db': { type: 'string' },
    search: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    ...PIPELINE_OPTIONS,
  });
  if (positionals.length) throw new CosfaceError('BAD_INPUT', `eval orl: unexpected argument '${positionals[0]}'`);
  const search = str(values.search) ?? 'exact';
  if (search !== 'exact' && search !== 'index') throw new CosfaceError('BAD_INPUT', `eval orl: --search must be exact or index, got '${search}'`);
  const galleryDb = str(values['gallery-db']);
  const pipe = await pipelineOpts('eval orl', values, o);
  const data = str(values.data);
  if (!data) throw new CosfaceError('BAD_INPUT', 'eval orl: --data <dir> is required (the folder with identities.csv or att_faces/)');
  const { listOrlImages, embedOrlImages, scoreOrl } = await import('../eval/orl.js');
  const chosen = thresholdOpts('eval orl', values);
  const pad = values.pad === undefined ? 2 : Number(values.pad);
  if (!(pad >= 1 && pad <= 4)) throw new CosfaceError('BAD_INPUT', `eval orl: --pad must be a number from 1 to 4, got '${String(values.pad)}'`);
  const holdOut = intOpt('eval orl', values.holdout, 'holdout', 10, 1000);
  const calibration = str(values.calibration) ?? 'enrolled';
  if (calibration !== 'enrolled' && calibration !== 'stored') throw new CosfaceError('BAD_INPUT', `eval orl: --calibration must be enrolled or stored, got '${calibration}'`);
  const images = await listOrlImages(data);
  const store = calibration === 'stored' ? await openExistingStore(storeLocation(str(values.db))) : null;
  try {
    const session = await o.openPipeline(pipe);
    let emb;
    try {
      const bar = new ProgressBar(o.io, images.length, 'embedding', { quiet: !!values.quiet, unit: 'images' });
      emb = await embedOrlImages(session.pipeline, data, images, { pad, onProgress: () => bar.tick() });
    } finally {
      await session.close();
    }
    const r = await scoreOrl(images, emb, {
      ...chosen,
      holdOut,
      calibration: store ? { store, modelId: pipe.model!.id } : 'enrolled',
      search,
      ...(galleryDb ? { galleryDb } : {}),
    });
    if (values.json) {
      o.io.out(`${JSON.stringify({ ...r, pad, search, galleryDb: galleryDb ? describeLocation(galleryDb) : ':memory:' })}\n`);
      return;
    }
    const s = r.openSet;
    const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
    const lines = [
      `ORL: ${r.images} images of ${r.subjects} subjects (grey replicated to RGB, padded ${pad}x before detection); no face detected: ${r.noFace.count}`,
      `galleries in ${galleryDb ? describeLocation(galleryDb) : 'memory (SQLite)'}, ${search} search`,
      `closed set: enrolled shots ${r.enrollShots.join(',')}, ${r.closedSet.probes} probes: rank-1 ${pct(r.closedSet.rank1)} (${r.closedSet.correct}/${r.closedSet.probes})`,
      ...r.closedSet.misses.map((m) => `  miss: ${m.probe} (${m.subject}) -> ${m.got} ${m.score.toFixed(4)}`),
      `open set: ${s.holdOutSubjects.length} subjects held out (${s.holdOutSubjects[0]}..${s.holdOutSubjects[s.holdOutSubjects.length - 1]}), ${s.enrolledSubjects} enrolled; ` +
        `threshold ${s.threshold.toFixed(4)}${fmtFar(s.far)} (${s.thresholdSource})`,
      `  held-out probes: ${s.falseAccepts}/${s.heldOutProbes} accepted as someone (false-accept rate ${pct(s.falseAcceptRate)}), rejected ${pct(s.rejectionRate)}`,
      `  enrolled probes: ${s.correctAccepts}/${s.enrolledProbes} identified and accepted (${pct(s.detectionIdentificationRate)})`,
      `mean cosine: same subject ${r.meanGenuine.toFixed(3)}, different ${r.meanImpostor.toFixed(3)}`,
    ];
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await store?.close();
  }
}

// ---- bench-search ----

function benchDesign(v: string | boolean | undefined): 'faces' | 'centroids' | 'both' | 'codes' | undefined {
  if (v === undefined) return undefined;
  if (v === 'faces' || v === 'centroids' || v === 'both' || v === 'codes') return v;
  throw new CosfaceError('BAD_INPUT', `bench search: --design takes faces, centroids, both or codes, not '${String(v)}'`);
}

async function benchSearchCommand(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('bench search', args, {
    sizes: { type: 'string' },
    ef: { type: 'string' },
    m: { type: 'string' },
    'ef-construction': { type: 'string' },
    shards: { type: 'string' },
    design: { type: 'string' },
    'centroid-candidates': { type: 'string' },
    codes: { type: 'string' },
    'in-turn': { type: 'boolean' },
    queries: { type: 'string' },
    cache: { type: 'string' },
    db: { type: 'string' },
    'shared-index': { type: 'boolean' },
    'shared-other': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length) throw new CosfaceError('BAD_INPUT', `bench search: unexpected argument '${positionals[0]}'`);
  const pgLocation = str(values.db);
  if (pgLocation !== undefined && parseLocation(pgLocation).kind === 'sqlite') {
    throw new CosfaceError('BAD_INPUT', 'bench search: --db takes a Postgres location (pglite:<dir> or postgres://...) to run pgvector beside hnswlib');
  }
  const list = (v: string | boolean | undefined, name: string) =>
    v === undefined ? undefined : String(v).split(',').map((s) => intOpt('bench search', s.trim(), name, 1, 100_000_000));
  const { benchSearch, formatSearchBench } = await import('../bench/search-bench.js');
  const r = await benchSearch({
    sizes: list(values.sizes, 'sizes'),
    efs: list(values.ef, 'ef'),
    m: values.m === undefined ? undefined : intOpt('bench search', values.m, 'm', 16, 256),
    efConstruction: values['ef-construction'] === undefined ? undefined : intOpt('bench search', values['ef-construction'], 'ef-construction', 16, 100_000),
    shards: values.shards === undefined ? undefined : intOpt('bench search', values.shards, 'shards', 1, 64),
    design: benchDesign(values.design),
    codes: list(values.codes, 'codes'),
    ...(values['in-turn'] === true ? { inTurn: true } : {}),
    centroidCandidates: values['centroid-candidates'] === undefined ? undefined : String(values['centroid-candidates']).split(',').map((s) => intOpt('bench search', s.trim(), 'centroid-candidates', 1, 4_096)),
    queries: values.queries === undefined ? undefined : intOpt('bench search', values.queries, 'queries', 500, 1_000_000),
    cacheDir: str(values.cache),
    ...(pgLocation
      ? {
          pg: {
            location: pgLocation,
            sharedIndexCheck: values['shared-index'] === true,
            ...(values['shared-other'] !== undefined ? { sharedOther: intOpt('bench search', values['shared-other'], 'shared-other', 1, 10_000_000) } : {}),
          },
        }
      : {}),
    log: (s) => o.io.err(`${s}\n`),
  });
  o.io.out(values.json ? `${JSON.stringify(r)}\n` : `${formatSearchBench(r)}\n`);
}

// ---- table ----

/** The store commands, with their output and pipeline injectable (tests share one pipeline). */
export function storeCommands(opts: StoreCommandOptions = {}): Record<'enroll' | 'identify' | 'verify' | 'gallery' | 'calibrate' | 'eval-orl' | 'bench-search', Command> {
  const o: Required<StoreCommandOptions> = { io: opts.io ?? processIo, openPipeline: opts.openPipeline ?? openCliPipeline };
  return {
    enroll: keepAlive((a) => enroll(a, o)),
    identify: keepAlive((a) => identify(a, o)),
    verify: keepAlive((a) => verify(a, o)),
    gallery: keepAlive((a) => galleryCommand(a, o)),
    calibrate: keepAlive((a) => calibrateCommand(a, o)),
    'eval-orl': keepAlive((a) => evalOrlCommand(a, o)),
    'bench-search': keepAlive((a) => benchSearchCommand(a, o)),
  };
}

/**
 * Holds the event loop open while a command runs. The WASM worker pools unref their workers
 * between requests, and once in a few runs a command ended silently with exit code 0 halfway
 * (after the pipeline closed, before the store answered): nothing else was keeping Node alive.
 */
export function keepAlive(cmd: Command): Command {
  return async (args) => {
    const timer = setInterval(() => undefined, 1 << 30);
    try {
      await cmd(args);
    } finally {
      clearInterval(timer);
    }
  };
}
