// An embedding head trained on frozen features: dense layers (one linear layer, or linear-ReLU-
// linear), output L2-normalised at use, fitted with a margin loss by SGD with momentum, weight
// decay and a step schedule. The loss runs in TypeScript (float32) or in WGSL on WebGPU.
import { readFileSync, writeFileSync } from 'node:fs';
import { CosfaceError } from '../errors.js';
import { marginLoss, resolveLoss, type LossConfig, type ResolvedLoss } from './margin-loss.js';
import type { WebGpuMarginLoss } from './webgpu-margin-loss.js';

export interface DenseLayer {
  inF: number;
  outF: number;
  /** outF x inF, row-major. */
  weight: Float32Array;
  bias: Float32Array;
  relu: boolean;
}

export interface EmbeddingHead {
  dIn: number;
  dOut: number;
  /**
   * Input standardisation, applied before the first layer: (x - inputMean) * inputScale. Frozen
   * face features share a large common component (on ORL the mean of the unit embeddings has
   * norm 0.86); removing it lets SGD through a normalised loss make progress.
   */
  inputMean: Float32Array;
  inputScale: number;
  layers: DenseLayer[];
  /** What it was trained with (for the saved file). */
  loss?: LossConfig;
}

/** Deterministic uniform [0, 1) stream (seeded runs repeat exactly). */
export function seededRandom(seed: number): () => number {
  let s = (seed >>> 0) || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** A head with He/Glorot-style random weights: dims = [dIn, hidden..., dOut], ReLU between layers. */
export function createHead(dims: number[], seed = 1): EmbeddingHead {
  if (dims.length < 2 || dims.some((d) => !Number.isInteger(d) || d < 1)) throw new CosfaceError('BAD_INPUT', `head: layer sizes must be positive integers, got [${dims.join(', ')}]`);
  const r = seededRandom(seed);
  const layers: DenseLayer[] = [];
  for (let l = 0; l + 1 < dims.length; l++) {
    const inF = dims[l]!;
    const outF = dims[l + 1]!;
    const relu = l + 2 < dims.length;
    const sd = Math.sqrt((relu ? 2 : 1) / inF);
    const weight = new Float32Array(outF * inF);
    for (let i = 0; i < weight.length; i++) weight[i] = gaussian(r) * sd;
    layers.push({ inF, outF, weight, bias: new Float32Array(outF), relu });
  }
  return { dIn: dims[0]!, dOut: dims[dims.length - 1]!, inputMean: new Float32Array(dims[0]!), inputScale: 1, layers };
}

/** Sets the head's input standardisation from training features: their mean, and 1 / mean norm after centring. */
export function fitInputStandardisation(head: EmbeddingHead, features: Float32Array, n: number): void {
  const d = head.dIn;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) mean[k] = mean[k]! + features[i * d + k]! / n;
  let norms = 0;
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < d; k++) ss += (features[i * d + k]! - mean[k]!) ** 2;
    norms += Math.sqrt(ss) / n;
  }
  head.inputMean = Float32Array.from(mean);
  head.inputScale = norms > 0 ? 1 / norms : 1;
}

function standardise(head: EmbeddingHead, x: Float32Array, n: number): Float32Array {
  const d = head.dIn;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) out[i * d + k] = (x[i * d + k]! - head.inputMean[k]!) * head.inputScale;
  return out;
}

function denseForward(layer: DenseLayer, x: Float32Array, n: number): Float32Array {
  const { inF, outF, weight, bias } = layer;
  const y = new Float32Array(n * outF);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outF; o++) {
      let s = bias[o]!;
      for (let k = 0; k < inF; k++) s += x[i * inF + k]! * weight[o * inF + k]!;
      y[i * outF + o] = layer.relu && s < 0 ? 0 : s;
    }
  }
  return y;
}

/** Head outputs before normalisation; also every layer's input (for the backward pass). */
function headForward(head: EmbeddingHead, x: Float32Array, n: number): { out: Float32Array; inputs: Float32Array[] } {
  const inputs: Float32Array[] = [];
  let a = standardise(head, x, n);
  for (const layer of head.layers) {
    inputs.push(a);
    a = denseForward(layer, a, n);
  }
  return { out: a, inputs };
}

/** The head's raw outputs (before normalisation) for n feature rows. */
export function headOutputs(head: EmbeddingHead, features: Float32Array, n: number): Float32Array {
  if (features.length !== n * head.dIn) throw new CosfaceError('DIMENSION_MISMATCH', `head: ${features.length} values for ${n} rows of ${head.dIn}`);
  return headForward(head, features, n).out;
}

/** The head applied to n feature rows, each output L2-normalised (what a gallery would store). */
export function applyHead(head: EmbeddingHead, features: Float32Array, n: number): Float32Array {
  if (features.length !== n * head.dIn) throw new CosfaceError('DIMENSION_MISMATCH', `head: ${features.length} values for ${n} rows of ${head.dIn}`);
  const out = headForward(head, features, n).out;
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = 0; k < head.dOut; k++) ss += out[i * head.dOut + k]! ** 2;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let k = 0; k < head.dOut; k++) out[i * head.dOut + k] = out[i * head.dOut + k]! * inv;
  }
  return out;
}

