// `train head`: fits an embedding head on a feature file (the JSON written by orl.ts's
// saveFeatures: rows of { identity, f }) with a chosen loss and saves it as JSON.
//   npx tsx src/train/train-head.ts --features tmp/orl-features-wasm.json --out tmp/head.json
//     [--loss lmcl|nsl|softmax|combined] [--s 30] [--m 0.35] [--m1 1 --m2 0 --m3 0] [--dim 128]
//     [--hidden 0] [--epochs 20] [--batch 64] [--lr 0.1] [--lr-steps 12,17] [--weight-decay 5e-4]
//     [--momentum 0.9] [--seed 1] [--init random|identity] [--loss-backend ts|webgpu]
import { Flags, runMain } from './cli-args.js';
import { saveHead, trainHead, type TrainedHead } from './head.js';
import { LOSS_KINDS, type LossConfig, type LossKind } from './margin-loss.js';
import { loadFeatures } from './orl.js';

export async function trainHeadCommand(argv: readonly string[], log: (s: string) => void = console.error): Promise<TrainedHead> {
  const f = new Flags('train head', argv);
  const features = f.string('features');
  const out = f.string('out');
  const kind = f.choice<LossKind>('loss', LOSS_KINDS, 'lmcl');
  const loss: LossConfig = { kind, s: f.number('s', 30), m: f.number('m', 0.35), m1: f.number('m1', 1), m2: f.number('m2', 0), m3: f.number('m3', 0) };
  const dim = f.number('dim', 128);
  const hidden = f.number('hidden', 0);
  const opts = {
    loss,
    layers: hidden > 0 ? [hidden, dim] : [dim],
    epochs: f.number('epochs', 20),
    batchSize: f.number('batch', 64),
    lr: f.number('lr', 0.1),
    lrSteps: f.numbers('lr-steps', [12, 17]),
    weightDecay: f.number('weight-decay', 5e-4),
    momentum: f.number('momentum', 0.9),
    seed: f.number('seed', 1),
    init: f.choice('init', ['random', 'identity'] as const, 'random'),
    log,
  };
  const backend = f.choice('loss-backend', ['ts', 'webgpu'] as const, 'ts');
  f.done();
  const set = loadFeatures(features);
  // Identities in the file may be any integers: train on them renumbered 0..C-1.
  const ids = [...new Set(set.labels)].sort((a, b) => a - b);
  const remap = new Map(ids.map((id, k) => [id, k]));
  const labels = Int32Array.from(set.labels, (id) => remap.get(id)!);
  const gpuLoss = backend === 'webgpu' ? await (await import('./webgpu-margin-loss.js')).WebGpuMarginLoss.create() : undefined;
  const trained = await trainHead(set.features, labels, set.dim, { ...opts, gpuLoss });
  saveHead(out, trained.head);
  log(`saved ${set.dim} -> ${trained.head.dOut} head (${ids.length} identities, ${labels.length} rows) to ${out}`);
  return trained;
}

runMain(import.meta.url, async (argv) => {
  await trainHeadCommand(argv);
});
