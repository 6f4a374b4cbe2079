// Photo -> RGB pixels in a browser: the browser's own decoder (createImageBitmap, EXIF orientation
// applied, converted to sRGB) read back through an OffscreenCanvas. What sharp does in Node (decode.ts).
import { CosfaceError } from '../errors.js';
import type { RgbImage } from '../pipeline/decode.js';

/** Largest accepted width * height, as in Node (DEFAULT_MAX_PIXELS of decode.ts, which imports sharp). */
export const DEFAULT_MAX_PIXELS = 50_000_000;

export type PhotoSource = Blob | ImageBitmap | ImageData;

/** Decodes a photo file (Blob/File) to an upright ImageBitmap; BAD_IMAGE when it is not an image. */
export async function decodeBitmap(photo: Blob, name = 'image'): Promise<ImageBitmap> {
  if (photo.size === 0) throw new CosfaceError('BAD_IMAGE', `${name}: the file is empty`);
  try {
    return await createImageBitmap(photo, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'default' });
  } catch (e) {
    throw new CosfaceError('BAD_IMAGE', `${name}: not a decodable image (${(e as Error).message})`, { cause: e });
  }
}

/** RGB pixels of a bitmap or of RGBA ImageData (alpha dropped). */
export function rgbPixels(src: ImageBitmap | ImageData, maxPixels = DEFAULT_MAX_PIXELS): RgbImage {
  const { width, height } = src;
  if (!(width > 0 && height > 0)) throw new CosfaceError('BAD_IMAGE', 'image has no pixels');
  if (width * height > maxPixels) throw new CosfaceError('IMAGE_TOO_LARGE', `${width}x${height} = ${width * height} pixels is over the limit of ${maxPixels}`);
  let rgba: Uint8ClampedArray;
  if (src instanceof ImageData) rgba = src.data;
  else {
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new CosfaceError('BAD_IMAGE', 'no 2D canvas context to read the pixels');
    ctx.drawImage(src, 0, 0);
    rgba = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
  }
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 3, j += 4) {
    data[i] = rgba[j]!;
    data[i + 1] = rgba[j + 1]!;
    data[i + 2] = rgba[j + 2]!;
  }
  return { width, height, data };
}

/** A photo (file, bitmap or ImageData) as RGB pixels. */
export async function decodePhoto(photo: PhotoSource, maxPixels = DEFAULT_MAX_PIXELS): Promise<RgbImage> {
  if (photo instanceof Blob) {
    const bmp = await decodeBitmap(photo, (photo as File).name ?? 'image');
    try {
      return rgbPixels(bmp, maxPixels);
    } finally {
      bmp.close();
    }
  }
  return rgbPixels(photo, maxPixels);
}
