// De-duplication jobs of the HTTP API: POST /v1/dedupe queues one, a single worker runs them one
// after another (they share the server's face pipeline), progress and the result go to the jobs
// table for GET /v1/jobs/:id. A job a stopped server left unfinished is marked failed at start;
// posting it again resumes, because the library keeps every photo already embedded.
import { stat } from 'node:fs/promises';
import { openDatabase, type OpenedDb } from '../db/open-db.js';
import { toUnitVector } from '../store/embedding.js';
import { clusterThreshold, clusterUploadedFaces, runDedupe, dedupeJson, type DedupeProgress, type UploadedFace } from '../dedupe/run-dedupe.js';
import { CosfaceError, isCosfaceError } from '../errors.js';
import { JobStore, type JobInfo } from '../jobs/job-store.js';
import { PhotoLibrary } from '../library/library-store.js';
import type { ServerDeps } from './deps.js';

export const DEDUPE_JOB = 'dedupe';

export interface DedupeJobParams {
  /** Folders on the server; or */
  paths?: string[];
  /** faces whose embeddings the client computed (clustered only: nothing stored, no near duplicates). */
  faces?: UploadedFace[];
  library: string;
  threshold?: number;
  far?: number;
}

export class DedupeJobs {
  private chain: Promise<void> = Promise.resolve();
  private readonly stop = new AbortController();
  /** The jobs' and the library's own connection to the store's SQLite file, opened on first use. */
  private opened: OpenedDb | null = null;
  private jobs: JobStore | null = null;

  constructor(private readonly deps: ServerDeps) {}

  /** The job table; BAD_INPUT on a store that is not a SQLite file (the library lives there for now). */
  get store(): JobStore {
    if (!this.jobs) {
      const path = this.deps.store.dbPath;
      if (!path) throw new CosfaceError('BAD_INPUT', 'de-duplication jobs need the SQLite file store for now');
      this.opened = openDatabase(path);
      this.jobs = new JobStore(this.opened);
      this.jobs.failUnfinished(DEDUPE_JOB, 'interrupted: the server stopped before the job finished (post it again: photos already embedded are kept)');
    }
    return this.jobs;
  }

  /** Checks the request, queues the job and returns it; the work happens after the response. */
  async submit(p: DedupeJobParams): Promise<JobInfo> {
    if ((p.paths === undefined) === (p.faces === undefined)) throw new CosfaceError('BAD_INPUT', 'give paths (folders on the server) or faces (uploaded embeddings), not both');
    for (const [i, f] of (p.faces ?? []).entries()) {
      // Checked now, so a bad upload is a 400 rather than a failed job.
      toUnitVector(f.embedding, this.deps.model.dimension, `faces[${i}].embedding`); // DIMENSION_MISMATCH, or BAD_INPUT for NaN or zero
    }
    for (const path of p.paths ?? []) {
      const st = await stat(path).catch((e: NodeJS.ErrnoException) => e);
      if (st instanceof Error) throw new CosfaceError('BAD_INPUT', `${path}: ${st.code === 'ENOENT' ? 'no such file or folder on the server' : `cannot read (${st.code})`}`);
    }
    const threshold = await clusterThreshold(await this.deps.store.thresholds(this.deps.model.id), p, this.deps.model.id);
    const job = this.store.create(DEDUPE_JOB, p.faces ? { faces: p.faces.length, library: p.library, ...(p.threshold !== undefined ? { threshold: p.threshold } : {}), ...(p.far !== undefined ? { far: p.far } : {}) } : { ...p });
    this.chain = this.chain.then(() => this.run(job.id, p, threshold));
    return job;
  }

  private async run(id: number, p: DedupeJobParams, threshold: number | undefined): Promise<void> {
    if (this.stop.signal.aborted) {
      this.store.fail(id, 'interrupted: the server stopped before the job started');
      return;
    }
    this.store.start(id);
    let last = 0;
    try {
      if (p.faces) {
        this.store.progress(id, 0, p.faces.length);
        const r = clusterUploadedFaces(p.faces, this.deps.model.dimension, threshold);
        this.store.progress(id, p.faces.length, p.faces.length);
        const { library: _unused, ...json } = dedupeJson(r);
        void _unused;
        this.store.finish(id, json);
        return;
      }
      const library = PhotoLibrary.open(this.opened!, p.library, this.deps.model);
      const r = await runDedupe({
        roots: p.paths!,
        library,
        threshold,
        signal: this.stop.signal,
        facesOf: (bytes) => this.deps.finder.find(bytes),
        onProgress: (x: DedupeProgress) => {
          const now = Date.now();
          if (x.phase === 'embed' && (now - last >= 500 || x.done === x.total)) {
            last = now;
            this.store.progress(id, x.done, x.total);
          }
        },
      });
      this.store.finish(id, dedupeJson(r));
    } catch (e) {
      this.store.fail(id, isCosfaceError(e) ? `${e.code}: ${e.message}` : `INTERNAL: ${(e as Error).message}`);
      if (!isCosfaceError(e)) process.stderr.write(`[dedupe job ${id}] ${(e as Error).stack ?? String(e)}\n`);
    }
  }

  /** Stops after the current batch of photos; the running job ends failed (resumable). */
  async close(): Promise<void> {
    this.stop.abort();
    await this.chain;
    this.opened?.sqlite.close();
    this.opened = null;
    this.jobs = null;
  }

  /** Resolves when every queued job has ended (tests). */
  idle(): Promise<void> {
    return this.chain;
  }
}
