// The paper's margin experiment on real faces: embedding heads trained with LMCL for each m on
// ORL identities, evaluated on held-out ORL identities (4 folds of 10 people; never seen in
// training) by verification accuracy and leave-one-out rank-1. Prints a Markdown table and
// writes the numbers as JSON.
//   npx tsx src/train/margin-sweep.ts --data /work/shared/data/orl [--features embedding|prefc] [--low-res 16] [--init identity]
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CosfaceError } from '../errors.js';
import { Flags, runMain } from './cli-args.js';
import { balancedPairs, cosine, leaveOneOutRank1, verificationAccuracy } from './face-eval.js';
import { applyHead, trainHead, type EmbeddingHead } from './head.js';
import { marginUpperBound, scaleLowerBound } from './loss-bounds.js';
import type { LossConfig } from './margin-loss.js';
import { orlFeatures, type FeatureLayer, type FeatureSet } from './orl.js';
import type { WebGpuMarginLoss } from './webgpu-margin-loss.js';

export interface SweepOptions {
  margins: number[];
  s: number;
  dOut: number;
  epochs: number;
  batchSize: number;
  lr: number;
  lrSteps: number[];
  weightDecay: number;
  seeds: number;
  folds: number;
  /** Also train Softmax heads (context row). */
  softmax: boolean;
  init: 'random' | 'identity';
  gpuLoss?: WebGpuMarginLoss;
  log?: (s: string) => void;
}

export interface SweepRow {
  label: string;
  m: number | null;
  /** Verification accuracy % (pairs of every held-out fold pooled; threshold by 10-fold CV), mean over seeds. */
  verification: number;
  /** Spread of the 10 pair folds (mean over seeds). */
  verificationStd: number;
  /** Per-seed verification accuracies. */
  perSeed: number[];
  /** Leave-one-out rank-1 % within each held-out fold, averaged over folds and seeds. */
  rank1: number;
  /** Final-epoch training loss and accuracy (with the margin), mean over folds and seeds. */
  trainLoss: number | null;
  trainAccuracy: number | null;
  seconds: number;
}

function rowsOf(set: FeatureSet, pick: (i: number) => boolean): number[] {
  return [...set.labels.keys()].filter(pick);
}

function gather(set: FeatureSet, rows: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * set.dim);
  rows.forEach((r, k) => out.set(set.features.subarray(r * set.dim, (r + 1) * set.dim), k * set.dim));
  return out;
}

