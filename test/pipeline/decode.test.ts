// Photo decoding: formats, EXIF orientation, full resolution, and every way a file can be bad.
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { decodeImage } from '../../src/pipeline/decode.js';

async function expectCode(p: Promise<unknown>, code: 'BAD_IMAGE' | 'IMAGE_TOO_LARGE'): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(isCosfaceError(e, code), `${(e as Error).message}`).toBe(true);
    return (e as Error).message;
  }
  throw new Error(`expected ${code}, but it decoded`);
}

/** A 40x20 test card: left half red, right half blue. */
const card = () => sharp(Buffer.from(Uint8Array.from({ length: 40 * 20 * 3 }, (_, i) => ((i / 3) % 40 < 20 ? [255, 0, 0] : [0, 0, 255])[i % 3]!)), { raw: { width: 40, height: 20, channels: 3 } });

describe('decodeImage', () => {
  it('decodes a JPEG at full resolution to RGB', async () => {
    const img = await decodeImage('test/fixtures/photos/t1.jpg');
    expect([img.width, img.height, img.format]).toEqual([1280, 886, 'jpeg']);
    expect(img.data.length).toBe(1280 * 886 * 3);
  });

  it('decodes PNG (with alpha) and WebP, and grey images as RGB', async () => {
    const png = await decodeImage(await card().ensureAlpha().png().toBuffer());
    expect([png.width, png.height, png.format, png.data.length]).toEqual([40, 20, 'png', 40 * 20 * 3]);
    expect(Array.from(png.data.subarray(0, 3))).toEqual([255, 0, 0]);
    const webp = await decodeImage(await card().webp({ lossless: true }).toBuffer());
    expect([webp.width, webp.height, webp.format]).toEqual([40, 20, 'webp']);
    expect(Array.from(webp.data.subarray(webp.data.length - 3))).toEqual([0, 0, 255]);
    const grey = await decodeImage(await card().greyscale().png().toBuffer());
    expect(grey.data.length).toBe(40 * 20 * 3);
  });

  it('applies the EXIF orientation (6: rotate 90 degrees clockwise)', async () => {
    const jpg = await card().jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const img = await decodeImage(jpg);
    expect([img.width, img.height]).toEqual([20, 40]);
    // The red left half is now on top.
    const top = img.data.subarray((2 * 20 + 10) * 3, (2 * 20 + 10) * 3 + 3);
    const bottom = img.data.subarray((37 * 20 + 10) * 3, (37 * 20 + 10) * 3 + 3);
    expect(top[0]!).toBeGreaterThan(200);
    expect(bottom[2]!).toBeGreaterThan(200);
  });

  it('refuses empty, non-image, truncated, corrupt and unsupported files with BAD_IMAGE', async () => {
    const jpg = readFileSync('test/fixtures/photos/obama-240p.jpg');
    expect(await expectCode(decodeImage(new Uint8Array(0)), 'BAD_IMAGE')).toMatch(/empty/);
    await expectCode(decodeImage(new TextEncoder().encode('hello, this is not a photo')), 'BAD_IMAGE');
    await expectCode(decodeImage(jpg.subarray(0, Math.floor(jpg.length / 2))), 'BAD_IMAGE');
    const corrupt = Buffer.from(jpg);
    corrupt.fill(0x55, 600, 5000);
    await expectCode(decodeImage(corrupt.subarray(0, 4000)), 'BAD_IMAGE');
    await expectCode(decodeImage(await card().gif().toBuffer()), 'BAD_IMAGE');
    await expectCode(decodeImage('test/fixtures/photos/does-not-exist.jpg'), 'BAD_IMAGE');
  });

  it('refuses a photo over the pixel limit with IMAGE_TOO_LARGE, before decoding it', async () => {
    const msg = await expectCode(decodeImage('test/fixtures/photos/t1.jpg', { maxPixels: 1_000_000 }), 'IMAGE_TOO_LARGE');
    expect(msg).toContain('1280x886');
    await expect(decodeImage('test/fixtures/photos/t1.jpg', { maxPixels: 1280 * 886 })).resolves.toMatchObject({ width: 1280 });
  });
});
