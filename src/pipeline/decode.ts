// Photo bytes -> full-resolution RGB pixels, upright (EXIF orientation applied), through sharp.
// Anything that is not a complete JPEG, PNG or WebP fails with BAD_IMAGE; oversized photos with
// IMAGE_TOO_LARGE before their pixels are decoded.
import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import { CosfaceError } from '../errors.js';

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3 bytes. */
  data: Uint8Array;
}

export interface DecodedImage extends RgbImage {
  format: 'jpeg' | 'png' | 'webp';
}

export interface DecodeOptions {
  /** Largest accepted width * height (after orientation; default 50 megapixels). */
  maxPixels?: number;
}

export const DEFAULT_MAX_PIXELS = 50_000_000;
const FORMATS = new Set(['jpeg', 'png', 'webp']);

/** Decodes a photo given as bytes or a file path. */
export async function decodeImage(input: Uint8Array | string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const what = typeof input === 'string' ? input : 'image';
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    try {
      bytes = await readFile(input);
    } catch (e) {
      throw new CosfaceError('BAD_IMAGE', `${what}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
  } else bytes = input;
  if (bytes.byteLength === 0) throw new CosfaceError('BAD_IMAGE', `${what}: the file is empty`);

  let meta: Awaited<ReturnType<ReturnType<typeof sharp>["metadata"]>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new CosfaceError('BAD_IMAGE', `${what}: not a decodable image (${(e as Error).message})`, { cause: e });
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    throw new CosfaceError('BAD_IMAGE', `${what}: format ${meta.format ?? 'unknown'} is not supported (JPEG, PNG or WebP)`);
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!(w > 0 && h > 0)) throw new CosfaceError('BAD_IMAGE', `${what}: image has no pixels`);
  if (w * h > maxPixels) {
    throw new CosfaceError('IMAGE_TOO_LARGE', `${what}: ${w}x${h} = ${w * h} pixels is over the limit of ${maxPixels}`);
  }
  try {
    // failOn 'truncated' rejects cut-off files that libvips would otherwise fill with grey;
    // rotate() without arguments applies the EXIF orientation.
    const { data, info } = await sharp(bytes, { failOn: 'truncated', limitInputPixels: maxPixels })
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), format: meta.format as DecodedImage['format'] };
  } catch (e) {
    throw new CosfaceError('BAD_IMAGE', `${what}: corrupt or truncated ${meta.format} (${(e as Error).message})`, { cause: e });
  }
}
