// Head training on frozen features: SGD with a margin loss separates real identities (the 16
// aligned fixture faces), the saved head reloads to the same outputs, the WGSL loss trains the
// same head as the TypeScript one, and bad input is refused.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { cosine } from '../../src/train/face-eval.js';
import { applyHead, loadHead, saveHead, trainHead } from '../../src/train/head.js';
import { WebGpuMarginLoss } from '../../src/train/webgpu-margin-loss.js';
import { skipWebGpu } from '../helpers/webgpu.js';

const fixture = JSON.parse(readFileSync(new URL('../fixtures/aligned/embeddings.json', import.meta.url), 'utf8')) as { files: string[]; embeddings: Record<string, number[]> };
const people = [...new Set(fixture.files.map((f) => f.replace(/_\d+\.png$/, '')))];
const n = fixture.files.length;
const dim = 128;
const features = new Float32Array(n * dim);
const labels = new Int32Array(n);
fixture.files.forEach((f, i) => {
  features.set(fixture.embeddings[f]!, i * dim);
  labels[i] = people.indexOf(f.replace(/_\d+\.png$/, ''));
});

/** Smallest genuine score minus largest impostor score: > 0 means a threshold separates everyone. */
function separation(emb: Float32Array, d: number): number {
  let minGen = Infinity;
  let maxImp = -Infinity;
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      const s = cosine(emb, d, a, b);
      if (labels[a] === labels[b]) minGen = Math.min(minGen, s);
      else maxImp = Math.max(maxImp, s);
    }
  }
  return minGen - maxImp;
}

describe('embedding head training', () => {
  it('LMCL head on 8 real identities: loss falls, every training face is classified, genuine pairs separate from impostors', async () => {
    const t = await trainHead(features, labels, dim, { loss: { kind: 'lmcl', s: 30, m: 0.35 }, layers: [64], epochs: 60, batchSize: 8, lr: 0.1, lrSteps: [40, 50] });
    expect(t.classes).toBe(8);
    expect(t.history[t.history.length - 1]!.loss).toBeLessThan(t.history[0]!.loss / 3);
    expect(t.history[t.history.length - 1]!.accuracy).toBe(1);
    const e = applyHead(t.head, features, n);
    for (let i = 0; i < n; i++) expect(Math.hypot(...e.subarray(i * 64, (i + 1) * 64))).toBeCloseTo(1, 5);
    expect(separation(e, 64)).toBeGreaterThan(0.2);
  });

  it('training is deterministic for a seed, and a saved head reloads to the same embeddings', async () => {
    const opts = { loss: { kind: 'nsl' as const, s: 16 }, layers: [32, 16], epochs: 5, batchSize: 4, lr: 0.05, seed: 3 };
    const a = await trainHead(features, labels, dim, opts);
    const b = await trainHead(features, labels, dim, opts);
    expect(b.history).toEqual(a.history);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'cosface-head-')), 'head.json');
    saveHead(file, a.head);
    const back = loadHead(file);
    expect(Array.from(applyHead(back, features, n))).toEqual(Array.from(applyHead(a.head, features, n)));
    expect(back.loss).toEqual(opts.loss);
  });

  it('bad input and bad head files are refused with stable codes', async () => {
    const codes: string[] = [];
    const attempt = async (f: () => unknown) => {
      try {
        await f();
        codes.push('none');
      } catch (e) {
        codes.push(isCosfaceError(e) ? e.code : 'other');
      }
    };
    await attempt(() => trainHead(features, new Int32Array(n), dim, { loss: { kind: 'lmcl' }, layers: [8], epochs: 1, batchSize: 4, lr: 0.1 }));
    await attempt(() => trainHead(features.subarray(1), labels, dim, { loss: { kind: 'lmcl' }, layers: [8], epochs: 1, batchSize: 4, lr: 0.1 }));
    await attempt(() => trainHead(features, labels, dim, { loss: { kind: 'lmcl' }, layers: [8], epochs: 1, batchSize: 4, lr: 0 }));
    const dir = mkdtempSync(path.join(tmpdir(), 'cosface-head-'));
    writeFileSync(path.join(dir, 'bad.json'), '{"format":"something-else"}');
    await attempt(() => loadHead(path.join(dir, 'bad.json')));
    writeFileSync(path.join(dir, 'trunc.json'), '{"format":"cosface-embe');
    await attempt(() => loadHead(path.join(dir, 'trunc.json')));
    expect(codes).toEqual(['BAD_INPUT', 'DIMENSION_MISMATCH', 'BAD_INPUT', 'BAD_MODEL', 'BAD_MODEL']);
  });
});

describe.skipIf(skipWebGpu)('embedding head training with the WGSL loss', () => {
  let gpu: WebGpuMarginLoss;
  beforeAll(async () => {
    gpu = await WebGpuMarginLoss.create();
  });

  it('follows the TypeScript loss: same per-epoch losses within float32 error', async () => {
    const opts = { loss: { kind: 'lmcl' as const, s: 30, m: 0.35 }, layers: [32], epochs: 4, batchSize: 8, lr: 0.05, seed: 2 };
    const cpu = await trainHead(features, labels, dim, opts);
    const onGpu = await trainHead(features, labels, dim, { ...opts, gpuLoss: gpu });
    cpu.history.forEach((h, k) => expect(Math.abs(onGpu.history[k]!.loss - h.loss) / h.loss).toBeLessThan(1e-3));
  });
});
