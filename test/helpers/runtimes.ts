// The runtime launcher lives with the benchmarks (src/bench/runtime-process.ts); the conformance suite uses it too.
export * from '../../src/bench/runtime-process.js';
