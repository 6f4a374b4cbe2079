// The server's way into the face pipeline: photos from concurrent requests wait in one queue and
// are handed over in batches collected during a short window, so the backend never runs two
// pipelines at once and a pipeline that embeds several photos per call gets full batches.
import { CosfaceError } from '../errors.js';
import type { Face } from '../pipeline/face-pipeline.js';
import type { Metrics } from './metrics.js';

/** What the server needs from a pipeline; facesInPhotos, when present, takes a whole batch at once. */
export interface PhotoPipeline {
  facesInPhoto(photo: Uint8Array): Promise<Face[]>;
  facesInPhotos?(photos: Uint8Array[]): Promise<(Face[] | Error)[]>;
  dispose?(): void;
}

export interface FaceFinderOptions {
  /** How long the first photo of a batch waits for others (default 2 ms). */
  windowMs?: number;
  /** Most photos per batch (default 16). */
  maxBatch?: number;
  /**
   * Most photos waiting (default 256): past it a request fails at once with OVERLOADED rather
   * than holding its image in memory behind minutes of work.
   */
  maxQueue?: number;
  metrics?: Metrics;
}

interface Pending {
  photo: Uint8Array;
  resolve: (faces: Face[]) => void;
  reject: (e: unknown) => void;
}

export class FaceFinder {
  private readonly queue: Pending[] = [];
  private running = false;
  private pipeline: Promise<PhotoPipeline> | null = null;
  private readonly windowMs: number;
  private readonly maxBatch: number;
  private readonly maxQueue: number;

  constructor(
    private readonly load: () => Promise<PhotoPipeline>,
    private readonly opts: FaceFinderOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 2;
    this.maxBatch = opts.maxBatch ?? 16;
    this.maxQueue = opts.maxQueue ?? 256;
    if (!(this.windowMs >= 0) || !(this.maxBatch >= 1) || !(this.maxQueue >= 1)) {
      throw new RangeError('FaceFinder: windowMs >= 0, maxBatch >= 1 and maxQueue >= 1');
    }
  }

  /** Every face in a photo, largest first. */
  find(photo: Uint8Array): Promise<Face[]> {
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new CosfaceError('OVERLOADED', `${this.queue.length} photos are already waiting for the face pipeline; try again shortly`));
    }
    return new Promise<Face[]>((resolve, reject) => {
      this.queue.push({ photo, resolve, reject });
      if (!this.running) {
        this.running = true;
        setTimeout(() => void this.drain(), this.windowMs);
      }
    });
  }

  /** The pipeline, loaded on first use (loading compiles three networks: seconds). */
  ready(): Promise<PhotoPipeline> {
    if (!this.pipeline) {
      this.pipeline = this.load();
      this.pipeline.catch(() => (this.pipeline = null)); // let a later request retry
    }
    return this.pipeline;
  }

  get loaded(): boolean {
    return this.pipeline !== null;
  }

  async dispose(): Promise<void> {
    const p = this.pipeline;
    this.pipeline = null;
    if (p) (await p.catch(() => null))?.dispose?.();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        let pipeline: PhotoPipeline;
        try {
          pipeline = await this.ready();
        } catch (e) {
          for (const p of batch) p.reject(e);
          continue;
        }
        if (pipeline.facesInPhotos && batch.length > 1) {
          let faces = 0;
          let results: (Face[] | Error)[];
          try {
            results = await pipeline.facesInPhotos(batch.map((p) => p.photo));
          } catch (e) {
            results = batch.map(() => e as Error);
          }
          batch.forEach((p, i) => {
            const r = results[i]!;
            if (r instanceof Error) p.reject(r);
            else {
              faces += r.length;
              p.resolve(largestFirst(r));
            }
          });
          this.opts.metrics?.observeBatch(batch.length, faces);
        } else {
          for (const p of batch) {
            try {
              const r = await pipeline.facesInPhoto(p.photo);
              this.opts.metrics?.observeBatch(1, r.length);
              p.resolve(largestFirst(r));
            } catch (e) {
              p.reject(e);
            }
          }
        }
      }
    } finally {
      this.running = false;
    }
  }
}

function largestFirst(faces: Face[]): Face[] {
  return [...faces].sort((a, b) => b.box[2] * b.box[3] - a.box[2] * a.box[3]);
}