export interface TrainHeadOptions {
  loss: LossConfig;
  /** Layer sizes after the input: [dOut] for a linear head, [hidden, dOut] for an MLP. */
  layers: number[];
  epochs: number;
  batchSize: number;
  lr: number;
  momentum?: number;
  weightDecay?: number;
  /** Epochs at which the learning rate is divided by 10. */
  lrSteps?: number[];
  seed?: number;
  /**
   * 'random' (default) or 'identity': a linear head of dIn -> dIn that starts as the identity, so
   * training starts from the (centred) frozen features and fine-tunes them.
   */
  init?: 'random' | 'identity';
  /** Centre and scale the inputs by the training features' statistics (default true). */
  standardise?: boolean;
  /** Where the loss runs: TypeScript float32, or WGSL through this WebGPU loss. */
  gpuLoss?: WebGpuMarginLoss;
  log?: (line: string) => void;
}

export interface TrainedHead {
  head: EmbeddingHead;
  /** C x dOut class weights (dropped at deployment; kept for inspection). */
  classWeights: Float32Array;
  classBias: Float32Array;
  classes: number;
  /** Mean training loss and accuracy (with the margin) per epoch. */
  history: { epoch: number; loss: number; accuracy: number; lr: number }[];
}

/**
 * Fits the head and the class weights on (features, labels in 0..C-1). SGD with momentum:
 * v = mu v + g + wd * theta, theta -= lr * v (no decay on biases).
 */
export async function trainHead(features: Float32Array, labels: Int32Array, dIn: number, opts: TrainHeadOptions): Promise<TrainedHead> {
  const n = labels.length;
  if (features.length !== n * dIn) throw new CosfaceError('DIMENSION_MISMATCH', `train head: ${features.length} feature values for ${n} labels of ${dIn}`);
  let classes = 0;
  for (const y of labels) {
    if (!Number.isInteger(y) || y < -1) throw new CosfaceError('BAD_INPUT', `train head: label ${y} (labels are 0..C-1, or -1 to ignore)`);
    classes = Math.max(classes, y + 1);
  }
  if (classes < 2) throw new CosfaceError('BAD_INPUT', 'train head: needs at least two classes');
  for (const [k, v] of [['epochs', opts.epochs], ['batchSize', opts.batchSize]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new CosfaceError('BAD_INPUT', `train head: ${k} must be a positive integer, got ${v}`);
  }
  if (!(opts.lr > 0)) throw new CosfaceError('BAD_INPUT', `train head: lr must be > 0, got ${opts.lr}`);
  const loss: ResolvedLoss = resolveLoss(opts.loss);
  const seed = opts.seed ?? 1;
  const head = createHead([dIn, ...opts.layers], seed);
  head.loss = opts.loss;
  if (opts.init === 'identity') {
    const l = head.layers[0]!;
    if (head.layers.length !== 1 || l.inF !== l.outF) throw new CosfaceError('BAD_INPUT', `train head: identity init needs one linear layer of ${dIn} -> ${dIn}, got [${opts.layers.join(', ')}]`);
    l.weight.fill(0);
    for (let k = 0; k < l.inF; k++) l.weight[k * l.inF + k] = 1;
  }
  if (opts.standardise ?? true) fitInputStandardisation(head, features, n);
  const dOut = head.dOut;
  const r = seededRandom(seed * 7919 + 13);
  const classWeights = new Float32Array(classes * dOut);
  for (let i = 0; i < classWeights.length; i++) classWeights[i] = gaussian(r) / Math.sqrt(dOut);
  const classBias = new Float32Array(classes);
  const mu = opts.momentum ?? 0.9;
  const wd = opts.weightDecay ?? 5e-4;
  // Parameters and their momentum buffers, with whether weight decay applies.
  const params: { p: Float32Array; v: Float32Array; decay: boolean }[] = [];
  for (const l of head.layers) {
    params.push({ p: l.weight, v: new Float32Array(l.weight.length), decay: true }, { p: l.bias, v: new Float32Array(l.bias.length), decay: false });
  }
  params.push({ p: classWeights, v: new Float32Array(classWeights.length), decay: true }, { p: classBias, v: new Float32Array(classes), decay: false });
  const order = Array.from({ length: n }, (_, i) => i);
  const history: TrainedHead['history'] = [];
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const lr = opts.lr * 0.1 ** (opts.lrSteps ?? []).filter((s) => epoch >= s).length;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let lossSum = 0;
    let correct = 0;
    let counted = 0;
    for (let b = 0; b < n; b += opts.batchSize) {
      const idx = order.slice(b, b + opts.batchSize);
      const m = idx.length;
      const x = new Float32Array(m * dIn);
      const y = new Int32Array(m);
      idx.forEach((src, k) => {
        x.set(features.subarray(src * dIn, (src + 1) * dIn), k * dIn);
        y[k] = labels[src]!;
      });
      const fw = headForward(head, x, m);
      const inp = { x: fw.out, w: classWeights, bias: classBias, labels: y, n: m, d: dOut, c: classes };
      const out = opts.gpuLoss ? await opts.gpuLoss.run(loss, inp) : marginLoss(loss, inp);
      lossSum += out.loss * out.valid;
      correct += out.correct;
      counted += out.valid;
      // Backward through the dense layers (last to first); grads[l] = [dW, db].
      const grads: Float32Array[][] = [];
      let g = out.dx;
      for (let l = head.layers.length - 1; l >= 0; l--) {
        const layer = head.layers[l]!;
        const a = fw.inputs[l]!;
        const outAct = l + 1 < head.layers.length ? fw.inputs[l + 1]! : fw.out;
        const dW = new Float32Array(layer.weight.length);
        const db = new Float32Array(layer.outF);
        const dIn_ = new Float32Array(m * layer.inF);
        for (let i = 0; i < m; i++) {
          for (let o = 0; o < layer.outF; o++) {
            let go = g[i * layer.outF + o]!;
            if (layer.relu && outAct[i * layer.outF + o]! <= 0) go = 0;
            if (go === 0) continue;
            db[o] = db[o]! + go;
            for (let k = 0; k < layer.inF; k++) {
              dW[o * layer.inF + k] = dW[o * layer.inF + k]! + go * a[i * layer.inF + k]!;
              dIn_[i * layer.inF + k] = dIn_[i * layer.inF + k]! + go * layer.weight[o * layer.inF + k]!;
            }
          }
        }
        grads[l] = [dW, db];
        g = dIn_;
      }
      const flat = [...grads.flat(), out.dw, out.dbias];
      params.forEach((q, k) => {
        const gk = flat[k]!;
        for (let i = 0; i < q.p.length; i++) {
          const gi = gk[i]! + (q.decay ? wd * q.p[i]! : 0);
          q.v[i] = mu * q.v[i]! + gi;
          q.p[i] = q.p[i]! - lr * q.v[i]!;
        }
      });
    }
    const rec = { epoch: epoch + 1, loss: counted ? lossSum / counted : 0, accuracy: counted ? correct / counted : 0, lr };
    if (!Number.isFinite(rec.loss)) throw new CosfaceError('BAD_INPUT', `train head: the loss diverged at epoch ${rec.epoch} (lr ${lr}); lower the learning rate`);
    history.push(rec);
    opts.log?.(`epoch ${rec.epoch}: loss ${rec.loss.toFixed(4)}, train acc ${(100 * rec.accuracy).toFixed(1)}%, lr ${lr}`);
  }
  return { head, classWeights, classBias, classes, history };
}

