// Entry point of the WebAssembly kernels (build/cosface.wasm): every export is a plain function
// over pointers into linear memory; the JS side (src/backend/wasm) owns allocation.
export { heapBase } from './common';
export { gemm } from './gemm';
export { im2col, depthwise } from './conv';
export { add, affine, activation, pad, l2normalize } from './elementwise';
export { scoreTopK, scoreTopKI8, scoreTopKF16, packRows, topKFromScoresT, sumFloats } from './score';
export { maxPool2d, padChannels, sigmoid, copyBlocks } from './detector';
export { warp } from './warp';
