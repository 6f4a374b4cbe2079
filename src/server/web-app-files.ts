// The /app page's files in Node: the bundle from dist/web/ (written by `npm run build`), the
// vendored models from models/ and the WASM kernel builds from build/.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { wasmPath } from '../backend/wasm/wasm-kernels.js';
import { packageRoot } from '../embedder.js';
import { defaultModelDir } from '../pipeline/face-pipeline.js';
import type { WebAppFiles } from './routes/web-app.js';

export const WEB_DIST = join(packageRoot, 'dist/web');
const MODEL_FILES = ['blazeface-back.json', 'blazeface-back.bin', 'facemesh.json', 'facemesh.bin', 'mobilefacenet-arcface.tflite'];
const WASM_FILES = { 'cosface.wasm': 'simd', 'cosface-relaxed.wasm': 'relaxed' } as const;

async function readOrNull(path: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await readFile(path));
  } catch {
    return null;
  }
}

export function nodeWebAppFiles(distDir = WEB_DIST): WebAppFiles {
  const paths = new Map<string, () => string>([
    ...MODEL_FILES.map((f) => [`models/${f}`, () => join(defaultModelDir(), f)] as const),
    ...Object.entries(WASM_FILES).map(([f, simd]) => [`wasm/${f}`, () => wasmPath(simd)] as const),
  ]);
  return {
    assets: [...paths.keys()],
    bundle: (name) => readOrNull(join(distDir, name)),
    asset: async (path) => {
      const where = paths.get(path);
      return where ? readOrNull(where()) : null;
    },
  };
}
