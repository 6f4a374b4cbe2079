// The paper's Figure 2 on real faces: a small MLP (frozen 128-d ORL embeddings -> 32 ReLU -> 2)
// trained on 8 identities with Softmax, NSL and LMCL; the 2-D features drawn side by side in
// Euclidean space (top) and as angles on the unit circle (bottom), as SVG and PNG.
//   npx tsx src/train/toy-figure.ts --data /work/shared/data/orl [--out docs/figures/toy-2d-features]
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { Flags, runMain } from './cli-args.js';
import { headOutputs, trainHead } from './head.js';
import { marginUpperBound, scaleLowerBound } from './loss-bounds.js';
import type { LossConfig } from './margin-loss.js';
import { orlFeatures, type FeatureSet } from './orl.js';

const COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324', '#808000', '#000075'];

export interface ToyPanel {
  title: string;
  loss: LossConfig;
  /** n x 2 raw features. */
  points: Float32Array;
  labels: Int32Array;
  /** C x 2 class weights. */
  weights: Float32Array;
  /** Training images whose nearest class weight (by angle; by logit for Softmax) is their own, no margin. */
  trainAccuracy: number;
  /** Mean angle (degrees) between a feature and its class's mean direction. */
  intraAngle: number;
  /** Smallest angle (degrees) between two class mean directions. */
  minInterAngle: number;
}

function angleStats(points: Float32Array, labels: Int32Array, classes: number): { intra: number; minInter: number } {
  const cx = new Float64Array(classes);
  const cy = new Float64Array(classes);
  const ang = (x: number, y: number) => Math.atan2(y, x);
  for (let i = 0; i < labels.length; i++) {
    const nrm = Math.hypot(points[2 * i]!, points[2 * i + 1]!) || 1;
    cx[labels[i]!] += points[2 * i]! / nrm;
    cy[labels[i]!] += points[2 * i + 1]! / nrm;
  }
  const diff = (a: number, b: number) => {
    const d = Math.abs(a - b) % (2 * Math.PI);
    return d > Math.PI ? 2 * Math.PI - d : d;
  };
  let intra = 0;
  for (let i = 0; i < labels.length; i++) intra += diff(ang(points[2 * i]!, points[2 * i + 1]!), ang(cx[labels[i]!]!, cy[labels[i]!]!));
  let minInter = Infinity;
  for (let a = 0; a < classes; a++) for (let b = a + 1; b < classes; b++) minInter = Math.min(minInter, diff(ang(cx[a]!, cy[a]!), ang(cx[b]!, cy[b]!)));
  const deg = 180 / Math.PI;
  return { intra: (intra / labels.length) * deg, minInter: minInter * deg };
}

export async function trainToyPanels(set: FeatureSet, identities: number, o: { s: number; m: number; epochs: number; lr: number; seed: number }): Promise<ToyPanel[]> {
  const rows = [...set.labels.keys()].filter((i) => set.labels[i]! < identities);
  const x = new Float32Array(rows.length * set.dim);
  rows.forEach((r, k) => x.set(set.features.subarray(r * set.dim, (r + 1) * set.dim), k * set.dim));
  const labels = Int32Array.from(rows.map((r) => set.labels[r]!));
  const configs: [string, LossConfig][] = [
    ['Softmax', { kind: 'softmax' }],
    [`NSL (s = ${o.s})`, { kind: 'nsl', s: o.s }],
    [`LMCL (s = ${o.s}, m = ${o.m})`, { kind: 'lmcl', s: o.s, m: o.m }],
  ];
  const panels: ToyPanel[] = [];
  for (const [title, loss] of configs) {
    const t = await trainHead(x, labels, set.dim, { loss, layers: [32, 2], epochs: o.epochs, batchSize: 32, lr: o.lr, lrSteps: [Math.round(o.epochs * 0.6), Math.round(o.epochs * 0.85)], seed: o.seed });
    const points = headOutputs(t.head, x, rows.length);
    const st = angleStats(points, labels, identities);
    let hits = 0;
    for (let i = 0; i < labels.length; i++) {
      let best = -Infinity;
      let arg = -1;
      const n = loss.kind === 'softmax' ? 1 : Math.hypot(points[2 * i]!, points[2 * i + 1]!);
      for (let c = 0; c < identities; c++) {
        const w = t.classWeights;
        const wn = loss.kind === 'softmax' ? 1 : Math.hypot(w[2 * c]!, w[2 * c + 1]!);
        const z = (points[2 * i]! * w[2 * c]! + points[2 * i + 1]! * w[2 * c + 1]!) / (n * wn) + (loss.kind === 'softmax' ? t.classBias[c]! : 0);
        if (z > best) {
          best = z;
          arg = c;
        }
      }
      if (arg === labels[i]) hits++;
    }
    panels.push({ title, loss, points, labels, weights: t.classWeights, trainAccuracy: hits / labels.length, intraAngle: st.intra, minInterAngle: st.minInter });
  }
  return panels;
}

