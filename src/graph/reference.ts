// Plain scalar implementation of every executable op, written for clarity, not speed.
// It is the independent reference that the WGSL and WASM kernels are tested against.
import { CosfaceError } from '../errors.js';
import { numel, type Activation, type Graph, type GraphNode, type Pads } from './ir.js';

function act(v: number, activation: Activation, alpha: Float32Array | undefined, c: number): number {
  if (activation === 'relu') return v > 0 ? v : 0;
  if (activation === 'prelu') return v > 0 ? v : v * alpha![c]!;
  return v;
}

/** conv2d on one sample [H, W, inC] -> [oh, ow, outC]; filter [outC, kh, kw, inC]. */
export function refConv2d(
  x: Float32Array, h: number, w: number, inC: number,
  filter: Float32Array, bias: Float32Array, outC: number, kh: number, kw: number,
  sh: number, sw: number, pads: Pads, activation: Activation, alpha?: Float32Array,
  residual?: Float32Array, padValue?: Float32Array,
): { y: Float32Array; oh: number; ow: number } {
  const oh = Math.floor((h + pads.top + pads.bottom - kh) / sh) + 1;
  const ow = Math.floor((w + pads.left + pads.right - kw) / sw) + 1;
  const y = new Float32Array(oh * ow * outC);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let o = 0; o < outC; o++) {
        let acc = bias[o]!;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh + ky - pads.top;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw + kx - pads.left;
            const inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
            for (let c = 0; c < inC; c++) {
              const v = inside ? x[(iy * w + ix) * inC + c]! : padValue ? padValue[c]! : 0;
              acc += v * filter[((o * kh + ky) * kw + kx) * inC + c]!;
            }
          }
        }
        const i = (oy * ow + ox) * outC + o;
        y[i] = act(acc, activation, alpha, o) + (residual ? residual[i]! : 0);
      }
    }
  }
  return { y, oh, ow };
}

/** depthwise conv on one sample [H, W, C]; filter [kh, kw, C]. */
export function refDepthwise(
  x: Float32Array, h: number, w: number, C: number,
  filter: Float32Array, bias: Float32Array, kh: number, kw: number,
  sh: number, sw: number, pads: Pads, activation: Activation, alpha?: Float32Array, residual?: Float32Array,
): { y: Float32Array; oh: number; ow: number } {
  const oh = Math.floor((h + pads.top + pads.bottom - kh) / sh) + 1;
  const ow = Math.floor((w + pads.left + pads.right - kw) / sw) + 1;
  const y = new Float32Array(oh * ow * C);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let c = 0; c < C; c++) {
        let acc = bias[c]!;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh + ky - pads.top;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw + kx - pads.left;
            if (ix < 0 || ix >= w) continue;
            acc += x[(iy * w + ix) * C + c]! * filter[(ky * kw + kx) * C + c]!;
          }
        }
        const i = (oy * ow + ox) * C + c;
        y[i] = act(acc, activation, alpha, c) + (residual ? residual[i]! : 0);
      }
    }
  }
  return { y, oh, ow };
}

/** y = act(W x + b) (+ residual); weights [outF, inF]. */
export function refFullyConnected(
  x: Float32Array, inF: number, weights: Float32Array, bias: Float32Array, outF: number,
  activation: Activation, alpha?: Float32Array, residual?: Float32Array,
): Float32Array {
  const y = new Float32Array(outF);
  for (let o = 0; o < outF; o++) {
    let acc = bias[o]!;
    for (let i = 0; i < inF; i++) acc += weights[o * inF + i]! * x[i]!;
    y[o] = act(acc, activation, alpha, o) + (residual ? residual[o]! : 0);
  }
  return y;
}

export function refL2Normalize(x: Float32Array): Float32Array {
  let s = 0;
  for (const v of x) s += v * v;
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  return x.map((v) => v * inv);
}

/** max pooling on one sample [H, W, C]; padded positions are ignored (never win). */
export function refMaxPool2d(
  x: Float32Array, h: number, w: number, C: number, kh: number, kw: number, sh: number, sw: number, pads: Pads,
): { y: Float32Array; oh: number; ow: number } {
  const oh = Math.floor((h + pads.top + pads.bottom - kh) / sh) + 1;
  const ow = Math.floor((w + pads.left + pads.right - kw) / sw) + 1;
  const y = new Float32Array(oh * ow * C);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let c = 0; c < C; c++) {
        let m = -Infinity;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh + ky - pads.top;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw + kx - pads.left;
            if (ix < 0 || ix >= w) continue;
            const v = x[(iy * w + ix) * C + c]!;
            if (v > m) m = v;
          }
        }
        y[(oy * ow + ox) * C + c] = m;
      }
    }
  }
  return { y, oh, ow };
}

