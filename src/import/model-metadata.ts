// What a model file cannot say about its input: normalisation (mean/std per channel), channel
// order, alignment template. It comes from a sidecar JSON beside the file (`model.onnx.json` or
// `model.json`) or from flags, the flags winning; input size, layout and output dimension are read
// from the model itself. The vendored models' values are the defaults (their normalisation is in
// the graph, so they take raw RGB 0..255: mean 0, std 1).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { CosfaceError } from '../errors.js';
import { numel, type Graph } from '../graph/ir.js';

export type ChannelOrder = 'rgb' | 'bgr';

export interface ModelMetadata {
  /** Per channel, in R, G, B order: the model sees (pixel - mean) / std. */
  inputMean: [number, number, number];
  inputStd: [number, number, number];
  /** The channel order the model's first layer expects. */
  channels: ChannelOrder;
  /** Face alignment template of the crops (only the ArcFace 112x112 template is built in). */
  alignment: 'arcface';
  /** Read from the model: [H, W, C] per-sample input (NHWC in the engine), output dimension, source layout. */
  inputShape: number[];
  outputDim: number;
  sourceLayout: 'nhwc' | 'nchw';
  /** Where each value came from: 'default', 'sidecar <path>', 'flag'. */
  origin: Record<'inputMean' | 'inputStd' | 'channels', string>;
}

/** User-given values (flags or a sidecar), all optional. */
export interface MetadataOverrides {
  inputMean?: number[];
  inputStd?: number[];
  channels?: ChannelOrder;
}

function badMeta(msg: string): never {
  throw new CosfaceError('BAD_INPUT', msg);
}

/** Parses `--input-mean 127.5` or `--input-mean 123.7,116.3,103.5` (r,g,b). */
export function parseTriple(value: string, flag: string): number[] {
  const parts = value.split(',').map((s) => Number(s.trim()));
  if ((parts.length !== 1 && parts.length !== 3) || parts.some((v) => !Number.isFinite(v))) {
    badMeta(`${flag} takes one number or three (r,g,b), got '${value}'`);
  }
  return parts;
}

export function parseChannels(value: string): ChannelOrder {
  if (value !== 'rgb' && value !== 'bgr') badMeta(`--channels must be rgb or bgr, got '${value}'`);
  return value;
}

function triple(v: number[], what: string): [number, number, number] {
  if (v.length === 1) return [v[0]!, v[0]!, v[0]!];
  if (v.length === 3) return [v[0]!, v[1]!, v[2]!];
  return badMeta(`${what}: one value or three (r,g,b), got ${v.length}`);
}

/** Reads `<file>.json`, else `<file without extension>.json`, beside the model; null if neither. */
export async function readSidecar(modelPath: string): Promise<{ path: string; overrides: MetadataOverrides } | null> {
  const candidates = [`${modelPath}.json`, modelPath.replace(/\.[^./\\]+$/, '.json')].filter((p, i, a) => p !== modelPath && a.indexOf(p) === i);
  for (const path of candidates) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      continue;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new CosfaceError('BAD_MODEL', `model metadata ${path} is not valid JSON (${(e as Error).message})`, { cause: e });
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CosfaceError('BAD_MODEL', `model metadata ${path}: expected a JSON object`);
    const o = raw as Record<string, unknown>;
    const nums = (k: string): number[] | undefined => {
      const v = o[k];
      if (v === undefined) return undefined;
      const arr = typeof v === 'number' ? [v] : Array.isArray(v) ? v : null;
      if (!arr || !arr.every((x) => typeof x === 'number' && Number.isFinite(x)) || (arr.length !== 1 && arr.length !== 3)) {
        throw new CosfaceError('BAD_MODEL', `model metadata ${path}: ${k} must be a number or [r, g, b]`);
      }
      return arr as number[];
    };
    const channels = o.channels;
    if (channels !== undefined && channels !== 'rgb' && channels !== 'bgr') throw new CosfaceError('BAD_MODEL', `model metadata ${path}: channels must be "rgb" or "bgr"`);
    if (o.alignment !== undefined && o.alignment !== 'arcface') throw new CosfaceError('BAD_MODEL', `model metadata ${path}: alignment "${String(o.alignment)}" (only "arcface" is built in)`);
    return { path, overrides: { inputMean: nums('inputMean'), inputStd: nums('inputStd'), ...(channels ? { channels: channels as ChannelOrder } : {}) } };
  }
  return null;
}

/** Metadata in use for a model: defaults, then the sidecar, then the flags. */
export async function resolveModelMetadata(modelPath: string, graph: Graph, flags: MetadataOverrides = {}): Promise<ModelMetadata> {
  const sidecar = await readSidecar(modelPath);
  const origin: ModelMetadata['origin'] = { inputMean: 'default', inputStd: 'default', channels: 'default' };
  let mean: number[] = [0];
  let std: number[] = [1];
  let channels: ChannelOrder = 'rgb';
  for (const [src, o] of [[sidecar ? `sidecar ${sidecar.path}` : '', sidecar?.overrides ?? {}], ['flag', flags]] as const) {
    if (o.inputMean) {
      mean = o.inputMean;
      origin.inputMean = src;
    }
    if (o.inputStd) {
      std = o.inputStd;
      origin.inputStd = src;
    }
    if (o.channels) {
      channels = o.channels;
      origin.channels = src;
    }
  }
  const inputStd = triple(std, 'input std');
  if (inputStd.some((s) => s === 0)) badMeta('input std must not be 0');
  return {
    inputMean: triple(mean, 'input mean'),
    inputStd,
    channels,
    alignment: 'arcface',
    inputShape: graph.input.shape,
    outputDim: numel(graph.output.shape),
    sourceLayout: graph.sourceInputLayout ?? 'nhwc',
    origin,
  };
}

/** True when the metadata asks for no change of the pixels the engine is fed. */
export function isIdentityInput(m: ModelMetadata): boolean {
  return m.channels === 'rgb' && m.inputMean.every((v) => v === 0) && m.inputStd.every((v) => v === 1);
}

/**
 * The id galleries and calibrations know a user's model by: `<file name>-<first 12 hex of its
 * SHA-256>`, so another file (or another version of the same name) never mixes with it.
 */
export async function modelIdOf(path: string): Promise<string> {
  const bytes = await readFile(path).catch((e: NodeJS.ErrnoException) => {
    throw new CosfaceError('BAD_MODEL', `cannot read model file ${path}: ${e.code ?? e.message}`);
  });
  return `${basename(path).replace(/\.[^.]+$/, '')}-${createHash('sha256').update(bytes).digest('hex').slice(0, 12)}`;
}
