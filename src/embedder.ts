// The face embedder: a model (the vendored MobileFaceNet by default) planned onto a backend,
// with its output L2-normalised in the graph. embed() takes aligned 112x112 RGB crops.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { Backend, CompiledGraph } from './backend/backend.js';
import { createBackend, loadModelFile, runGraph, type BackendChoice, type BackendOptions } from './engine.js';
import { CosfaceError } from './errors.js';
import { numel, type Graph } from './graph/ir.js';
import { appendL2Normalize, optimizeGraph, permuteInputChannels, prependInputAffine, type OptimizeReport } from './graph/passes.js';
import { resolveModelMetadata, type MetadataOverrides, type ModelMetadata } from './import/model-metadata.js';
import { decodeImage } from './pipeline/decode.js';
import { DEFAULT_EMBEDDER_ID } from './model-id.js';

/** Repository root, from src/ (tsx) or dist/src/ (compiled). */
export const packageRoot = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.basename(path.dirname(here)) === 'dist' ? path.resolve(here, '../..') : path.resolve(here, '..');
})();

export const DEFAULT_EMBEDDER_PATH = path.join(packageRoot, 'models/mobilefacenet-arcface.tflite');
export { DEFAULT_EMBEDDER_ID } from './model-id.js';

export interface EmbedderOptions extends BackendOptions {
  backend?: BackendChoice;
  /** Use this backend instead of creating one (it is not disposed with the embedder). */
  backendInstance?: Backend;
  modelPath?: string;
  /** Input normalisation and channel order (flags); they win over a sidecar <model>.json. */
  metadata?: MetadataOverrides;
}

/**
 * An embedder graph as the backends run it: the metadata's normalisation in front, the passes,
 * the channel order folded into the first convolutions, L2 normalisation at the end.
 */
export function prepareEmbedderGraph(graph: Graph, meta: ModelMetadata): OptimizeReport {
  const rgb = graph.input.shape[graph.input.shape.length - 1] === 3;
  const perm = meta.channels === 'bgr' ? [2, 1, 0] : [0, 1, 2];
  if (rgb) prependInputAffine(graph, perm.map((p) => meta.inputMean[p]!), perm.map((p) => meta.inputStd[p]!));
  else if (meta.channels === 'bgr' || meta.inputMean.some((v) => v !== 0) || meta.inputStd.some((v) => v !== 1)) {
    throw new CosfaceError('UNSUPPORTED_MODEL', `input normalisation and channel order apply to 3-channel inputs; the model takes [${graph.input.shape}]`);
  }
  const report = optimizeGraph(graph);
  if (rgb) permuteInputChannels(graph, perm);
  appendL2Normalize(graph);
  return report;
}

export class Embedder {
  private constructor(
    readonly backend: Backend,
    readonly graph: Graph,
    readonly compiled: CompiledGraph,
    readonly optimizeReport: OptimizeReport,
    private readonly ownsBackend: boolean,
    readonly metadata: ModelMetadata,
  ) {}

  static async create(opts: EmbedderOptions = {}): Promise<Embedder> {
    const modelPath = opts.modelPath ?? DEFAULT_EMBEDDER_PATH;
    const graph = await loadModelFile(modelPath);
    const metadata = await resolveModelMetadata(modelPath, graph, opts.metadata);
    const report = prepareEmbedderGraph(graph, metadata);
    const backend = opts.backendInstance ?? (await createBackend(opts.backend ?? 'auto', opts));
    try {
      const compiled = await backend.compile(graph);
      return new Embedder(backend, graph, compiled, report, !opts.backendInstance, metadata);
    } catch (e) {
      if (!opts.backendInstance) await backend.dispose();
      throw e;
    }
  }

  /** [height, width, channels] of one input crop. */
  get inputShape(): number[] {
    return this.graph.input.shape;
  }

  get dim(): number {
    return numel(this.graph.output.shape);
  }

  /** n aligned crops (n x H x W x 3 float RGB 0..255, back to back) -> n x dim unit vectors. */
  async embed(crops: Float32Array, n: number): Promise<Float32Array> {
    return runGraph(this.compiled, crops, n);
  }

  /**
   * Reads an already aligned face crop (PNG, JPEG or WebP) as the model's input: RGB 0..255,
   * resized (bilinear) to the model's input size only when it is another size.
   */
  async loadAlignedCrop(input: string | Uint8Array): Promise<Float32Array> {
    const img = await decodeImage(input);
    const [h, w] = this.inputShape as [number, number, number];
    let data: Uint8Array = img.data;
    if (img.width !== w || img.height !== h) {
      data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).resize(w, h, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
    }
    if (data.length !== w * h * 3) throw new CosfaceError('BAD_IMAGE', `aligned crop: expected ${w}x${h} RGB`);
    return Float32Array.from(data);
  }

  async dispose(): Promise<void> {
    this.compiled.dispose();
    if (this.ownsBackend) await this.backend.dispose();
  }
}
