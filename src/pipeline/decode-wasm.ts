// Photo bytes -> upright RGB pixels without sharp, for the edge runtimes: the size and the EXIF
// orientation are read from the header first (a photo over the pixel limit, such as a PNG
// decompression bomb, is refused before a byte of it is inflated), then MozJPEG or the png crate
// compiled to WebAssembly (@jsquash) decode it. The codecs are initialised with compiled
// WebAssembly.Modules handed in by the runtime's entry (workerd cannot compile WASM from bytes
// after startup). Same errors as decode.ts: BAD_IMAGE, IMAGE_TOO_LARGE.
import jpegDecode, { init as initJpeg } from '@jsquash/jpeg/decode.js';
import pngDecode, { init as initPng } from '@jsquash/png/decode.js';
import { CosfaceError } from '../errors.js';
import type { DecodedImage, DecodeOptions } from './decode.js';

export const DEFAULT_MAX_PIXELS = 50_000_000;

/** The codecs' compiled modules: @jsquash/jpeg/codec/dec/mozjpeg_dec.wasm and @jsquash/png/codec/pkg/squoosh_png_bg.wasm. */
export interface WasmCodecModules {
  jpeg: WebAssembly.Module;
  png: WebAssembly.Module;
}

export interface ImageHeader {
  format: 'jpeg' | 'png';
  /** Stored size, before orientation. */
  width: number;
  height: number;
  /** EXIF orientation 1..8 (1 when absent). */
  orientation: number;
}

interface RgbaImage {
  data: Uint8ClampedArray | Uint8Array;
  width: number;
  height: number;
}

/** A decoder bound to compiled codec modules; one per process (the codecs keep global state). */
export class WasmImageDecoder {
  private ready: Promise<void> | null = null;

  constructor(private readonly modules: WasmCodecModules) {}

  private init(): Promise<void> {
    this.ready ??= (async () => {
      await (initJpeg as unknown as (m: WebAssembly.Module) => Promise<void>)(this.modules.jpeg);
      await initPng(this.modules.png);
    })();
    return this.ready;
  }

  async decode(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<DecodedImage> {
    const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
    const what = 'image';
    if (!bytes || bytes.byteLength === 0) throw new CosfaceError('BAD_IMAGE', `${what}: the file is empty`);
    const header = readImageHeader(bytes);
    const { width: w, height: h } = header;
    if (w * h > maxPixels) {
      const [ow, oh] = header.orientation >= 5 ? [h, w] : [w, h];
      throw new CosfaceError('IMAGE_TOO_LARGE', `${what}: ${ow}x${oh} = ${w * h} pixels is over the limit of ${maxPixels}`);
    }
    if (header.format === 'jpeg' && !jpegComplete(bytes)) {
      throw new CosfaceError('BAD_IMAGE', `${what}: corrupt or truncated jpeg (no end-of-image marker after the scan)`);
    }
    if (header.format === 'png' && !pngComplete(bytes)) {
      throw new CosfaceError('BAD_IMAGE', `${what}: corrupt or truncated png (its chunks do not reach IEND)`);
    }
    await this.init();
    let rgba: RgbaImage;
    try {
      // preserveOrientation false: the raw stored pixels; the orientation is applied below, as for PNG.
      // Copy into a fresh ArrayBuffer: the codecs take whole buffers, and a view may share a larger one.
      const buf = bytes.slice().buffer as ArrayBuffer;
      rgba = header.format === 'jpeg' ? await jpegDecode(buf, { preserveOrientation: false }) : await pngDecode(buf);
    } catch (e) {
      throw new CosfaceError('BAD_IMAGE', `${what}: corrupt or truncated ${header.format} (${(e as Error).message ?? String(e)})`, { cause: e });
    }
    if (rgba.width !== w || rgba.height !== h) {
      throw new CosfaceError('BAD_IMAGE', `${what}: the ${header.format} header says ${w}x${h} but it decoded to ${rgba.width}x${rgba.height}`);
    }
    return { ...orientRgb(rgba, header.orientation), format: header.format };
  }
}

// ---- headers ----

const bad = (msg: string) => new CosfaceError('BAD_IMAGE', `image: ${msg}`);

/** Format, stored size and EXIF orientation from the first bytes; BAD_IMAGE when there are none. */
export function readImageHeader(b: Uint8Array): ImageHeader {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) {
    return pngHeader(b);
  }
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return jpegHeader(b);
  const riff = b.length >= 12 && String.fromCharCode(...b.subarray(0, 4)) === 'RIFF' && String.fromCharCode(...b.subarray(8, 12)) === 'WEBP';
  if (riff) throw bad('format webp is not supported on this runtime (JPEG or PNG)');
  throw bad('not a decodable image (JPEG or PNG expected)');
}

const u16 = (b: Uint8Array, o: number, le = false) => (le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!);
const u32 = (b: Uint8Array, o: number, le = false) => (le ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16)) + b[o + 3]! * 2 ** 24 : b[o]! * 2 ** 24 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!));

