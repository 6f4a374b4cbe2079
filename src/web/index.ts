// cosface in a browser (bundled to dist/web/cosface.js, served by the app at /app/cosface.js): the
// face pipeline on the device (WebGPU, or the WASM kernels on Web Workers), its models fetched from
// the server once and kept in Cache Storage. Photos never leave the page; only embeddings do, if
// the caller sends them anywhere.
import type { Backend } from '../backend/backend.js';
import type { RgbImage } from '../pipeline/decode.js';
import { createImagePipeline, pipelineGraphsFromFiles, PIPELINE_MODEL_FILES, type Face, type ImagePipeline, type ImagePipelineOptions } from '../pipeline/image-pipeline.js';
import type { TfjsModelJson } from '../import/tfjs/read-tfjs.js';
import { AssetLoader, type AssetStats } from './assets.js';
import { createBrowserBackend, parseBrowserBackend, type BrowserBackendChoice } from './backend.js';
import { decodePhoto, type PhotoSource } from './decode.js';

export { CosfaceError, isCosfaceError } from '../errors.js';
export type { Face } from '../pipeline/image-pipeline.js';
export type { RgbImage } from '../pipeline/decode.js';
export { decodeBitmap, decodePhoto, rgbPixels, type PhotoSource } from './decode.js';
export { parseBrowserBackend, BROWSER_BACKENDS, type BrowserBackendChoice } from './backend.js';

export interface LoadFacePipelineOptions extends Omit<ImagePipelineOptions, 'backend'> {
  /** 'auto' (default), 'webgpu' or 'wasm'. */
  backend?: BrowserBackendChoice;
  /** Where manifest.json, models/ and wasm/ are (default: the folder this module was loaded from, e.g. /app/). */
  baseUrl?: string | URL;
  /** Web Workers for the WASM backend (default: navigator.hardwareConcurrency, at most 8). */
  workers?: number;
  /** Keep the downloaded files in Cache Storage (default true). */
  cache?: boolean;
  /** Largest photo, width * height (default 50 megapixels). */
  maxPixels?: number;
}

/** Milliseconds spent loading, by step. */
export interface LoadTimings {
  /** Manifest, models and kernels read (network or Cache Storage). */
  fetch: number;
  /** Models parsed and optimised, backend started. */
  prepare: number;
  /** Networks planned, weights uploaded, pipelines compiled (asynchronously). */
  compile: number;
  /** One blank run of each network. */
  warmUp: number;
  total: number;
}

export interface BrowserFacePipeline extends ImagePipeline {
  readonly backend: Backend;
  /** The backend and adapter in words, with why auto chose it. */
  describe(): string;
  readonly timings: LoadTimings;
  readonly assets: AssetStats;
  /** Every face in a photo file, bitmap or ImageData, with box, landmarks, quality and embedding. */
  facesInPhoto(photo: PhotoSource): Promise<Face[]>;
}

const now = () => performance.now();

export async function loadFacePipeline(opts: LoadFacePipelineOptions = {}): Promise<BrowserFacePipeline> {
  const t0 = now();
  const here = new URL('./', import.meta.url);
  const base = new URL(opts.baseUrl ?? here, location.href);
  const choice = parseBrowserBackend(opts.backend);
  const assets = await AssetLoader.open(base, opts.cache ?? true);
  const tfjs = async (name: string) => {
    const json = await assets.json<TfjsModelJson>(`models/${name}`);
    const parts = await Promise.all(json.weightsManifest.flatMap((g) => g.paths).map((p) => assets.bytes(`models/${p}`)));
    const weights = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
    let off = 0;
    for (const p of parts) {
      weights.set(p, off);
      off += p.byteLength;
    }
    return { json, weights };
  };
  const [detector, mesh, embedder] = await Promise.all([tfjs(PIPELINE_MODEL_FILES.detector), tfjs(PIPELINE_MODEL_FILES.mesh), assets.bytes(`models/${PIPELINE_MODEL_FILES.embedder}`)]);
  const t1 = now();
  const graphs = pipelineGraphsFromFiles({ detectorJson: detector.json, detectorWeights: detector.weights, meshJson: mesh.json, meshWeights: mesh.weights, embedder });
  const { backend, reason } = await createBrowserBackend(choice, { assets, workerUrl: new URL('wasm-worker.js', here), ...(opts.workers !== undefined ? { workers: opts.workers } : {}) });
  const t2 = now();
  let pipeline: ImagePipeline;
  try {
    pipeline = await createImagePipeline(graphs, { ...opts, backend });
  } catch (e) {
    await backend.dispose();
    throw e;
  }
  const t3 = now();
  await pipeline.warmUp();
  const t4 = now();
  const timings: LoadTimings = { fetch: t1 - t0, prepare: t2 - t1, compile: t3 - t2, warmUp: t4 - t3, total: t4 - t0 };
  return {
    ...pipeline,
    backend,
    describe: () => `${backend.describe()}${reason ? ` [auto: ${reason}]` : ''}`,
    timings,
    assets: assets.stats,
    async facesInPhoto(photo: PhotoSource) {
      const img: RgbImage = await decodePhoto(photo, opts.maxPixels);
      return pipeline.facesInImage(img);
    },
    dispose() {
      pipeline.dispose();
      void backend.dispose();
    },
  };
}
