// The margin losses (Softmax, NSL, LMCL, combined) forward and backward in WGSL on the shared
// WebGPU device: normalise rows, cosine matrix, per-row softmax cross-entropy with the margin,
// both gradient products, back through the normalisation; one submission per call.
import { getGpu } from '../backend/webgpu/device.js';
import { PipelineCache, type ShaderSpec } from '../backend/webgpu/pipeline-cache.js';
import { LOSS_MARGIN_WGSL, LOSS_MATMUL_WGSL, LOSS_NORMALIZE_WGSL } from './loss-wgsl.js';
import { CosfaceError } from '../errors.js';
import { checkLossInput, resolveLoss, type LossConfig, type LossInput, type LossOutput, type ResolvedLoss } from './margin-loss.js';

const MAX_GRID = 65535;

const NORMALIZE: ShaderSpec = { name: 'loss-normalize', code: LOSS_NORMALIZE_WGSL, entryPoint: 'normalize_rows' };
const NORMALIZE_BACK: ShaderSpec = { name: 'loss-normalize', code: LOSS_NORMALIZE_WGSL, entryPoint: 'normalize_backward' };
const MATMUL: ShaderSpec = { name: 'loss-matmul', code: LOSS_MATMUL_WGSL, entryPoint: 'main' };
const MARGIN: ShaderSpec = { name: 'loss-margin', code: LOSS_MARGIN_WGSL, entryPoint: 'margin_rows' };
const COLSUM: ShaderSpec = { name: 'loss-margin', code: LOSS_MARGIN_WGSL, entryPoint: 'column_sum' };

function rowsGrid(rows: number): [number, number] {
  return [Math.min(rows, MAX_GRID), Math.ceil(rows / MAX_GRID)];
}

export class WebGpuMarginLoss {
  private constructor(
    private readonly device: GPUDevice,
    private readonly cache: PipelineCache,
    /** e.g. the adapter name, for reports. */
    readonly adapterName: string,
  ) {}

  static async create(): Promise<WebGpuMarginLoss> {
    const gpu = await getGpu();
    const loss = new WebGpuMarginLoss(gpu.device, new PipelineCache(gpu.device), gpu.adapterName);
    // Compile every pipeline now, so WGSL errors surface at creation, not in the first step.
    await Promise.all([NORMALIZE, NORMALIZE_BACK, MATMUL, MARGIN, COLSUM].map((s) => loss.cache.get(s)));
    return loss;
  }

