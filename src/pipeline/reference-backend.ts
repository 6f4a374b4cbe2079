// GraphCompilers over the scalar reference (src/graph/reference.ts): slow, but exact and always
// there. For development and tests, and for graphs whose ops a backend does not implement yet.
// The reference compiler has no batched warp: the pipeline then cuts crops with warpToCrop.
import type { CompiledGraph } from '../backend/backend.js';
import { isCosfaceError } from '../errors.js';
import type { Graph } from '../graph/ir.js';
import { runReference } from '../graph/reference.js';
import type { GraphCompiler } from './face-pipeline.js';

export function referenceCompiler(): GraphCompiler {
  return {
    async compile(graph: Graph): Promise<CompiledGraph> {
      return {
        graph,
        run: async (input: Float32Array, n: number) => runReference(graph, input, n),
        dispose() {},
      };
    },
  };
}

/**
 * Compiles on `primary`; a graph it refuses with UNSUPPORTED_OP runs on the reference instead.
 * `onFallback` hears which graphs (by source) fell back, so callers can say so. The primary's
 * batched warp, when it has one, is kept.
 */
export function withReferenceFallback(primary: GraphCompiler, onFallback?: (graph: Graph, reason: string) => void): GraphCompiler {
  const reference = referenceCompiler();
  const warp = primary.warp;
  return {
    ...(warp ? { warp: (img, transforms, outW, outH, opts) => warp.call(primary, img, transforms, outW, outH, opts) } satisfies Pick<GraphCompiler, 'warp'> : {}),
    async compile(graph: Graph): Promise<CompiledGraph> {
      try {
        return await primary.compile(graph);
      } catch (e) {
        if (!isCosfaceError(e, 'UNSUPPORTED_OP')) throw e;
        onFallback?.(graph, (e as Error).message);
        return reference.compile(graph);
      }
    },
  };
}
