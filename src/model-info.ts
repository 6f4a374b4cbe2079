// `cosface info --model <file>`: the metadata in use for a model (and where each value came from),
// what was read from the file, and the op counts before and after the graph passes.
import { loadModelFile } from './engine.js';
import { prepareEmbedderGraph } from './embedder.js';
import { graphMacs, type Graph } from './graph/ir.js';
import type { OptimizeReport } from './graph/passes.js';
import { resolveModelMetadata, type MetadataOverrides, type ModelMetadata } from './import/model-metadata.js';

export interface ModelInfo {
  file: string;
  source: string;
  metadata: ModelMetadata;
  /** Imported ops by type, before the passes. */
  importedOps: Record<string, number>;
  /** Kernels by op type as the backends run them (after the passes and the L2 normalisation). */
  kernels: Record<string, number>;
  passes: OptimizeReport;
  gflopPerFace: number;
}

function countOps(graph: Graph): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of graph.nodes) counts[n.op] = (counts[n.op] ?? 0) + 1;
  return counts;
}

export async function describeModel(file: string, flags: MetadataOverrides = {}): Promise<ModelInfo> {
  const graph = await loadModelFile(file);
  const importedOps = countOps(graph);
  const metadata = await resolveModelMetadata(file, graph, flags);
  const passes = prepareEmbedderGraph(graph, metadata);
  return { file, source: graph.source, metadata, importedOps, kernels: countOps(graph), passes, gflopPerFace: (2 * graphMacs(graph)) / 1e9 };
}

export function formatModelInfo(i: ModelInfo): string {
  const m = i.metadata;
  const ops = (o: Record<string, number>) => Object.entries(o).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  const total = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  return [
    `model: ${i.file} (${i.source.split(':')[0]})`,
    `input: [${m.inputShape.join(', ')}] (engine NHWC; the file is ${m.sourceLayout.toUpperCase()}), output: ${m.outputDim}-d, ${i.gflopPerFace.toFixed(3)} GFLOP per face`,
    `input mean (r,g,b): ${m.inputMean.join(', ')}  [${m.origin.inputMean}]`,
    `input std (r,g,b): ${m.inputStd.join(', ')}  [${m.origin.inputStd}]`,
    `channels: ${m.channels}  [${m.origin.channels}]`,
    `alignment: ${m.alignment} 112x112 template`,
    `imported ops (${total(i.importedOps)}): ${ops(i.importedOps)}`,
    `kernels after the passes (${total(i.kernels)}): ${ops(i.kernels)}`,
    `passes: ${Object.entries(i.passes).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    '',
  ].join('\n');
}
