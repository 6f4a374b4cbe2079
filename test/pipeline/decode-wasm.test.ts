// The edge decoder (WASM codecs, no sharp) against decode.ts (sharp): the same pixels within
// codec rounding, the same EXIF orientations, the same error codes, and a PNG decompression bomb
// refused from its header without inflating it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { decodeImage } from '../../src/pipeline/decode.js';
import { readImageHeader, WasmImageDecoder } from '../../src/pipeline/decode-wasm.js';

const require = createRequire(import.meta.url);
const wasm = (spec: string) => new WebAssembly.Module(readFileSync(require.resolve(spec)));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'decoded';
  } catch (e) {
    return isCosfaceError(e) ? e.code : `other: ${(e as Error).message}`;
  }
}

/** A 40x20 test card: left half red, right half blue, one green pixel at (1, 1). */
const card = () =>
  sharp(
    Buffer.from(Uint8Array.from({ length: 40 * 20 * 3 }, (_, i) => {
      const p = Math.floor(i / 3);
      if (p === 41) return [0, 255, 0][i % 3]!;
      return (p % 40 < 20 ? [255, 0, 0] : [0, 0, 255])[i % 3]!;
    })),
    { raw: { width: 40, height: 20, channels: 3 } },
  );

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

/** A PNG whose header claims w x h RGB pixels, with an IDAT of only a few compressed rows. */
function bombPng(w: number, h: number): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Uint8Array) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Uint8Array) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    Buffer.from(data).copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const rows = deflateSync(Buffer.alloc(4 * (1 + 3 * w)), { level: 9 });
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', rows), chunk('IEND', new Uint8Array(0))]);
}

describe('WasmImageDecoder', () => {
  let dec: WasmImageDecoder;
  beforeAll(() => {
    dec = new WasmImageDecoder({ jpeg: wasm('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm'), png: wasm('@jsquash/png/codec/pkg/squoosh_png_bg.wasm') });
  });

  it('decodes the JPEG fixtures to the pixels sharp gives (mean difference under 1 level)', async () => {
    for (const f of ['t1.jpg', 'obama-240p.jpg', 'biden-400.jpg']) {
      const bytes = new Uint8Array(readFileSync(`test/fixtures/photos/${f}`));
      const got = await dec.decode(bytes);
      const want = await decodeImage(bytes);
      expect([got.width, got.height, got.format]).toEqual([want.width, want.height, 'jpeg']);
      expect(meanAbsDiff(got.data, want.data), f).toBeLessThan(1);
    }
  });

  it('decodes PNG with alpha and grey PNG exactly as sharp does', async () => {
    for (const png of [await card().ensureAlpha().png().toBuffer(), await card().greyscale().png().toBuffer()]) {
      const got = await dec.decode(new Uint8Array(png));
      const want = await decodeImage(new Uint8Array(png));
      expect([got.width, got.height, got.format]).toEqual([want.width, want.height, 'png']);
      expect(Buffer.from(got.data).equals(Buffer.from(want.data))).toBe(true);
    }
  });

  it('applies every EXIF orientation (1-8) as sharp does', async () => {
    for (let o = 1; o <= 8; o++) {
      const jpg = new Uint8Array(await card().jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).withMetadata({ orientation: o }).toBuffer());
      expect(readImageHeader(jpg).orientation).toBe(o);
      const got = await dec.decode(jpg);
      const want = await decodeImage(jpg);
      expect([got.width, got.height], `orientation ${o}`).toEqual([want.width, want.height]);
      expect(meanAbsDiff(got.data, want.data), `orientation ${o}`).toBeLessThan(2);
    }
  });

  it('refuses empty, non-image, truncated, corrupt and unsupported files with BAD_IMAGE, as decode.ts does', async () => {
    const jpg = readFileSync('test/fixtures/photos/obama-240p.jpg');
    const corrupt = Buffer.from(jpg);
    corrupt.fill(0x55, 600, 5000);
    const png = await card().png().toBuffer();
    const cases: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['text', new TextEncoder().encode('hello, this is not a photo')],
      ['half a jpeg', jpg.subarray(0, Math.floor(jpg.length / 2))],
      ['corrupt jpeg', corrupt.subarray(0, 4000)],
      ['half a png', png.subarray(0, Math.floor(png.length / 2))],
      ['gif', await card().gif().toBuffer()],
    ];
    for (const [name, bytes] of cases) {
      expect(await codeOf(dec.decode(bytes)), name).toBe('BAD_IMAGE');
      expect(await codeOf(decodeImage(bytes)), `${name} on sharp`).toBe('BAD_IMAGE');
    }
  });

  it('refuses a PNG bomb (60000 x 60000 claimed, 10 MB of pixels per row) from its header, in milliseconds and without the memory', async () => {
    const bomb = bombPng(60_000, 60_000);
    expect(bomb.length).toBeLessThan(2000);
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    expect(await codeOf(dec.decode(bomb))).toBe('IMAGE_TOO_LARGE');
    expect(performance.now() - t0).toBeLessThan(200);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20);
    expect(await codeOf(decodeImage(bomb))).toBe('IMAGE_TOO_LARGE');
    // The limit is the caller's: a 1 MP limit refuses the 1280 x 886 fixture.
    expect(await codeOf(dec.decode(new Uint8Array(readFileSync('test/fixtures/photos/t1.jpg')), { maxPixels: 1_000_000 }))).toBe('IMAGE_TOO_LARGE');
  });
});
