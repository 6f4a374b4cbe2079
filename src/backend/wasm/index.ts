// Public surface of the WebAssembly CPU backend: the Backend factory, exact top-k scoring, and
// which kernel build (plain SIMD or relaxed-SIMD FMA) this runtime can run.
export { createWasmBackend, type WasmBackend, type WasmBackendOptions } from './wasm-backend.js';
export { score, upload, WasmGallery, WasmPoolGallery, WasmScorer, type PoolGalleryOptions, type WasmGalleryOptions } from './wasm-score.js';
export { relaxedSimdSupported, type WasmSimd, type WasmSimdChoice } from './wasm-kernels.js';
