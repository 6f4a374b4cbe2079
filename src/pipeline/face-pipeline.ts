// Photo -> faces in Node: the image pipeline of image-pipeline.ts with the vendored models read
// from models/ and photos decoded by sharp (decode.ts). Browsers use src/web/ instead.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CosfaceError } from '../errors.js';
import type { TfjsModelJson } from '../import/tfjs/read-tfjs.js';
import { prepareEmbedderGraph } from '../embedder.js';
import { loadModelFile } from '../engine.js';
import { resolveModelMetadata, type MetadataOverrides } from '../import/model-metadata.js';
import { decodeImage, type DecodeOptions } from './decode.js';
import { createImagePipeline, pipelineGraphsFromFiles, PIPELINE_MODEL_FILES, type Face, type FacesOptions, type ImagePipeline, type ImagePipelineOptions, type PipelineGraphs } from './image-pipeline.js';
import { timed } from '../stage-timer.js';

export { faceJson, type Face, type FacesOptions, type GraphCompiler } from './image-pipeline.js';

export interface FacePipelineOptions extends ImagePipelineOptions {
  /** Folder with blazeface-back.json/.bin, facemesh.json/.bin, mobilefacenet-arcface.tflite. */
  modelDir?: string;
  /** Another face embedder (TFLite or ONNX, 112x112 RGB input) in place of the vendored one. */
  embedder?: { path: string; metadata?: MetadataOverrides };
  decode?: DecodeOptions;
}

export interface FacePipeline extends ImagePipeline {
  /** Every face in a photo (file path or bytes), left to right; a timer also receives the decode stage. */
  facesInPhoto(photo: string | Uint8Array, opts?: FacesOptions): Promise<Face[]>;
  /**
   * Every face of several photos with one network call per step for all of them (facesInImages);
   * a photo that cannot be decoded or fails gives its Error. The server's FaceFinder hands it the
   * photos of concurrent requests.
   */
  facesInPhotos(photos: readonly (string | Uint8Array)[], opts?: FacesOptions): Promise<(Face[] | Error)[]>;
}

/** The project's vendored models folder (found from this file, in src/ or in dist/src/). */
export function defaultModelDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'models', 'blazeface-back.json'))) return join(dir, 'models');
    dir = dirname(dir);
  }
  throw new CosfaceError('BAD_MODEL', 'cannot find the models/ folder (blazeface-back.json); pass modelDir');
}

/** A TF.js model.json and its weight files (concatenated in manifest order) from a folder. */
async function readTfjsFiles(dir: string, name: string): Promise<{ json: TfjsModelJson; weights: Uint8Array }> {
  const jsonPath = join(dir, name);
  let json: TfjsModelJson;
  try {
    json = JSON.parse(await readFile(jsonPath, 'utf8')) as TfjsModelJson;
  } catch (e) {
    throw new CosfaceError('BAD_MODEL', `TF.js model ${jsonPath}: cannot read model.json (${(e as Error).message})`, { cause: e });
  }
  const parts: Uint8Array[] = [];
  for (const g of json.weightsManifest ?? []) for (const p of g.paths ?? []) parts.push(await readFile(join(dir, p)));
  const weights = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    weights.set(p, off);
    off += p.byteLength;
  }
  return { json, weights };
}

/** The three graphs, imported and optimised, before compilation. */
export async function loadPipelineGraphs(modelDir = defaultModelDir()): Promise<PipelineGraphs> {
  const detector = await readTfjsFiles(modelDir, PIPELINE_MODEL_FILES.detector);
  const mesh = await readTfjsFiles(modelDir, PIPELINE_MODEL_FILES.mesh);
  const embedder = await readFile(join(modelDir, PIPELINE_MODEL_FILES.embedder));
  return pipelineGraphsFromFiles({ detectorJson: detector.json, detectorWeights: detector.weights, meshJson: mesh.json, meshWeights: mesh.weights, embedder });
}

export async function createFacePipeline(opts: FacePipelineOptions): Promise<FacePipeline> {
  const graphs = await loadPipelineGraphs(opts.modelDir);
  if (opts.embedder) {
    const graph = await loadModelFile(opts.embedder.path);
    prepareEmbedderGraph(graph, await resolveModelMetadata(opts.embedder.path, graph, opts.embedder.metadata));
    graphs.embedder = graph;
  }
  const pipeline = await createImagePipeline(graphs, opts);
  return {
    ...pipeline,
    async facesInPhoto(photo, o = {}) {
      const img = await timed(o.timer, 'decode', () => decodeImage(photo, opts.decode));
      return pipeline.facesInImage(img, o);
    },
    async facesInPhotos(photos, o = {}) {
      const decoded = await Promise.all(
        photos.map((p) => timed(o.timer, 'decode', () => decodeImage(p, opts.decode)).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))))),
      );
      const imgs = decoded.filter((d): d is Awaited<ReturnType<typeof decodeImage>> => !(d instanceof Error));
      const found = await pipeline.facesInImages(imgs, o);
      let k = 0;
      return decoded.map((d) => (d instanceof Error ? d : found[k++]!));
    },
  };
}
