// The ORL / AT&T face set (s1..s40, 1.pgm..10.pgm, grey 92x112) as frozen embeddings for the
// training experiments: a PGM (P5) reader, the listing, and a feature cache under tmp/.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { CosfaceError } from '../errors.js';

export interface GreyImage {
  width: number;
  height: number;
  /** 8-bit grey, row-major, values scaled to 0..255 when the file's maxval is not 255. */
  data: Uint8Array;
}

/** Reads a binary PGM (P5) with 8-bit samples; '#' comments in the header are skipped. */
export function readPgm(buf: Uint8Array, source = 'PGM'): GreyImage {
  let pos = 0;
  const fields: string[] = [];
  const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c;
  while (fields.length < 4) {
    while (pos < buf.length && isSpace(buf[pos]!)) pos++;
    if (pos >= buf.length) throw new CosfaceError('BAD_IMAGE', `${source}: truncated PGM header`);
    if (buf[pos] === 0x23) {
      while (pos < buf.length && buf[pos] !== 0x0a && buf[pos] !== 0x0d) pos++;
      continue;
    }
    let tok = '';
    while (pos < buf.length && !isSpace(buf[pos]!) && buf[pos] !== 0x23) tok += String.fromCharCode(buf[pos++]!);
    fields.push(tok);
  }
  pos++; // exactly one whitespace byte separates the header from the samples
  const [magic, ws, hs, ms] = fields as [string, string, string, string];
  if (magic !== 'P5') throw new CosfaceError('BAD_IMAGE', `${source}: not a binary PGM (magic ${JSON.stringify(magic)}, expected P5)`);
  const width = Number(ws);
  const height = Number(hs);
  const maxval = Number(ms);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new CosfaceError('BAD_IMAGE', `${source}: bad PGM size ${ws}x${hs}`);
  if (!Number.isInteger(maxval) || maxval <= 0 || maxval > 255) throw new CosfaceError('BAD_IMAGE', `${source}: PGM maxval ${ms} unsupported (8-bit only)`);
  if (buf.length - pos < width * height) throw new CosfaceError('BAD_IMAGE', `${source}: PGM data truncated (${buf.length - pos} of ${width * height} bytes)`);
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = maxval === 255 ? buf[pos + i]! : Math.round((buf[pos + i]! * 255) / maxval);
  return { width, height, data };
}

export interface OrlImage {
  file: string;
  /** 0-based identity (s1 -> 0). */
  identity: number;
  /** 1..10 */
  shot: number;
}

/** The ORL images under dir (dir or dir/att_faces), ordered by identity then shot. */
export function listOrl(dir: string): OrlImage[] {
  const root = existsSync(path.join(dir, 'att_faces')) ? path.join(dir, 'att_faces') : dir;
  if (!existsSync(root)) throw new CosfaceError('BAD_INPUT', `ORL: no such folder ${dir}`);
  const out: OrlImage[] = [];
  for (const sub of readdirSync(root)) {
    const m = /^s(\d+)$/.exec(sub);
    if (!m) continue;
    for (const f of readdirSync(path.join(root, sub))) {
      const k = /^(\d+)\.pgm$/.exec(f);
      if (k) out.push({ file: path.join(root, sub, f), identity: Number(m[1]) - 1, shot: Number(k[1]) });
    }
  }
  if (out.length === 0) throw new CosfaceError('BAD_INPUT', `ORL: no sN/*.pgm files under ${root}`);
  out.sort((a, b) => a.identity - b.identity || a.shot - b.shot);
  return out;
}

/**
 * The model input for one ORL image: grey copied into R, G and B, optionally mirrored, and the
 * whole 92x112 crop stretched to size x size. ORL crops are not landmark-aligned, so this is a
 * rougher input than the aligned crops the embedder was trained on.
 */
export async function orlModelInput(img: GreyImage, size: number, mirror = false, lowRes = 0): Promise<Float32Array> {
  let src: Uint8Array = img.data;
  let sw = img.width;
  let sh = img.height;
  if (lowRes > 0) {
    // A degraded domain for the experiments: the face brought down to lowRes pixels wide first.
    sw = lowRes;
    sh = Math.max(1, Math.round((lowRes * img.height) / img.width));
    const small = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 1 } }).resize(sw, sh, { fit: 'fill', kernel: 'linear' }).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    if (small.info.channels !== 1) throw new CosfaceError('BAD_IMAGE', `ORL low-res: expected 1 channel, got ${small.info.channels}`);
    src = small.data;
  }
  let p = sharp(src, { raw: { width: sw, height: sh, channels: 1 } });
  if (mirror) p = p.flop();
  // sharp may hand back 1-channel input as 3-channel sRGB: read the channel count it reports.
  const { data, info } = await p.resize(size, size, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size) throw new CosfaceError('BAD_IMAGE', `ORL resize gave ${info.width}x${info.height}, expected ${size}x${size}`);
  const out = new Float32Array(size * size * 3);
  for (let i = 0; i < size * size; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = data[i * info.channels]!;
  return out;
}

export interface FeatureSet {
  /** Where the features came from (model, backend, input preparation). */
  source: string;
  dim: number;
  /** n x dim, row-major. */
  features: Float32Array;
  labels: Int32Array;
  /** 0 for the image itself, 1 for its mirror image (same identity, same shot). */
  mirrored: Uint8Array;
  shots: Int32Array;
}

interface FeatureFile {
  source: string;
  dim: number;
  rows: { identity: number; shot: number; mirrored: number; f: number[] }[];
}

