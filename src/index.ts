// cosface as a library: the public API.
export { CosfaceError, isCosfaceError, type ErrorCode } from './errors.js';
export { createBackend, loadModelFile, parseBackendChoice, runGraph, BACKEND_CHOICES, type BackendChoice, type BackendOptions } from './engine.js';
export { Embedder, DEFAULT_EMBEDDER_PATH, DEFAULT_EMBEDDER_ID, type EmbedderOptions } from './embedder.js';
export type { Backend, BackendName, CompiledGraph, TopK } from './backend/backend.js';
export type { Graph, GraphNode, Activation, Pads } from './graph/ir.js';
export { optimizeGraph, appendL2Normalize } from './graph/passes.js';
export { readTflite } from './import/tflite/read-tflite.js';
export { openStore, storeLocation, calibrate, type Store, type StoreOptions } from './store/index.js';
export { createFacePipeline, faceJson, type Face, type FacePipeline, type FacePipelineOptions } from './pipeline/face-pipeline.js';
export { decodeImage } from './pipeline/decode.js';
export { createApp, startServer, createApiKey } from './server/index.js';
export { createWasmBackend, score, upload as uploadWasmGallery, WasmGallery, WasmPoolGallery } from './backend/wasm/index.js';
export { createWebGpuBackend } from './backend/webgpu/webgpu-backend.js';
export { createWebGpuScorer } from './backend/webgpu/webgpu-score.js';
