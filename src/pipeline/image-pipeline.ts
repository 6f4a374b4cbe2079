// Pixels -> faces, with no file or decoder access (so it also runs in browsers, src/web/): detect
// (BlazeFace), landmarks (FaceMesh, BlazeFace's four points as fallback), align to the ArcFace
// template, quality, embed (MobileFaceNet) and normalise. The three networks are compiled once onto
// the injected backend and each runs batched per photo. face-pipeline.ts adds model files and decoding in Node.
import type { CompiledGraph } from '../backend/backend.js';
import { CosfaceError } from '../errors.js';
import { numel, type Graph } from '../graph/ir.js';
import { appendL2Normalize, optimizeGraph } from '../graph/passes.js';
import { readTfjsGraphModel, type TfjsModelJson } from '../import/tfjs/read-tfjs.js';
import { readTflite } from '../import/tflite/read-tflite.js';
import { ALIGNED_WARP, alignmentTransform, ARCFACE_TEMPLATE_112, applySimilarity, invertSimilarity, warpCrops, type BatchWarp, type Point } from './align.js';
import type { RgbImage } from './decode.js';
import { DETECTOR_OUTPUTS, DETECTOR_SIZE, detectFaces, type Detection, type DetectorOptions } from './detect.js';
import { detectorFourPoints, meshLandmarks, MESH_OUTPUTS, MESH_SIZE, type LandmarkOptions } from './landmarks.js';
import { faceQuality, type QualityParts } from './quality.js';
import { timed, type StageTimer } from '../stage-timer.js';
import { GangBatcher, type RunGraph } from './gang-batch.js';
import { shrinkingWarp } from './pyramid.js';

/** Anything that compiles a graph for execution: a Backend (webgpu, wasm) or the reference adapter. */
export interface GraphCompiler {
  compile(graph: Graph): Promise<CompiledGraph>;
  /**
   * The batched alignment warp (Backend.warp): the FaceMesh and aligned crops of a photo are cut
   * in one call each. Without it (the reference adapter) warpToCrop cuts them one by one.
   */
  warp?: BatchWarp;
}

export interface ImagePipelineOptions {
  backend: GraphCompiler;
  detector?: DetectorOptions;
  landmarks?: LandmarkOptions;
  /**
   * A detection the mesh rejects (face flag < 0.5) is kept, aligned on BlazeFace's four points,
   * only when its detector score is at least this (default 0.75); below it is taken for a false
   * detection and dropped.
   */
  fallbackMinScore?: number;
  /**
   * Face-flag probability from the mesh above which the mesh's landmarks are trusted (default
   * 0.9). Real faces score about 1.0; a false detection on a patterned background
   * (face_recognition's obama1.jpg: a window grid) scored 0.60 and went through at 0.5.
   */
  meshMinFlag?: number;
}

export interface Face {
  /** [x, y, w, h] in photo pixels (after EXIF orientation). */
  box: [number, number, number, number];
  /** Five points in photo pixels: eyes, nose tip, mouth corners (left/right as seen in the image). */
  landmarks: [number, number][];
  /** Detector score 0..1. */
  score: number;
  /** Combined quality 0..1 (see quality.ts). */
  quality: number;
  /** Unit-length 128-d embedding. */
  embedding: number[];
  /** 'mesh': FaceMesh five points; 'detector': BlazeFace four points (the mesh saw no face). */
  alignment: 'mesh' | 'detector';
  qualityParts: QualityParts;
}

export interface ImagePipeline {
  /** Length of the embeddings (128 for the vendored model; a user model's own, e.g. 512). */
  readonly embeddingDim: number;
  /** Every face in decoded RGB pixels; a timer receives the detect, landmarks, align and embed stages. */
  facesInImage(img: RgbImage, opts?: FacesOptions): Promise<Face[]>;
  /**
   * Every face of several photos, each network run once per step for all of them (the detector
   * views of every photo in one batch, then every mesh crop, then every aligned crop), so a
   * backend that splits a batch over workers keeps them all busy on photos with one face each.
   * The faces are those facesInImage finds photo by photo; a photo that fails gives its Error.
   */
  facesInImages(imgs: readonly RgbImage[], opts?: FacesOptions): Promise<(Face[] | Error)[]>;
  /** Detection only. */
  detect(img: RgbImage): Promise<Detection[]>;
  /** Embeds n aligned 112x112 RGB crops (float 0..255, HWC back to back); n x embeddingDim unit vectors. */
  embedAligned(crops: Float32Array, n: number): Promise<Float32Array>;
  /** Runs each network and the warp once on blank input, so the first photo pays no first-run costs. */
  warmUp(): Promise<void>;
  dispose(): void;
}