export function saveFeatures(file: string, set: FeatureSet): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const rows: FeatureFile['rows'] = [];
  for (let i = 0; i < set.labels.length; i++) {
    rows.push({ identity: set.labels[i]!, shot: set.shots[i]!, mirrored: set.mirrored[i]!, f: Array.from(set.features.subarray(i * set.dim, (i + 1) * set.dim)) });
  }
  writeFileSync(file, JSON.stringify({ source: set.source, dim: set.dim, rows } satisfies FeatureFile));
}

export function loadFeatures(file: string): FeatureSet {
  const j = JSON.parse(readFileSync(file, 'utf8')) as FeatureFile;
  const n = j.rows.length;
  const set: FeatureSet = { source: j.source, dim: j.dim, features: new Float32Array(n * j.dim), labels: new Int32Array(n), mirrored: new Uint8Array(n), shots: new Int32Array(n) };
  j.rows.forEach((r, i) => {
    if (r.f.length !== j.dim) throw new CosfaceError('BAD_INPUT', `${file}: row ${i} has ${r.f.length} values, expected ${j.dim}`);
    set.features.set(r.f, i * j.dim);
    set.labels[i] = r.identity;
    set.mirrored[i] = r.mirrored;
    set.shots[i] = r.shot;
  });
  return set;
}

/** Which features of our MobileFaceNet: the 128-d unit embedding, or the 512-d vector before its last fully connected layer. */
export type FeatureLayer = 'embedding' | 'prefc';

interface FeatureModel {
  size: number;
  dim: number;
  describe: string;
  run(input: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

async function openFeatureModel(layer: FeatureLayer, backend: 'wasm' | 'webgpu' | 'auto'): Promise<FeatureModel> {
  const { Embedder, DEFAULT_EMBEDDER_PATH } = await import('../embedder.js');
  if (layer === 'embedding') {
    const e = await Embedder.create({ backend });
    return { size: e.inputShape[0]!, dim: e.dim, describe: `mobilefacenet-arcface embedding (128-d, unit) on ${e.backend.name}`, run: (x, n) => e.embed(x, n), dispose: () => e.dispose() };
  }
  // The backbone without its last fully connected layer: the graph ends at that layer's input.
  const { createBackend, loadModelFile, runGraph } = await import('../engine.js');
  const { optimizeGraph } = await import('../graph/passes.js');
  const { numel } = await import('../graph/ir.js');
  const graph = await loadModelFile(DEFAULT_EMBEDDER_PATH);
  optimizeGraph(graph);
  const last = graph.nodes[graph.nodes.length - 1];
  if (!last || last.op !== 'fullyConnected' || last.output !== graph.output.name) throw new CosfaceError('BAD_MODEL', 'prefc features: the embedder graph does not end in a fully connected layer');
  graph.nodes.pop();
  const inName = last.inputs[0]!;
  graph.output = { name: inName, shape: graph.shapes.get(inName)! };
  const be = await createBackend(backend);
  const compiled = await be.compile(graph);
  return {
    size: graph.input.shape[0]!,
    dim: numel(graph.output.shape),
    describe: `mobilefacenet-arcface features before fc1 (${numel(graph.output.shape)}-d, raw) on ${be.name}`,
    run: (x, n) => runGraph(compiled, x, n),
    dispose: async () => {
      compiled.dispose();
      await be.dispose();
    },
  };
}

/**
 * ORL features from our MobileFaceNet on our engine (each image and its mirror image), read
 * from `cacheFile` when it exists, else computed in batches and written there.
 */
export async function orlFeatures(dir: string, cacheFile: string, opts: { backend?: 'wasm' | 'webgpu' | 'auto'; layer?: FeatureLayer; lowRes?: number; log?: (s: string) => void } = {}): Promise<FeatureSet> {
  if (existsSync(cacheFile)) return loadFeatures(cacheFile);
  const log = opts.log ?? (() => {});
  const images = listOrl(dir);
  const model = await openFeatureModel(opts.layer ?? 'embedding', opts.backend ?? 'wasm');
  try {
    const h = model.size;
    const dim = model.dim;
    const n = images.length * 2;
    const set: FeatureSet = { source: `${model.describe}; ORL grey->RGB, whole 92x112 crop resized to ${h}x${h} (not aligned)${opts.lowRes ? `, first reduced to ${opts.lowRes} px wide` : ''}; image and mirror`, dim, features: new Float32Array(n * dim), labels: new Int32Array(n), mirrored: new Uint8Array(n), shots: new Int32Array(n) };
    const batch = 16;
    const per = h * h * 3;
    let row = 0;
    for (let b = 0; b < images.length; b += batch / 2) {
      const chunk = images.slice(b, b + batch / 2);
      const input = new Float32Array(chunk.length * 2 * per);
      let k = 0;
      for (const im of chunk) {
        const grey = readPgm(readFileSync(im.file), im.file);
        for (const mirror of [false, true]) {
          input.set(await orlModelInput(grey, h, mirror, opts.lowRes ?? 0), k * per);
          set.labels[row + k] = im.identity;
          set.shots[row + k] = im.shot;
          set.mirrored[row + k] = mirror ? 1 : 0;
          k++;
        }
      }
      const out = await model.run(input, k);
      set.features.set(out, row * dim);
      row += k;
      if (row % 160 === 0 || row === n) log(`embedded ${row}/${n}`);
    }
    saveFeatures(cacheFile, set);
    return set;
  } finally {
    await model.dispose();
  }
}
