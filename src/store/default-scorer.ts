// Picks the exact scorer a store uses when none is given: the WASM backend's (SIMD, worker pool)
// for scans big enough to repay the hand-off to workers, the plain TypeScript one for small ones
// and wherever the WASM module cannot start.
import type { TopK } from '../backend/backend.js';
import { scoreExactTs, type ExactScorer } from './exact-scorer.js';

/** Below this many multiply-adds the TypeScript loop answers before a worker message would. */
const WASM_MIN_MACS = 1 << 20;

export interface NamedScorer {
  name: string;
  scorer: ExactScorer;
}

let cached: Promise<NamedScorer> | undefined;

/** The default scorer, resolved once per process. */
export function defaultScorer(): Promise<NamedScorer> {
  cached ??= (async () => {
    try {
      const wasm = await import('../backend/wasm/index.js');
      // A real call proves the module is built and its workers start.
      const probe: TopK = await wasm.score(new Float32Array([1, 0]), 1, new Float32Array([0, 1, 1, 0]), 2, 2, 1);
      if (probe.indices[0] !== 1) throw new Error('WASM scorer answered wrongly');
      const scorer: ExactScorer = (queries, q, gallery, n, dim, k) =>
        q * n * dim < WASM_MIN_MACS ? scoreExactTs(queries, q, gallery, n, dim, k) : wasm.score(queries, q, gallery, n, dim, k);
      return { name: 'wasm (typescript below 1M multiply-adds)', scorer };
    } catch {
      return { name: 'typescript', scorer: scoreExactTs };
    }
  })();
  return cached;
}
