// Writes a randomly initialised InsightFace IResNet (test/helpers/iresnet-onnx.ts) as an ONNX file,
// for `cosface bench embed --model`: npx tsx scripts/build-iresnet-onnx.ts 50 /tmp/iresnet50.onnx
import { writeFileSync } from 'node:fs';
import { buildIResNet } from '../test/helpers/iresnet-onnx.js';

const depth = process.argv[2] ?? '50';
const out = process.argv[3] ?? `iresnet${depth}.onnx`;
const layers: Record<string, [number, number, number, number]> = { '18': [2, 2, 2, 2], '34': [3, 4, 6, 3], '50': [3, 4, 14, 3], '100': [3, 13, 30, 3] };
if (!layers[depth]) throw new Error(`depth must be one of ${Object.keys(layers).join(', ')}`);
const model = buildIResNet({ layers: layers[depth], seed: Number(depth), normalise: true });
writeFileSync(out, model.bytes);
process.stdout.write(`${out}: IResNet-${depth}, ${((2 * model.macs) / 1e9).toFixed(2)} GFLOP per face, ${(model.bytes.length / 1e6).toFixed(1)} MB\n`);
