// Public surface of the WebAssembly CPU backend.
export { createWasmBackend, type WasmBackend, type WasmBackendOptions } from './wasm-backend.js';
export { score, WasmScorer } from './wasm-score.js';
