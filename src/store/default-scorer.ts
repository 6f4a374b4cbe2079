// Picks the exact scorer a store uses when none is given: the WASM backend's (SIMD, worker pool)
// for scans big enough to repay the hand-off to workers, the plain TypeScript one for small ones
// and wherever the WASM module cannot start. A gallery's rows for repeated exact scans go resident
// into a shared WASM memory that the pool's workers scan in place (WasmPoolGallery).
import type { TopK } from '../backend/backend.js';
import { arrayRows, scoreExactTs, type ExactRowsFactory, type ExactScorer } from './exact-scorer.js';

/** Below this many multiply-adds the TypeScript loop answers before a worker message would. */
const WASM_MIN_MACS = 1 << 20;

export interface NamedScorer {
  name: string;
  /** For the vectors of one call (re-rank, verify). */
  scorer: ExactScorer;
  /** For a gallery's exact scans, which keep its vectors. */
  rows: ExactRowsFactory;
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
      // The probe started the pool; a shared-memory gallery proves the workers can scan one.
      const rows = await wasmExactRows();
      await (await rows(2, 1)).dispose();
      return { name: 'wasm (typescript below 1M multiply-adds; galleries resident in shared WASM memory)', scorer, rows };
    } catch {
      return { name: 'typescript', scorer: scoreExactTs, rows: arrayRows(scoreExactTs) };
    }
  })();
  return cached;
}

/**
 * Rows for a gallery's exact scans resident in a shared WASM memory on the process-wide pool of
 * the WASM score(): scans of at least splitFrom multiply-adds (default 4M) split over its
 * workers, smaller ones on the calling thread. WASM_ERROR where the module or the shared-memory
 * build cannot load.
 */
export async function wasmExactRows(opts: { splitFrom?: number } = {}): Promise<ExactRowsFactory> {
  const wasm = await import('../backend/wasm/index.js');
  return async (dim, capacity) => {
    const g = await wasm.upload(new Float32Array(0), 0, dim, { capacity, ...opts });
    return {
      get n() {
        return g.n;
      },
      append: (r, count) => g.append(r, count),
      removeSwap: (row) => g.removeSwap(row),
      score: (queries, q, k) => g.score(queries, q, k),
      dispose: () => g.dispose(),
    };
  };
}