/** Runs the sweep on a feature set whose labels are 0..P-1 identities (mirrored rows used for training only). */
export async function marginSweep(set: FeatureSet, o: SweepOptions): Promise<{ rows: SweepRow[]; trainClasses: number; testPairs: number }> {
  const people = Math.max(...set.labels) + 1;
  if (people < o.folds * 2) throw new CosfaceError('BAD_INPUT', `margin sweep: ${people} identities is too few for ${o.folds} folds`);
  const foldOf = (id: number) => Math.floor((id * o.folds) / people);
  type Fold = { trainX: Float32Array; trainY: Int32Array; testX: Float32Array; testLabels: Int32Array; pairs: ReturnType<typeof balancedPairs> };
  const folds: Fold[] = [];
  for (let f = 0; f < o.folds; f++) {
    const train = rowsOf(set, (i) => foldOf(set.labels[i]!) !== f);
    const test = rowsOf(set, (i) => foldOf(set.labels[i]!) === f && set.mirrored[i] === 0);
    const ids = [...new Set(train.map((i) => set.labels[i]!))].sort((a, b) => a - b);
    const remap = new Map(ids.map((id, k) => [id, k]));
    const testLabels = Int32Array.from(test.map((i) => set.labels[i]!));
    folds.push({
      trainX: gather(set, train),
      trainY: Int32Array.from(train.map((i) => remap.get(set.labels[i]!)!)),
      testX: gather(set, test),
      testLabels,
      pairs: balancedPairs(testLabels, [...test.keys()], f + 1),
    });
  }
  const trainClasses = Math.max(...folds[0]!.trainY) + 1;
  const testPairs = folds.reduce((s, f) => s + f.pairs.length, 0);

  /** Scores every fold's pairs with embed(fold) and returns the pooled accuracy and mean rank-1. */
  const evaluate = (embed: (f: Fold) => { e: Float32Array; d: number }) => {
    const scores: number[] = [];
    const same: boolean[] = [];
    let r1 = 0;
    for (const f of folds) {
      const { e, d } = embed(f);
      for (const p of f.pairs) {
        scores.push(cosine(e, d, p.a, p.b));
        same.push(p.same);
      }
      r1 += leaveOneOutRank1(e, d, f.testLabels, [...f.testLabels.keys()]) / folds.length;
    }
    return { ...verificationAccuracy(scores, same), rank1: r1 };
  };

  const rows: SweepRow[] = [];
  const t0 = Date.now();
  const raw = evaluate((f) => ({ e: f.testX, d: set.dim }));
  rows.push({ label: 'no head (the frozen features)', m: null, verification: raw.accuracy, verificationStd: raw.std, perSeed: [raw.accuracy], rank1: raw.rank1, trainLoss: null, trainAccuracy: null, seconds: (Date.now() - t0) / 1000 });
  // The frozen features centred by the training identities' mean: what an identity-initialised head starts from.
  const centred = evaluate((f) => {
    const n = f.trainY.length;
    const mean = new Float64Array(set.dim);
    for (let i = 0; i < n; i++) for (let k = 0; k < set.dim; k++) mean[k] = mean[k]! + f.trainX[i * set.dim + k]! / n;
    const e = f.testX.map((v, j) => v - mean[j % set.dim]!);
    return { e, d: set.dim };
  });
  rows.push({ label: 'no head, centred by the training mean', m: null, verification: centred.accuracy, verificationStd: centred.std, perSeed: [centred.accuracy], rank1: centred.rank1, trainLoss: null, trainAccuracy: null, seconds: 0 });

  const configs: { label: string; m: number | null; loss: LossConfig }[] = [];
  if (o.softmax) configs.push({ label: 'Softmax', m: null, loss: { kind: 'softmax' } });
  for (const m of o.margins) configs.push({ label: m === 0 ? 'LMCL m = 0 (NSL)' : `LMCL m = ${m}`, m, loss: { kind: 'lmcl', s: o.s, m } });
  for (const c of configs) {
    const t = Date.now();
    const perSeed: number[] = [];
    let std = 0;
    let rank1 = 0;
    let trainLoss = 0;
    let trainAcc = 0;
    for (let seed = 1; seed <= o.seeds; seed++) {
      const heads: EmbeddingHead[] = [];
      for (const f of folds) {
        const trained = await trainHead(f.trainX, f.trainY, set.dim, {
          loss: c.loss,
          layers: [o.dOut],
          epochs: o.epochs,
          batchSize: o.batchSize,
          lr: o.lr,
          lrSteps: o.lrSteps,
          weightDecay: o.weightDecay,
          seed,
          init: o.init,
          gpuLoss: o.gpuLoss,
        });
        const last = trained.history[trained.history.length - 1]!;
        trainLoss += last.loss / (folds.length * o.seeds);
        trainAcc += (100 * last.accuracy) / (folds.length * o.seeds);
        heads.push(trained.head);
      }
      const r = evaluate((f) => ({ e: applyHead(heads[folds.indexOf(f)]!, f.testX, f.testLabels.length), d: o.dOut }));
      perSeed.push(r.accuracy);
      std += r.std / o.seeds;
      rank1 += r.rank1 / o.seeds;
    }
    const row: SweepRow = { label: c.label, m: c.m, verification: perSeed.reduce((a, b) => a + b, 0) / o.seeds, verificationStd: std, perSeed, rank1, trainLoss, trainAccuracy: trainAcc, seconds: (Date.now() - t) / 1000 };
    rows.push(row);
    o.log?.(`${row.label}: verification ${row.verification.toFixed(2)}%, rank-1 ${row.rank1.toFixed(1)}%, train loss ${trainLoss.toFixed(3)} (${row.seconds.toFixed(0)} s)`);
  }
  return { rows, trainClasses, testPairs };
}