/** Two rows of panels: raw 2-D features (with class weight directions), and their angles on the unit circle. */
export function toySvg(panels: readonly ToyPanel[], caption: string): string {
  const P = 300;
  const pad = 24;
  const W = panels.length * P;
  const H = 2 * P + 2 * pad + 40;
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  panels.forEach((p, k) => {
    const ox = k * P;
    let maxAbs = 1e-9;
    for (const v of p.points) maxAbs = Math.max(maxAbs, Math.abs(v));
    const half = (P - 2 * pad) / 2;
    const cx = ox + P / 2;
    const cy1 = P / 2;
    const sc = (0.92 * half) / maxAbs;
    out.push(`<text x="${cx}" y="${pad - 6}" text-anchor="middle" font-size="15" font-weight="bold">${p.title}</text>`);
    out.push(`<rect x="${ox + pad}" y="${pad}" width="${P - 2 * pad}" height="${P - 2 * pad}" fill="none" stroke="#ccc"/>`);
    out.push(`<line x1="${ox + pad}" y1="${cy1}" x2="${ox + P - pad}" y2="${cy1}" stroke="#eee"/><line x1="${cx}" y1="${pad}" x2="${cx}" y2="${P - pad}" stroke="#eee"/>`);
    const classes = p.weights.length / 2;
    for (let c = 0; c < classes; c++) {
      const n = Math.hypot(p.weights[2 * c]!, p.weights[2 * c + 1]!) || 1;
      const wx = (p.weights[2 * c]! / n) * half * 0.95;
      const wy = (p.weights[2 * c + 1]! / n) * half * 0.95;
      out.push(`<line x1="${cx}" y1="${cy1}" x2="${(cx + wx).toFixed(1)}" y2="${(cy1 - wy).toFixed(1)}" stroke="${COLORS[c % COLORS.length]}" stroke-width="1" stroke-dasharray="4 3"/>`);
    }
    for (let i = 0; i < p.labels.length; i++) {
      const col = COLORS[p.labels[i]! % COLORS.length];
      out.push(`<circle cx="${(cx + p.points[2 * i]! * sc).toFixed(1)}" cy="${(cy1 - p.points[2 * i + 1]! * sc).toFixed(1)}" r="2.6" fill="${col}" fill-opacity="0.75"/>`);
    }
    // Angular view: every feature normalised onto the unit circle (radius jittered by class for legibility).
    const cy2 = P + P / 2;
    const R = half * 0.8;
    out.push(`<circle cx="${cx}" cy="${cy2}" r="${R}" fill="none" stroke="#bbb"/>`);
    for (let i = 0; i < p.labels.length; i++) {
      const a = Math.atan2(p.points[2 * i + 1]!, p.points[2 * i]!);
      const r = R * (1 + 0.012 * (p.labels[i]! - classes / 2));
      out.push(`<circle cx="${(cx + Math.cos(a) * r).toFixed(1)}" cy="${(cy2 - Math.sin(a) * r).toFixed(1)}" r="2.6" fill="${COLORS[p.labels[i]! % COLORS.length]}" fill-opacity="0.6"/>`);
    }
    const stats = `train acc ${(100 * p.trainAccuracy).toFixed(0)}% · intra ${p.intraAngle.toFixed(1)}° · min gap ${p.minInterAngle.toFixed(1)}°`;
    out.push(`<text x="${cx}" y="${2 * P + pad}" text-anchor="middle" font-size="12" fill="#333">${stats}</text>`);
  });
  out.push(`<text x="${W / 2}" y="${H - 12}" text-anchor="middle" font-size="12" fill="#555">${caption}</text>`);
  out.push('</svg>');
  return out.join('\n');
}

async function main(argv: string[]): Promise<void> {
  const f = new Flags('toy-figure', argv);
  const data = f.string('data');
  const cache = f.string('cache', 'tmp/orl-features-wasm.json');
  const base = f.string('out', 'docs/figures/toy-2d-features');
  const identities = f.number('identities', 8);
  const o = { s: f.number('s', 8), m: f.number('m', 0.2), epochs: f.number('epochs', 200), lr: f.number('lr', 0.1), seed: f.number('seed', 1) };
  f.done();
  const set = await orlFeatures(data, cache, { log: (s) => console.error(s) });
  const panels = await trainToyPanels(set, identities, o);
  const bound = marginUpperBound(identities, 2).mMax!;
  const caption = `${identities} ORL identities (images + mirrors), frozen MobileFaceNet embeddings -> MLP 128-32-2. m bound for C = ${identities}, d = 2: ${bound.toFixed(3)}; s bound (P = 0.9): ${scaleLowerBound(identities, 0.9).toFixed(2)}.`;
  const svg = toySvg(panels, caption);
  mkdirSync(path.dirname(base), { recursive: true });
  writeFileSync(`${base}.svg`, svg);
  await sharp(Buffer.from(svg)).png().toFile(`${base}.png`);
  for (const p of panels) console.log(`${p.title}: train acc ${(100 * p.trainAccuracy).toFixed(1)}%, mean intra-class angle ${p.intraAngle.toFixed(1)} deg, smallest angle between class centres ${p.minInterAngle.toFixed(1)} deg`);
  console.log(`wrote ${base}.svg and ${base}.png`);
}

runMain(import.meta.url, main);