interface HeadFile {
  format: 'cosface-embedding-head';
  version: 1;
  dIn: number;
  dOut: number;
  loss?: LossConfig;
  inputMean: number[];
  inputScale: number;
  layers: { inF: number; outF: number; relu: boolean; weight: number[]; bias: number[] }[];
}

/** Saves the head as JSON (the classifier is not saved: deployment compares normalised outputs). */
export function saveHead(file: string, head: EmbeddingHead): void {
  const j: HeadFile = {
    format: 'cosface-embedding-head',
    version: 1,
    dIn: head.dIn,
    dOut: head.dOut,
    loss: head.loss,
    inputMean: Array.from(head.inputMean),
    inputScale: head.inputScale,
    layers: head.layers.map((l) => ({ inF: l.inF, outF: l.outF, relu: l.relu, weight: Array.from(l.weight), bias: Array.from(l.bias) })),
  };
  writeFileSync(file, JSON.stringify(j));
}

export function loadHead(file: string): EmbeddingHead {
  let j: HeadFile;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as HeadFile;
  } catch (e) {
    throw new CosfaceError('BAD_MODEL', `head ${file}: not readable JSON: ${(e as Error).message}`, { cause: e });
  }
  if (j.format !== 'cosface-embedding-head' || j.version !== 1 || !Array.isArray(j.layers) || j.layers.length === 0) throw new CosfaceError('BAD_MODEL', `head ${file}: not a cosface-embedding-head v1 file`);
  let prev = j.dIn;
  const layers = j.layers.map((l, k) => {
    if (l.inF !== prev || l.weight.length !== l.inF * l.outF || l.bias.length !== l.outF) throw new CosfaceError('BAD_MODEL', `head ${file}: layer ${k} has inconsistent sizes`);
    prev = l.outF;
    return { inF: l.inF, outF: l.outF, relu: l.relu, weight: Float32Array.from(l.weight), bias: Float32Array.from(l.bias) };
  });
  if (prev !== j.dOut) throw new CosfaceError('BAD_MODEL', `head ${file}: last layer gives ${prev} values, dOut says ${j.dOut}`);
  if (!Array.isArray(j.inputMean) || j.inputMean.length !== j.dIn || !Number.isFinite(j.inputScale)) throw new CosfaceError('BAD_MODEL', `head ${file}: input standardisation missing or of the wrong size`);
  return { dIn: j.dIn, dOut: j.dOut, loss: j.loss, inputMean: Float32Array.from(j.inputMean), inputScale: j.inputScale, layers };
}
