// The whole photo -> faces pipeline on real photos, computed by the engine: the WASM backend, with
// the scalar reference standing in for graphs whose ops it does not run yet (then the detector sees
// the whole photo only, to keep the test fast). The six people of t1.jpg, one face per portrait,
// Obama matching Obama and not Biden, no face in a photo of none, crops cut by the backend's warp.
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFacePipeline, type Face, type FacePipeline, type GraphCompiler } from '../../src/pipeline/face-pipeline.js';
import { decodeImage } from '../../src/pipeline/decode.js';
import { planDetectorViews } from '../../src/pipeline/detect.js';
import { withReferenceFallback } from '../../src/pipeline/reference-backend.js';
import { createWasmBackend, type WasmBackend } from '../../src/backend/wasm/index.js';

let pipeline: FacePipeline;
let backend: WasmBackend;
let detectorOnReference = false;
/** Every backend warp call of the pipeline: crops per call and crop size. */
const warpCalls: { n: number; size: number }[] = [];
beforeAll(async () => {
  backend = await createWasmBackend({ workers: 2 });
  const counting: GraphCompiler = {
    compile: (g) => backend.compile(g),
    warp: (img, transforms, outW, outH, o) => {
      warpCalls.push({ n: transforms.length, size: outW });
      return backend.warp(img, transforms, outW, outH, o);
    },
  };
  const compiler = withReferenceFallback(counting, (g) => {
    if (g.source.includes('blazeface')) detectorOnReference = true;
  });
  pipeline = await createFacePipeline({ backend: compiler });
  if (detectorOnReference) {
    pipeline.dispose();
    pipeline = await createFacePipeline({ backend: compiler, detector: { tiling: 'off' } });
  }
});
afterAll(async () => {
  pipeline?.dispose();
  await backend?.dispose();
});

const cos = (a: Face, b: Face) => a.embedding.reduce((s, v, i) => s + v * b.embedding[i]!, 0);

describe('face pipeline', () => {
  it('finds the six people at the table in t1.jpg, in photo pixels, each face once', async () => {
    const img = await decodeImage('test/fixtures/photos/t1.jpg');
    expect(planDetectorViews(img.width, img.height).length).toBeGreaterThan(1); // by default tiles as well as the whole photo
    const dets = await pipeline.detect(img);
    expect(dets.length).toBe(6);
    // Face centres (x, y), left to right, measured by eye on the photo.
    const expected = [[112, 340], [326, 219], [518, 347], [798, 417], [963, 140], [1180, 345]];
    dets.forEach((d, i) => {
      const [x, y, w, h] = d.box;
      expect(Math.hypot(x + w / 2 - expected[i]![0]!, y + h / 2 - expected[i]![1]!)).toBeLessThan(25);
      expect(w).toBeGreaterThan(80);
      expect(w).toBeLessThan(140);
      expect(d.score).toBeGreaterThanOrEqual(0.5);
    });
  });

  it('gives one face per portrait with box, five landmarks, score, quality and a unit embedding; Obama matches Obama, not Biden', async () => {
    // The 240p photo's face is small: found through tiles (skipped while the detector runs on the reference).
    const obama2 = await pipeline.facesInPhoto('test/fixtures/photos/obama_small.jpg');
    const obama1 = detectorOnReference ? obama2 : await pipeline.facesInPhoto('test/fixtures/photos/obama-240p.jpg');
    const biden = await pipeline.facesInPhoto('test/fixtures/photos/biden-400.jpg');
    for (const faces of [obama1, obama2, biden]) {
      expect(faces.length).toBe(1);
      const f = faces[0]!;
      expect(f.alignment).toBe('mesh');
      expect(f.landmarks.length).toBe(5);
      const [x, y, w, h] = f.box;
      // Eyes above the nose above the mouth, all inside the box; image-left before image-right.
      const [el, er, nose, ml, mr] = f.landmarks as [number, number][];
      for (const p of f.landmarks) expect(p[0] > x && p[0] < x + w && p[1] > y && p[1] < y + h).toBe(true);
      expect(el![0]).toBeLessThan(er![0]);
      expect(ml![0]).toBeLessThan(mr![0]);
      expect(nose![1]).toBeGreaterThan(el![1]);
      expect(ml![1]).toBeGreaterThan(nose![1]);
      expect(f.embedding.length).toBe(128);
      expect(Math.hypot(...f.embedding)).toBeCloseTo(1, 5);
      expect(f.quality).toBeGreaterThan(0);
      expect(f.quality).toBeLessThanOrEqual(1);
    }
    const same = cos(obama1[0]!, obama2[0]!);
    const diff = Math.max(cos(obama1[0]!, biden[0]!), cos(obama2[0]!, biden[0]!));
    // LFW dev folds choose thresholds near 0.25 for this model.
    expect(same).toBeGreaterThan(0.4);
    expect(diff).toBeLessThan(0.2);
    // The small 240p face gets a lower quality than the larger one.
    if (obama1 !== obama2) expect(obama1[0]!.quality).toBeLessThan(obama2[0]!.quality);
  });

  it("cuts all faces' FaceMesh crops and all aligned crops of a photo in one backend warp call each", async () => {
    warpCalls.length = 0;
    const faces = await pipeline.facesInPhoto('test/fixtures/photos/t1.jpg');
    expect(faces.length).toBe(6);
    const mesh = warpCalls.filter((c) => c.size === 192);
    const aligned = warpCalls.filter((c) => c.size === 112);
    // The mesh runs twice (second pass on crops around the first mesh), all detections at once.
    expect(mesh.length).toBe(2);
    expect(mesh[0]!.n).toBeGreaterThanOrEqual(6);
    expect(aligned).toEqual([{ n: 6, size: 112 }]);
  });

  it('returns no faces for a photo without any', async () => {
    const w = 300, h = 200;
    const data = Buffer.from(Uint8Array.from({ length: w * h * 3 }, (_, i) => ((i / 3) % w) * 0.8 + (i % 3) * 20));
    const png = await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    expect(await pipeline.facesInPhoto(png)).toEqual([]);
  });
});