/** The bytes of the three vendored models (what models/ holds), however they were read. */
export interface FacesOptions {
  /** Receives the stages detect, landmarks, align (warp and quality) and embed. */
  timer?: StageTimer;
}

export interface PipelineModelFiles {
  /** blazeface-back.json and its weights (the files its weightsManifest names, concatenated in order). */
  detectorJson: TfjsModelJson;
  detectorWeights: Uint8Array;
  /** facemesh.json and its weights. */
  meshJson: TfjsModelJson;
  meshWeights: Uint8Array;
  /** mobilefacenet-arcface.tflite. */
  embedder: Uint8Array;
}

export interface PipelineGraphs {
  detector: Graph;
  mesh: Graph;
  embedder: Graph;
}

/** The model files a pipeline reads, by their names in models/. */
export const PIPELINE_MODEL_FILES = {
  detector: 'blazeface-back.json',
  mesh: 'facemesh.json',
  embedder: 'mobilefacenet-arcface.tflite',
} as const;

/** The three graphs, imported and optimised, before compilation. */
export function pipelineGraphsFromFiles(files: PipelineModelFiles): PipelineGraphs {
  const detector = readTfjsGraphModel(files.detectorJson, files.detectorWeights, { source: PIPELINE_MODEL_FILES.detector, outputs: DETECTOR_OUTPUTS }).graph;
  const mesh = readTfjsGraphModel(files.meshJson, files.meshWeights, { source: PIPELINE_MODEL_FILES.mesh, outputs: MESH_OUTPUTS }).graph;
  const embedder = readTflite(files.embedder, PIPELINE_MODEL_FILES.embedder);
  for (const g of [detector, mesh, embedder]) optimizeGraph(g);
  appendL2Normalize(embedder);
  return { detector, mesh, embedder };
}

/** Template with the mouth centre in place of the two corners, for BlazeFace's four points. */
const FOUR_POINT_TEMPLATE: Point[] = [
  ARCFACE_TEMPLATE_112[0]!, ARCFACE_TEMPLATE_112[1]!, ARCFACE_TEMPLATE_112[2]!,
  [(ARCFACE_TEMPLATE_112[3]![0] + ARCFACE_TEMPLATE_112[4]![0]) / 2, (ARCFACE_TEMPLATE_112[3]![1] + ARCFACE_TEMPLATE_112[4]![1]) / 2],
];

