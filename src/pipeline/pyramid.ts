// Halved copies of a photo (box filter: each pixel the mean of a 2x2 block, partial blocks at odd
// edges averaged over the pixels they hold), for crops that shrink a large photo a lot. The detector
// cuts its 256x256 views of a 12-megapixel photo from a copy 4 or 8 times smaller with 3x3 samples
// per pixel instead of from the photo itself with 8x8: about a seventh of the bilinear samples, the
// same anti-aliasing (a box over the pixels a view pixel covers), and for shrink factors over 8
// better (the warp's supersampling stops at 8x8). FaceMesh's crops of a large face likewise. The
// aligned crops the embedder sees are always cut from the photo itself.
import { similarityScale, warpCrops, type BatchWarp, type Similarity, type WarpOptions } from './align.js';
import type { RgbImage } from './decode.js';

/** The image at half its size, rounded up: pixel (x, y) is the mean of pixels 2x..2x+1, 2y..2y+1 that exist. */
export function halveImage(img: RgbImage): RgbImage {
  const { width: W, height: H, data } = img;
  const w = Math.ceil(W / 2);
  const h = Math.ceil(H / 2);
  const out = new Uint8Array(w * h * 3);
  const row = W * 3;
  const whole = Math.floor(W / 2) * 6; // bytes of a source row in whole 2x2 blocks
  let o = 0;
  for (let y = 0; y < h; y++) {
    const r0 = 2 * y * row;
    if (2 * y + 1 < H) {
      // Two source rows: the sum of four bytes, rounded half up.
      const r1 = r0 + row;
      for (let i = 0; i < whole; i += 6) {
        const a = r0 + i;
        const b = r1 + i;
        out[o++] = (data[a]! + data[a + 3]! + data[b]! + data[b + 3]! + 2) >> 2;
        out[o++] = (data[a + 1]! + data[a + 4]! + data[b + 1]! + data[b + 4]! + 2) >> 2;
        out[o++] = (data[a + 2]! + data[a + 5]! + data[b + 2]! + data[b + 5]! + 2) >> 2;
      }
      if (whole < row) {
        // Odd width: the last column's block is one pixel wide.
        for (let c = 0; c < 3; c++) out[o++] = (data[r0 + whole + c]! + data[r1 + whole + c]! + 1) >> 1;
      }
    } else {
      // Odd height: the last row's blocks are one pixel high.
      for (let i = 0; i < whole; i += 6) {
        const a = r0 + i;
        out[o++] = (data[a]! + data[a + 3]! + 1) >> 1;
        out[o++] = (data[a + 1]! + data[a + 4]! + 1) >> 1;
        out[o++] = (data[a + 2]! + data[a + 5]! + 1) >> 1;
      }
      if (whole < row) for (let c = 0; c < 3; c++) out[o++] = data[r0 + whole + c]!;
    }
  }
  return { width: w, height: h, data: out };
}

/**
 * For a crop that samples `img` through `toImage` with `scale` image pixels per crop pixel: the
 * smallest halved copy on which it still takes at least 2x2 samples per pixel (scale / 2^level >= 2),
 * and the transform onto that copy. Continuous coordinates scale exactly (pixel x of a halved copy
 * covers [2x, 2x + 2) of the one before), so the transform is divided by 2^level. `levels[i]` is the
 * image halved i + 1 times, made on demand and kept for the photo's other crops.
 */
export function cropSource(img: RgbImage, levels: RgbImage[], toImage: Similarity, scale: number): { image: RgbImage; transform: Similarity } {
  let level = 0;
  while (scale / 2 ** (level + 1) >= 2 && Math.min(img.width, img.height) / 2 ** (level + 1) >= 1) level++;
  if (level === 0) return { image: img, transform: toImage };
  while (levels.length < level) levels.push(halveImage(levels[levels.length - 1] ?? img));
  const f = 2 ** level;
  return { image: levels[level - 1]!, transform: { a: toImage.a / f, b: toImage.b / f, tx: toImage.tx / f, ty: toImage.ty / f } };
}

/**
 * A BatchWarp for the crops of one photo that may shrink it: each crop of `img` is cut from the
 * halved copy cropSource picks (made on the first crop that needs it and kept for the photo's other
 * crops), one call of `warp` (or warpToCrop without it) per copy used, the crops back in their
 * order. Crops of any other image go to `warp` as they are. The pipeline hands it to the detector's
 * views and FaceMesh's crops; the aligned crops are cut from the photo itself.
 */
export function shrinkingWarp(img: RgbImage, warp?: BatchWarp): BatchWarp {
  const levels: RgbImage[] = [];
  return async (image, transforms, outW, outH, opts: WarpOptions = {}) => {
    if (image !== img) return warpCrops(image, transforms, outW, outH, opts, warp);
    const groups = new Map<RgbImage, { at: number[]; transforms: Similarity[] }>();
    transforms.forEach((t, i) => {
      const { image: source, transform } = cropSource(img, levels, t, similarityScale(t));
      let g = groups.get(source);
      if (!g) groups.set(source, (g = { at: [], transforms: [] }));
      g.at.push(i);
      g.transforms.push(transform);
    });
    if (groups.size === 1) {
      const [source, g] = [...groups][0]!;
      return warpCrops(source, g.transforms, outW, outH, opts, warp);
    }
    const per = outW * outH * 3;
    const out = new Float32Array(transforms.length * per);
    await Promise.all(
      [...groups].map(async ([source, g]) => {
        const crops = await warpCrops(source, g.transforms, outW, outH, opts, warp);
        g.at.forEach((i, j) => out.set(crops.subarray(j * per, (j + 1) * per), i * per));
      }),
    );
    return out;
  };
}
