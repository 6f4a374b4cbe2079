// A GraphCompiler over the scalar reference (src/graph/reference.ts): slow, but exact and always
// there. For development and tests until a fast backend is injected.
import type { CompiledGraph } from '../backend/backend.js';
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