export function sweepTable(rows: readonly SweepRow[]): string {
  const lines = ['| head | verification acc. % (± std over 10 pair folds) | per seed | LOO rank-1 % | final train loss | train acc. % (with margin) |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    lines.push(
      `| ${r.label} | ${r.verification.toFixed(2)} ± ${r.verificationStd.toFixed(2)} | ${r.perSeed.map((v) => v.toFixed(2)).join(', ')} | ${r.rank1.toFixed(1)} | ${r.trainLoss === null ? '–' : r.trainLoss.toFixed(3)} | ${r.trainAccuracy === null ? '–' : r.trainAccuracy.toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<void> {
  const f = new Flags('margin-sweep', argv, ['softmax', 'no-softmax']);
  const data = f.string('data');
  const layer = f.choice<FeatureLayer>('features', ['embedding', 'prefc'], 'embedding');
  const backend = f.choice('backend', ['wasm', 'webgpu'] as const, 'wasm');
  const lowRes = f.number('low-res', 0);
  const cache = f.string('cache', `tmp/orl-${layer === 'embedding' ? 'features' : 'prefc'}-${backend}${lowRes ? `-lowres${lowRes}` : ''}.json`);
  const lossBackend = f.choice('loss-backend', ['ts', 'webgpu'] as const, 'ts');
  const out = f.string('json', 'tmp/margin-sweep.json');
  const opts: SweepOptions = {
    margins: f.numbers('margins', [0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45]),
    s: f.number('s', 30),
    dOut: f.number('dim', 128),
    epochs: f.number('epochs', 20),
    batchSize: f.number('batch', 64),
    lr: f.number('lr', 0.1),
    lrSteps: f.numbers('lr-steps', [12, 17]),
    weightDecay: f.number('weight-decay', 5e-4),
    seeds: f.number('seeds', 1),
    folds: f.number('folds', 4),
    softmax: !f.flag('no-softmax'),
    init: f.choice('init', ['random', 'identity'] as const, 'random'),
    log: (s) => console.error(s),
  };
  f.flag('softmax');
  f.done();
  if (lossBackend === 'webgpu') {
    const { WebGpuMarginLoss } = await import('./webgpu-margin-loss.js');
    opts.gpuLoss = await WebGpuMarginLoss.create();
  }
  const set = await orlFeatures(data, cache, { backend, layer, lowRes, log: (s) => console.error(s) });
  const t = Date.now();
  const res = await marginSweep(set, opts);
  const mb = marginUpperBound(res.trainClasses, opts.dOut);
  const header = [
    `Features: ${set.source} (${set.dim}-d, ${set.labels.length} rows incl. mirrors).`,
    `Protocol: ${opts.folds} folds of identities; heads trained on the other ${res.trainClasses} identities (images + mirrors), evaluated on the held-out identities' original images: ${res.testPairs} pairs (all genuine + as many impostors), accuracy by 10-fold threshold CV; rank-1 leave-one-out within each held-out fold.`,
    `Head: linear ${set.dim} -> ${opts.dOut} after centring (${opts.init} init), normalised; s = ${opts.s}, SGD lr ${opts.lr} (/10 at epochs ${opts.lrSteps.join(', ')}), momentum 0.9, weight decay ${opts.weightDecay}, batch ${opts.batchSize}, ${opts.epochs} epochs, ${opts.seeds} seed(s); loss on ${lossBackend === 'webgpu' ? 'WebGPU (WGSL)' : 'the CPU (TypeScript float32)'}.`,
    `Bounds for C = ${res.trainClasses}, d = ${opts.dOut}: mMax = ${mb.mMax === null ? 'none' : mb.mMax.toFixed(4)}; sMin(P = 0.9) = ${scaleLowerBound(res.trainClasses, 0.9).toFixed(3)}.`,
    `Time: ${((Date.now() - t) / 1000).toFixed(0)} s.`,
  ];
  console.log(header.join('\n') + '\n\n' + sweepTable(res.rows));
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ header, options: { ...opts, gpuLoss: undefined, log: undefined }, ...res }, null, 2));
}

runMain(import.meta.url, main);
