// The face embedder: a model (the vendored MobileFaceNet by default) planned onto a backend,
// with its output L2-normalised in the graph. embed() takes aligned 112x112 RGB crops.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { Backend, CompiledGraph } from './backend/backend.js';
import { createBackend, loadModelFile, runGraph, type BackendChoice, type BackendOptions } from './engine.js';
import { CosfaceError } from './errors.js';
import { numel, type Graph } from './graph/ir.js';
import { appendL2Normalize, optimizeGraph, type OptimizeReport } from './graph/passes.js';
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
}

export class Embedder {
  private constructor(
    readonly backend: Backend,
    readonly graph: Graph,
    readonly compiled: CompiledGraph,
    readonly optimizeReport: OptimizeReport,
    private readonly ownsBackend: boolean,
  ) {}

  static async create(opts: EmbedderOptions = {}): Promise<Embedder> {
    const graph = await loadModelFile(opts.modelPath ?? DEFAULT_EMBEDDER_PATH);
    const report = optimizeGraph(graph);
    appendL2Normalize(graph);
    const backend = opts.backendInstance ?? (await createBackend(opts.backend ?? 'auto', opts));
    try {
      const compiled = await backend.compile(graph);
      return new Embedder(backend, graph, compiled, report, !opts.backendInstance);
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
