// Which hnswlib-node addon this process loads: the package's own build (node-gyp's default flags,
// SSE distance kernels), or the one our postinstall rebuilt (scripts/hnswlib-avx2.mjs: -mavx2 -mfma,
// and the memory-access patches of scripts/hnswlib-patches.mjs), as recorded beside the addon.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface HnswlibBuild {
  /** 'avx2' when our postinstall rebuilt the addon, 'default' for the package's own build. */
  simd: 'avx2' | 'default';
  /** The patches compiled in (`hugepages`, `gather`). */
  patches: string[];
  /** Why the patches were left out, when they were. */
  unpatched?: string;
}

export function hnswlibBuild(): HnswlibBuild {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve('hnswlib-node/package.json'));
    const b = JSON.parse(readFileSync(join(pkg, 'build', 'Release', 'cosface-build.json'), 'utf8')) as Partial<HnswlibBuild>;
    if (b.simd !== 'avx2' || !Array.isArray(b.patches)) return { simd: 'default', patches: [] };
    return { simd: 'avx2', patches: b.patches.map(String), ...(b.unpatched ? { unpatched: String(b.unpatched) } : {}) };
  } catch {
    return { simd: 'default', patches: [] };
  }
}

export function describeHnswlibBuild(b: HnswlibBuild = hnswlibBuild()): string {
  if (b.simd === 'default') return "hnswlib-node's own build (node-gyp default flags)";
  return `hnswlib-node rebuilt with AVX2/FMA${b.patches.length ? ` + ${b.patches.join(', ')} patches` : ' (no patches)'}`;
}
