// The compiled WebAssembly the edge entries need: the cosface kernels (build/cosface.wasm, plain
// SIMD: runs on V8 and JavaScriptCore alike) and the two photo codecs. Bun and Deno read and compile
// the files at startup; workerd imports them as modules (workerd.ts). Runtime-neutral.
import { createInlineWasmBackend } from '../backend/wasm/wasm-inline.js';
import type { TfjsModelJson } from '../import/tfjs/read-tfjs.js';
import { WasmImageDecoder } from '../pipeline/decode-wasm.js';
import { createImagePipeline, pipelineGraphsFromFiles, PIPELINE_MODEL_FILES, type PipelineModelFiles } from '../pipeline/image-pipeline.js';
import type { PhotoPipeline } from '../server/face-finder.js';

export interface EdgeWasmModules {
  kernels: WebAssembly.Module;
  jpeg: WebAssembly.Module;
  png: WebAssembly.Module;
}

/** Paths relative to src/runtime/ (where the Bun and Deno entries are). */
export const WASM_FILES = {
  kernels: '../../build/cosface.wasm',
  jpeg: '../../node_modules/@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm',
  png: '../../node_modules/@jsquash/png/codec/pkg/squoosh_png_bg.wasm',
} as const;

export async function readWasmModules(read: (relativeToRuntimeDir: string) => Promise<Uint8Array>): Promise<EdgeWasmModules> {
  const [kernels, jpeg, png] = await Promise.all([WASM_FILES.kernels, WASM_FILES.jpeg, WASM_FILES.png].map(async (f) => WebAssembly.compile((await read(f)) as BufferSource)));
  return { kernels: kernels!, jpeg: jpeg!, png: png! };
}

export function photoDecoder(m: EdgeWasmModules): WasmImageDecoder {
  return new WasmImageDecoder({ jpeg: m.jpeg, png: m.png });
}

/** The vendored models (models/, relative to src/runtime/), read with the runtime's file API. */
export async function readModelFiles(read: (relativeToRuntimeDir: string) => Promise<Uint8Array>): Promise<PipelineModelFiles> {
  const tfjs = async (name: string) => {
    const json = JSON.parse(new TextDecoder().decode(await read(`../../models/${name}`))) as TfjsModelJson;
    const parts: Uint8Array[] = [];
    for (const g of json.weightsManifest ?? []) for (const p of g.paths ?? []) parts.push(await read(`../../models/${p}`));
    const weights = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    for (const p of parts) {
      weights.set(p, at);
      at += p.byteLength;
    }
    return { json, weights };
  };
  const detector = await tfjs(PIPELINE_MODEL_FILES.detector);
  const mesh = await tfjs(PIPELINE_MODEL_FILES.mesh);
  const embedder = await read(`../../models/${PIPELINE_MODEL_FILES.embedder}`);
  return { detectorJson: detector.json, detectorWeights: detector.weights, meshJson: mesh.json, meshWeights: mesh.weights, embedder };
}

/**
 * The face pipeline on the in-process WASM kernels (no workers) with the WASM codecs, loaded on
 * the first photo: BlazeFace, FaceMesh and MobileFaceNet as on Node, one photo at a time on the
 * calling thread (a photo takes the event loop for its whole run).
 */
export function edgePhotoPipeline(m: EdgeWasmModules, models: () => Promise<PipelineModelFiles>, o: { maxPixels?: number } = {}): () => Promise<PhotoPipeline> {
  return async () => {
    const decoder = photoDecoder(m);
    const backend = createInlineWasmBackend(m.kernels);
    const pipeline = await createImagePipeline(pipelineGraphsFromFiles(await models()), { backend });
    return {
      async facesInPhoto(photo: Uint8Array) {
        return pipeline.facesInImage(await decoder.decode(photo, o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}));
      },
      dispose() {
        pipeline.dispose();
        void backend.dispose();
      },
    };
  };
}