export async function createImagePipeline(graphs: PipelineGraphs, opts: ImagePipelineOptions): Promise<ImagePipeline> {
  const inShape = graphs.embedder.input.shape;
  if (inShape.length !== 3 || inShape[0] !== 112 || inShape[1] !== 112 || inShape[2] !== 3) {
    throw new CosfaceError('UNSUPPORTED_MODEL', `the face pipeline aligns 112x112 RGB crops (ArcFace template); the embedder takes [${inShape.join(', ')}]`);
  }
  const dim = numel(graphs.embedder.output.shape);
  const [detector, mesh, embedder] = await Promise.all([opts.backend.compile(graphs.detector), opts.backend.compile(graphs.mesh), opts.backend.compile(graphs.embedder)]);
  const backendWarp = opts.backend.warp;
  const warp: BatchWarp | undefined = backendWarp && ((img, transforms, outW, outH, o) => backendWarp.call(opts.backend, img, transforms, outW, outH, o));
  const detect = (img: RgbImage) => detectFaces(img, (x, n) => detector.run(x, n), opts.detector, shrinkingWarp(img, warp));

  const direct: Record<'detector' | 'mesh' | 'embedder', RunGraph> = {
    detector: (x, n) => detector.run(x, n),
    mesh: (x, n) => mesh.run(x, n),
    embedder: (x, n) => embedder.run(x, n),
  };

  async function facesWith(img: RgbImage, run: typeof direct, timer: StageTimer | undefined): Promise<Face[]> {
    // The detector's views and FaceMesh's crops of a large photo are cut from halved copies of it.
    const shrink = shrinkingWarp(img, warp);
    const found = await timed(timer, 'detect', () => detectFaces(img, run.detector, opts.detector, shrink));
    if (found.length === 0) return [];
    const meshesAll = await timed(timer, 'landmarks', () => meshLandmarks(img, found, run.mesh, opts.landmarks, shrink));
    const minFallback = opts.fallbackMinScore ?? 0.75;
    const minFlag = opts.meshMinFlag ?? 0.9;
    const keep = found.map((d, i) => meshesAll[i]!.faceFlag >= minFlag || d.score >= minFallback);
    const dets = found.filter((_, i) => keep[i]);
    const meshes = meshesAll.filter((_, i) => keep[i]);
    if (dets.length === 0) return [];
    const prepared = dets.map((d, i) => {
      const m = meshes[i]!;
      let five: Point[];
      let alignment: Face['alignment'];
      if (m.faceFlag >= minFlag) {
        five = m.five;
        alignment = 'mesh';
      } else {
        // The mesh saw no face: align on the detector's points and report the template's mouth
        // corners mapped back to the photo as the fifth and fourth points.
        const toAligned4 = alignmentTransform(detectorFourPoints(d), FOUR_POINT_TEMPLATE);
        const back = invertSimilarity(toAligned4);
        const fromTemplate = (p: Point): Point => applySimilarity(back, [p[0] + 0.5, p[1] + 0.5]);
        five = [...detectorFourPoints(d).slice(0, 3), fromTemplate(ARCFACE_TEMPLATE_112[3]!), fromTemplate(ARCFACE_TEMPLATE_112[4]!)];
        alignment = 'detector';
      }
      return { five, alignment, toAligned: alignmentTransform(five) };
    });
    // All aligned crops of the photo in one warp call (what alignFace cuts, face by face).
    const crops = await timed(timer, 'align', () => warpCrops(img, prepared.map((p) => invertSimilarity(p.toAligned)), 112, 112, ALIGNED_WARP, warp));
    const emb = await timed(timer, 'embed', () => run.embedder(crops, dets.length));
    timer?.begin('align');
    const qualities = dets.map((d, i) => faceQuality(d.score, prepared[i]!.five, prepared[i]!.toAligned, crops.subarray(i * 112 * 112 * 3, (i + 1) * 112 * 112 * 3)));
    timer?.end('align');
    return dets.map((d, i) => {
      const p = prepared[i]!;
      const q = qualities[i]!;
      return {
        box: d.box.map(round2) as Face['box'],
        landmarks: p.five.map((pt) => [round2(pt[0]), round2(pt[1])] as [number, number]),
        score: d.score,
        quality: q.quality,
        embedding: Array.from(emb.subarray(i * dim, (i + 1) * dim)),
        alignment: p.alignment,
        qualityParts: q.parts,
      };
    });
  }

  async function facesInImages(imgs: readonly RgbImage[], o: FacesOptions = {}): Promise<(Face[] | Error)[]> {
    if (imgs.length <= 1) return Promise.all(imgs.map((img) => facesWith(img, direct, o.timer).catch((e: unknown) => asError(e))));
    const gang = new GangBatcher(imgs.length);
    const run = { detector: gang.runner(direct.detector), mesh: gang.runner(direct.mesh), embedder: gang.runner(direct.embedder) };
    return Promise.all(
      imgs.map(async (img) => {
        try {
          return await facesWith(img, run, o.timer);
        } catch (e) {
          return asError(e);
        } finally {
          gang.leave();
        }
      }),
    );
  }

  return {
    embeddingDim: dim,
    facesInImage: (img, o) => facesWith(img, direct, o?.timer),
    facesInImages,
    detect,
    async embedAligned(crops, n) {
      if (!(n >= 1) || crops.length !== n * 112 * 112 * 3) throw new CosfaceError('BAD_INPUT', `embedAligned: expected ${n} x 112x112x3 floats, got ${crops.length}`);
      return embedder.run(crops, n);
    },
    async warmUp() {
      const blank: RgbImage = { width: 8, height: 8, data: new Uint8Array(8 * 8 * 3) };
      await warpCrops(blank, [{ a: 1, b: 0, tx: 0, ty: 0 }], 112, 112, ALIGNED_WARP, warp);
      await detector.run(new Float32Array(DETECTOR_SIZE * DETECTOR_SIZE * 3), 1);
      await mesh.run(new Float32Array(MESH_SIZE * MESH_SIZE * 3), 1);
      await embedder.run(new Float32Array(112 * 112 * 3), 1);
    },
    dispose() {
      detector.dispose();
      mesh.dispose();
      embedder.dispose();
    },
  };
}

const round2 = (v: number): number => Math.round(v * 100) / 100;
const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/** The CLI's per-face JSON: box, landmarks, score, quality, embedding (photo pixels). */
export function faceJson(f: Face): { box: Face['box']; landmarks: Face['landmarks']; score: number; quality: number; embedding: number[] } {
  return { box: f.box, landmarks: f.landmarks, score: f.score, quality: f.quality, embedding: f.embedding };
}