function runNode(node: GraphNode, get: (t: string) => Float32Array, shapes: Map<string, number[]>): Float32Array {
  const x = get(node.inputs[0]!);
  const xs = shapes.get(node.inputs[0]!)!;
  const residual = node.inputs[1] !== undefined ? get(node.inputs[1]) : undefined;
  switch (node.op) {
    case 'conv2d':
      return refConv2d(x, xs[0]!, xs[1]!, node.inC, node.filter, node.bias, node.outC, node.kh, node.kw, node.strideH, node.strideW, node.pads, node.activation, node.alpha, residual, node.padValue).y;
    case 'depthwiseConv2d':
      return refDepthwise(x, xs[0]!, xs[1]!, node.channels, node.filter, node.bias, node.kh, node.kw, node.strideH, node.strideW, node.pads, node.activation, node.alpha, residual).y;
    case 'fullyConnected':
      return refFullyConnected(x, node.inF, node.weights, node.bias, node.outF, node.activation, node.alpha, residual);
    case 'add': {
      const b = get(node.inputs[1]!);
      const C = xs[xs.length - 1]!;
      return x.map((v, i) => act(v + b[i]!, node.activation, node.alpha, i % C));
    }
    case 'affine': {
      const C = xs[xs.length - 1]!;
      return x.map((v, i) => v * node.scale[i % C]! + node.shift[i % C]!);
    }
    case 'activation': {
      const C = xs[xs.length - 1]!;
      return x.map((v, i) => act(v, node.activation, node.alpha, i % C));
    }
    case 'pad': {
      const [h, w, c] = xs as [number, number, number];
      const p = node.pads;
      const W = w + p.left + p.right;
      const y = new Float32Array((h + p.top + p.bottom) * W * c).fill(node.value ?? 0);
      for (let iy = 0; iy < h; iy++) for (let ix = 0; ix < w; ix++) for (let k = 0; k < c; k++) y[((iy + p.top) * W + ix + p.left) * c + k] = x[(iy * w + ix) * c + k]!;
      return y;
    }
    case 'mul': {
      const C = xs[xs.length - 1]!;
      if (node.value) return x.map((v, i) => v * node.value![i % C]!);
      const b = get(node.inputs[1]!);
      return x.map((v, i) => v * b[i]!);
    }
    case 'sub': {
      const b = get(node.inputs[1]!);
      return x.map((v, i) => v - b[i]!);
    }
    case 'abs':
      return x.map((v) => Math.abs(v));
    case 'maximum':
    case 'minimum': {
      const C = xs[xs.length - 1]!;
      const f = node.op === 'maximum' ? Math.max : Math.min;
      return x.map((v, i) => f(v, node.value[i % C]!));
    }
    case 'reshape':
      return x;
    case 'l2normalize':
      return refL2Normalize(x);
    case 'maxPool2d': {
      const [h, w, c] = xs as [number, number, number];
      return refMaxPool2d(x, h, w, c, node.kh, node.kw, node.strideH, node.strideW, node.pads).y;
    }
    case 'padChannels': {
      const c = xs[xs.length - 1]!;
      const oc = node.before + c + node.after;
      const y = new Float32Array((x.length / c) * oc);
      for (let p = 0; p < x.length / c; p++) for (let k = 0; k < c; k++) y[p * oc + node.before + k] = x[p * c + k]!;
      return y;
    }
    case 'sigmoid':
      return x.map((v) => 1 / (1 + Math.exp(-v)));
    case 'concat': {
      const parts = node.inputs.map((t) => get(t));
      const y = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let off = 0;
      for (const p of parts) {
        y.set(p, off);
        off += p.length;
      }
      return y;
    }
    default:
      throw new CosfaceError('UNSUPPORTED_OP', `reference: op '${(node as GraphNode).op}' (node ${(node as GraphNode).name}) has no reference implementation`);
  }
}

/** Runs a graph on n samples with the scalar reference. */
export function runReference(graph: Graph, input: Float32Array, n: number): Float32Array {
  const inSize = numel(graph.input.shape);
  const outSize = numel(graph.output.shape);
  const out = new Float32Array(n * outSize);
  for (let s = 0; s < n; s++) {
    const values = new Map<string, Float32Array>();
    values.set(graph.input.name, input.subarray(s * inSize, (s + 1) * inSize));
    const get = (t: string) => {
      const v = values.get(t);
      if (!v) throw new CosfaceError('BAD_MODEL', `reference: tensor ${t} used before it is computed`);
      return v;
    };
    for (const node of graph.nodes) values.set(node.output, runNode(node, get, graph.shapes));
    out.set(get(graph.output.name), s * outSize);
  }
  return out;
}
