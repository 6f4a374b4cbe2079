// The photo walker on a real folder tree: photos by content (not by name), links followed, a link
// loop and a second link to the same folder or file walked once, and every left-out file reported
// with its reason instead of failing the walk.
import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { sniffFormat, walkPhotos } from '../../src/files/walk.js';
import { tempDir } from '../store/helpers.js';

let dir: string;
const isRoot = process.getuid?.() === 0;

async function image(path: string, format: 'jpeg' | 'png' | 'webp'): Promise<void> {
  await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 10, b: 10 } } })[format]().toFile(path);
}

beforeAll(async () => {
  dir = tempDir('walk');
  const lib = join(dir, 'lib');
  mkdirSync(join(lib, 'a', 'deep'), { recursive: true });
  mkdirSync(join(lib, 'b'), { recursive: true });
  mkdirSync(join(dir, 'elsewhere'), { recursive: true });
  await image(join(lib, 'a', 'one.jpg'), 'jpeg');
  await image(join(lib, 'a', 'deep', 'two.png'), 'png');
  await image(join(lib, 'b', 'three.webp'), 'webp');
  await image(join(lib, 'b', 'no-extension'), 'jpeg'); // a photo by content
  await image(join(dir, 'elsewhere', 'linked.jpg'), 'jpeg');
  writeFileSync(join(lib, 'b', 'fake.jpg'), 'not a picture at all'); // an image by name only
  writeFileSync(join(lib, 'b', 'notes.txt'), 'hello');
  writeFileSync(join(lib, 'b', 'empty.png'), '');
  writeFileSync(join(lib, 'b', '.hidden.jpg'), 'ignored: hidden');
  symlinkSync(join(dir, 'elsewhere', 'linked.jpg'), join(lib, 'b', 'link-to-photo.jpg'));
  symlinkSync(join(dir, 'elsewhere'), join(lib, 'link-to-folder'));
  symlinkSync(lib, join(lib, 'a', 'deep', 'loop')); // back to the top: a loop
  symlinkSync(join(lib, 'a'), join(lib, 'b', 'again')); // the same folder twice
  symlinkSync(join(dir, 'nothing-here.jpg'), join(lib, 'b', 'broken.jpg'));
  if (!isRoot) {
    await image(join(lib, 'b', 'locked.jpg'), 'jpeg');
    chmodSync(join(lib, 'b', 'locked.jpg'), 0);
  }
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('walkPhotos', () => {
  it('finds JPEG, PNG and WebP by their first bytes, follows links, walks a loop once, and says why each other file was left out', async () => {
    const lib = join(dir, 'lib');
    const r = await walkPhotos([lib]);
    expect(r.photos.map((p) => [p.relative, p.format])).toEqual([
      [join('a', 'deep', 'two.png'), 'png'],
      [join('a', 'one.jpg'), 'jpeg'],
      [join('b', 'link-to-photo.jpg'), 'jpeg'],
      [join('b', 'no-extension'), 'jpeg'],
      [join('b', 'three.webp'), 'webp'],
    ]);
    expect(r.photos[0]!.path).toBe(join(lib, 'a', 'deep', 'two.png'));
    const why = Object.fromEntries(r.skipped.map((s) => [s.photo.slice(lib.length + 1), s.reason]));
    expect(why).toMatchObject({
      [join('a', 'deep', 'loop')]: 'symlink loop',
      [join('b', 'again')]: 'same folder',
      [join('b', 'broken.jpg')]: 'broken link',
      [join('b', 'empty.png')]: 'empty file',
      [join('b', 'fake.jpg')]: 'not an image',
      [join('b', 'notes.txt')]: 'not an image',
      // linked.jpg was taken through b/link-to-photo.jpg first (name order), so the folder link finds it again.
      [join('link-to-folder', 'linked.jpg')]: 'same file',
    });
    if (!isRoot) expect(why[join('b', 'locked.jpg')]).toBe('unreadable');
    expect(Object.keys(why)).not.toContain(join('b', '.hidden.jpg'));
  });

  it('takes a file given as a root, and fails at once (BAD_INPUT) for a root that does not exist', async () => {
    const r = await walkPhotos([join(dir, 'elsewhere', 'linked.jpg')]);
    expect(r.photos.map((p) => [p.path, p.relative])).toEqual([[join(dir, 'elsewhere', 'linked.jpg'), '']]);
    const e = await walkPhotos([join(dir, 'lib'), join(dir, 'missing')]).catch((x: unknown) => x);
    expect(isCosfaceError(e, 'BAD_INPUT')).toBe(true);
    expect((e as Error).message).toContain('missing: no such file or folder');
  });

  it('without recursion, takes only the files of the folder itself', async () => {
    const r = await walkPhotos([join(dir, 'lib', 'a')], { recursive: false });
    expect(r.photos.map((p) => p.relative)).toEqual(['one.jpg']);
  });

  it('sniffs the formats from their signatures only', () => {
    expect(sniffFormat(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0]))).toBe('jpeg');
    expect(sniffFormat(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe('png');
    expect(sniffFormat(new TextEncoder().encode('RIFF\0\0\0\0WEBPVP8 '))).toBe('webp');
    expect(sniffFormat(new TextEncoder().encode('RIFF\0\0\0\0WAVEfmt '))).toBeNull();
    expect(sniffFormat(new TextEncoder().encode('GIF89a'))).toBeNull();
    expect(sniffFormat(new Uint8Array(0))).toBeNull();
  });
});