function pngHeader(b: Uint8Array): ImageHeader {
  if (b.length < 33 || String.fromCharCode(...b.subarray(12, 16)) !== 'IHDR') throw bad('truncated png (no IHDR)');
  const width = u32(b, 16);
  const height = u32(b, 20);
  if (width === 0 || height === 0) throw bad('image has no pixels');
  let orientation = 1;
  // eXIf (PNG 1.5) carries the same TIFF block as a JPEG's APP1; it comes before the image data.
  for (let o = 8; o + 8 <= b.length; ) {
    const len = u32(b, o);
    const type = String.fromCharCode(...b.subarray(o + 4, o + 8));
    if (type === 'IDAT' || type === 'IEND') break;
    if (type === 'eXIf' && o + 8 + len <= b.length) orientation = tiffOrientation(b.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  return { format: 'png', width, height, orientation };
}

/** Start-of-frame markers that carry the size (not DHT C4, JPG C8, DAC CC). */
const SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function jpegHeader(b: Uint8Array): ImageHeader {
  let orientation = 1;
  let o = 2;
  while (o + 4 <= b.length) {
    if (b[o] !== 0xff) throw bad('corrupt jpeg (bad marker)');
    const marker = b[o + 1]!;
    if (marker === 0xff) {
      o++; // fill byte
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      o += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) break; // end of image, or start of scan before any frame
    const len = u16(b, o + 2);
    if (len < 2) throw bad('corrupt jpeg (bad segment length)');
    const seg = b.subarray(o + 4, Math.min(b.length, o + 2 + len));
    if (marker === 0xe1 && seg.length > 6 && String.fromCharCode(...seg.subarray(0, 4)) === 'Exif' && seg[4] === 0 && seg[5] === 0) {
      orientation = tiffOrientation(seg.subarray(6));
    }
    if (SOF.has(marker)) {
      if (seg.length < 5) throw bad('truncated jpeg (short frame header)');
      const height = u16(seg, 1);
      const width = u16(seg, 3);
      if (width === 0 || height === 0) throw bad('image has no pixels');
      return { format: 'jpeg', width, height, orientation };
    }
    o += 2 + len;
  }
  throw bad('truncated or corrupt jpeg (no frame header)');
}

/** The Orientation tag (0x0112) of IFD0 of a TIFF block, 1 when absent or out of range. */
function tiffOrientation(t: Uint8Array): number {
  if (t.length < 8) return 1;
  const le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return 1;
  const ifd = u32(t, 4, le);
  if (ifd + 2 > t.length) return 1;
  const count = u16(t, ifd, le);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > t.length) return 1;
    if (u16(t, e, le) === 0x0112) {
      const v = u16(t, e + 8, le);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/** A complete JPEG has an end-of-image marker after its first scan (libjpeg would fill a cut-off one with grey). */
function jpegComplete(b: Uint8Array): boolean {
  let sos = -1;
  for (let i = 2; i + 1 < b.length; i++) {
    if (b[i] === 0xff && b[i + 1] === 0xda) {
      sos = i;
      break;
    }
  }
  if (sos < 0) return false;
  for (let i = b.length - 2; i > sos; i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
  return false;
}

/** A complete PNG's chunks, walked by their lengths, end in IEND within the file (the decoder returns a partial image otherwise). */
function pngComplete(b: Uint8Array): boolean {
  for (let o = 8; o + 8 <= b.length; ) {
    const len = u32(b, o);
    if (o + 12 + len > b.length) return false;
    if (b[o + 4] === 0x49 && b[o + 5] === 0x45 && b[o + 6] === 0x4e && b[o + 7] === 0x44) return true; // IEND
    o += 12 + len;
  }
  return false;
}

// ---- pixels ----

/** RGBA -> RGB with the EXIF orientation applied (1 upright ... 8 rotated 90 degrees counter-clockwise). */
export function orientRgb(img: RgbaImage, orientation: number): { width: number; height: number; data: Uint8Array } {
  const { width: W, height: H, data: src } = img;
  const swap = orientation >= 5 && orientation <= 8;
  const w = swap ? H : W;
  const h = swap ? W : H;
  const out = new Uint8Array(w * h * 3);
  let o = 0;
  for (let Y = 0; Y < h; Y++) {
    for (let X = 0; X < w; X++) {
      let x: number;
      let y: number;
      switch (orientation) {
        case 2: x = W - 1 - X; y = Y; break;
        case 3: x = W - 1 - X; y = H - 1 - Y; break;
        case 4: x = X; y = H - 1 - Y; break;
        case 5: x = Y; y = X; break;
        case 6: x = Y; y = H - 1 - X; break;
        case 7: x = W - 1 - Y; y = H - 1 - X; break;
        case 8: x = W - 1 - Y; y = X; break;
        default: x = X; y = Y;
      }
      const s = (y * W + x) * 4;
      out[o++] = src[s]!;
      out[o++] = src[s + 1]!;
      out[o++] = src[s + 2]!;
    }
  }
  return { width: w, height: h, data: out };
}
