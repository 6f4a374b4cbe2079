// The hnswlib addon the postinstall builds (scripts/hnswlib-avx2.mjs): its source patches still fit
// the installed hnswlib-node (an upgrade that moves their anchors shows up here, not as a silently
// slower index), apply all-or-nothing, and, where CI asks for it (COSFACE_REQUIRE_HNSW_PATCHED=1),
// are what this process actually loads.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs build script, no types
import { HNSWLIB_PATCHES, patchSource } from '../../scripts/hnswlib-patches.mjs';
import { describeHnswlibBuild, hnswlibBuild } from '../../src/store/hnswlib-build.js';

type Patch = { name: string; file: string; edits: [string, string][] };
const patches = HNSWLIB_PATCHES as Patch[];
const pkg = dirname(createRequire(import.meta.url).resolve('hnswlib-node/package.json'));

describe('hnswlib patches', () => {
  it('every edit of every patch finds its text exactly once in the installed hnswlib-node', () => {
    expect(patches.map((p) => p.name)).toEqual(['hugepages', 'gather']);
    let text = readFileSync(join(pkg, patches[0]!.file), 'utf8');
    for (const p of patches) {
      const r = patchSource(text, p.edits) as { text?: string; error?: string };
      expect(r.error).toBeUndefined();
      expect(r.text).not.toBe(text);
      text = r.text!;
    }
    // The gather patch rewrote both neighbour loops (the build's and the query's).
    expect(text.split('cf_todo[cf_n++] = cf_id;').length - 1).toBe(2);
    expect(text.split('cosface_hugepages(data_level0_memory_').length - 1).toBe(3);
  });

  it('a source whose anchor is missing or repeated gets no edit at all', () => {
    const edits: [string, string][] = [['alpha', 'ALPHA'], ['beta', 'BETA']];
    expect(patchSource('alpha beta', edits)).toEqual({ text: 'ALPHA BETA' });
    expect(patchSource('alpha gamma', edits)).toEqual({ error: expect.stringContaining('found 0 times') });
    expect(patchSource('alpha beta beta', edits)).toEqual({ error: expect.stringContaining('found 2 times') });
  });

  it.runIf(process.env.COSFACE_REQUIRE_HNSW_PATCHED === '1')('the addon this process loads is the patched AVX2 build', () => {
    const b = hnswlibBuild();
    expect(b).toEqual({ simd: 'avx2', patches: ['hugepages', 'gather'] });
    expect(describeHnswlibBuild(b)).toBe('hnswlib-node rebuilt with AVX2/FMA + hugepages, gather patches');
  });
});