  /** Loss and gradients for one batch, in float32. `withCos` also reads back the n x c cosines. */
  async run(cfg: LossConfig | ResolvedLoss, inp: LossInput<Float32Array>, withCos = false): Promise<LossOutput<Float32Array>> {
    checkLossInput(inp);
    const r = 'normalize' in cfg ? cfg : resolveLoss(cfg);
    const { n, d, c, labels } = inp;
    let valid = 0;
    for (let i = 0; i < n; i++) if (labels[i] !== -1) valid++;
    const dev = this.device;
    const made: GPUBuffer[] = [];
    const S = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buf = (floats: number, usage = S): GPUBuffer => {
      const b = dev.createBuffer({ size: Math.max(16, Math.ceil((floats * 4) / 16) * 16), usage });
      made.push(b);
      return b;
    };
    const upload = (data: Float32Array | Int32Array): GPUBuffer => {
      const b = buf(data.length);
      dev.queue.writeBuffer(b, 0, data.buffer, data.byteOffset, data.byteLength);
      return b;
    };
    const uniform = (words: ArrayBuffer): GPUBuffer => {
      const b = buf(words.byteLength / 4, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
      dev.queue.writeBuffer(b, 0, words);
      return b;
    };
    const u32s = (...v: number[]) => {
      const a = new Uint32Array(Math.ceil(v.length / 4) * 4);
      a.set(v);
      return a.buffer;
    };
    try {
      const pipes = {
        norm: await this.cache.get(NORMALIZE),
        normBack: await this.cache.get(NORMALIZE_BACK),
        matmul: await this.cache.get(MATMUL),
        margin: await this.cache.get(MARGIN),
        colsum: await this.cache.get(COLSUM),
      };
      const x = upload(inp.x);
      const w = upload(inp.w);
      const lab = upload(labels);
      const bias = upload(inp.bias && !r.normalize ? inp.bias : new Float32Array(1));
      dev.pushErrorScope('validation');
      dev.pushErrorScope('out-of-memory');
      const enc = dev.createCommandEncoder({ label: 'margin-loss' });
      const pass = enc.beginComputePass();
      const dispatch = (pipe: GPUComputePipeline, entries: [number, GPUBuffer][], gx: number, gy = 1) => {
        pass.setPipeline(pipe);
        pass.setBindGroup(0, dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: entries.map(([binding, buffer]) => ({ binding, resource: { buffer } })) }));
        pass.dispatchWorkgroups(gx, gy);
      };
      const matmul = (a: GPUBuffer, b: GPUBuffer, out: GPUBuffer, R: number, C: number, K: number, sar: number, sak: number, sbk: number, sbc: number) => {
        if (Math.ceil(R / 16) > MAX_GRID || Math.ceil(C / 16) > MAX_GRID) throw new CosfaceError('BAD_INPUT', `margin loss on WebGPU: a ${R} x ${C} product exceeds the dispatch limit`);
        dispatch(pipes.matmul, [[0, a], [1, b], [2, out], [3, uniform(u32s(R, C, K, sar, sak, sbk, sbc))]], Math.ceil(C / 16), Math.ceil(R / 16));
      };
      let xn = x;
      let wn = w;
      let xNorms: GPUBuffer | null = null;
      let wNorms: GPUBuffer | null = null;
      if (r.normalize) {
        xn = buf(n * d);
        wn = buf(c * d);
        xNorms = buf(n);
        wNorms = buf(c);
        dispatch(pipes.norm, [[0, x], [1, xn], [2, xNorms], [3, uniform(u32s(n, d))]], ...rowsGrid(n));
        dispatch(pipes.norm, [[0, w], [1, wn], [2, wNorms], [3, uniform(u32s(c, d))]], ...rowsGrid(c));
      }
      const cos = buf(n * c);
      matmul(xn, wn, cos, n, c, d, d, 1, 1, d);
      const dcos = buf(n * c);
      const rowOut = buf(2 * n);
      const mp = new ArrayBuffer(32);
      new Uint32Array(mp, 0, 4).set([n, c, r.normalize ? 1 : 0, Math.max(1, valid)]);
      new Float32Array(mp, 16, 4).set([r.s, r.m1, r.m2, r.m3]);
      const marginParams = uniform(mp);
      dispatch(pipes.margin, [[0, cos], [1, lab], [2, bias], [3, dcos], [4, rowOut], [5, marginParams]], ...rowsGrid(n));
      const dxn = buf(n * d);
      const dwn = buf(c * d);
      matmul(dcos, wn, dxn, n, d, c, c, 1, d, 1);
      matmul(dcos, xn, dwn, c, d, n, 1, c, d, 1);
      let dx = dxn;
      let dw = dwn;
      const dbias = buf(c);
      if (r.normalize) {
        dx = buf(n * d);
        dw = buf(c * d);
        dispatch(pipes.normBack, [[1, xn], [2, xNorms!], [4, dxn], [5, dx], [3, uniform(u32s(n, d))]], ...rowsGrid(n));
        dispatch(pipes.normBack, [[1, wn], [2, wNorms!], [4, dwn], [5, dw], [3, uniform(u32s(c, d))]], ...rowsGrid(c));
      } else {
        dispatch(pipes.colsum, [[3, dcos], [5, marginParams], [6, dbias]], Math.ceil(c / 64));
      }
      pass.end();
      const reads: [GPUBuffer, number][] = [[rowOut, 2 * n], [dx, n * d], [dw, c * d], [dbias, c]];
      if (withCos) reads.push([cos, n * c]);
      const staging = reads.map(([src, floats]) => {
        const st = buf(floats, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
        enc.copyBufferToBuffer(src, 0, st, 0, Math.ceil((floats * 4) / 16) * 16);
        return st;
      });
      dev.queue.submit([enc.finish()]);
      const oom = await dev.popErrorScope();
      const verr = await dev.popErrorScope();
      if (oom || verr) throw new CosfaceError('GPU_ERROR', `margin loss on WebGPU: ${(oom ?? verr)!.message}`);
      await Promise.all(staging.map((st) => st.mapAsync(GPUMapMode.READ)));
      const back = staging.map((st, k) => new Float32Array(st.getMappedRange().slice(0, reads[k]![1] * 4)));
      staging.forEach((st) => st.unmap());
      const rows = back[0]!;
      let loss = 0;
      let correct = 0;
      for (let i = 0; i < n; i++) {
        loss += rows[2 * i]!;
        correct += rows[2 * i + 1]!;
      }
      return {
        loss: valid ? loss / valid : 0,
        valid,
        correct,
        dx: back[1]!,
        dw: back[2]!,
        dbias: back[3]!,
        cos: withCos ? back[4]! : new Float32Array(0),
      };
    } finally {
      for (const b of made) b.destroy();
    }
  }
}
