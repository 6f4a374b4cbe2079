// ORL input handling (PGM reading, listing, model input) and the evaluation measures used by
// the margin sweep.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { balancedPairs, leaveOneOutRank1, verificationAccuracy } from '../../src/train/face-eval.js';
import { listOrl, orlModelInput, readPgm } from '../../src/train/orl.js';

const ORL = '/work/shared/data/orl';
const haveOrl = (() => {
  try {
    listOrl(ORL);
    return true;
  } catch {
    return false;
  }
})();

function code(f: () => unknown): string {
  try {
    f();
    return 'none';
  } catch (e) {
    return isCosfaceError(e) ? e.code : 'other';
  }
}

describe('PGM reader', () => {
  it('reads a P5 header with comments and keeps the samples', () => {
    const body = Uint8Array.from({ length: 6 }, (_, i) => i * 40);
    const head = new TextEncoder().encode('P5\n# a comment\n3 2\n# another\n255\n');
    const img = readPgm(new Uint8Array([...head, ...body]));
    expect([img.width, img.height]).toEqual([3, 2]);
    expect(Array.from(img.data)).toEqual(Array.from(body));
    // maxval 15 is scaled to 0..255.
    expect(Array.from(readPgm(new Uint8Array([...new TextEncoder().encode('P5 2 1 15 '), 15, 5])).data)).toEqual([255, 85]);
  });

  it('refuses other formats and truncated data with BAD_IMAGE', () => {
    expect(code(() => readPgm(new TextEncoder().encode('P2\n2 2\n255\n1 2 3 4')))).toBe('BAD_IMAGE');
    expect(code(() => readPgm(new Uint8Array([...new TextEncoder().encode('P5\n4 4\n255\n'), 1, 2, 3])))).toBe('BAD_IMAGE');
    expect(code(() => readPgm(new TextEncoder().encode('P5\n4')))).toBe('BAD_IMAGE');
    expect(code(() => readPgm(new TextEncoder().encode('P5\n4 4\n65535\n')))).toBe('BAD_IMAGE');
  });
});

describe.skipIf(!haveOrl)('ORL', () => {
  it('lists 40 identities of 10 images, and each image is 92x112 with the file\'s own samples', () => {
    const images = listOrl(ORL);
    expect(images.length).toBe(400);
    expect(new Set(images.map((i) => i.identity)).size).toBe(40);
    const bytes = readFileSync(images[0]!.file);
    const img = readPgm(bytes, images[0]!.file);
    expect([img.width, img.height]).toEqual([92, 112]);
    expect(Array.from(img.data.subarray(-50))).toEqual(Array.from(bytes.subarray(-50)));
  });

  it('model input: 112x112 grey in R = G = B, the mirror image reversed left to right', async () => {
    const img = readPgm(readFileSync(listOrl(ORL)[0]!.file));
    const a = await orlModelInput(img, 112);
    const b = await orlModelInput(img, 112, true);
    expect(a.length).toBe(112 * 112 * 3);
    for (let i = 0; i < 112 * 112; i += 97) expect(a[3 * i]).toBe(a[3 * i + 2]);
    // Resampling is not exactly symmetric, so compare on average: the mirror image matches a
    // flipped left to right far better than a itself.
    let flipped = 0;
    let plain = 0;
    for (let y = 0; y < 112; y++) {
      for (let x = 0; x < 112; x++) {
        flipped += Math.abs(b[(y * 112 + (111 - x)) * 3]! - a[(y * 112 + x) * 3]!) / 112 ** 2;
        plain += Math.abs(b[(y * 112 + x) * 3]! - a[(y * 112 + x) * 3]!) / 112 ** 2;
      }
    }
    expect(flipped).toBeLessThan(3);
    expect(plain).toBeGreaterThan(5 * flipped);
  });
});

describe('held-out evaluation measures', () => {
  it('balanced pairs: every genuine pair and as many impostors', () => {
    const labels = [0, 0, 0, 1, 1, 2, 2, 2];
    const pairs = balancedPairs(labels, labels.map((_, i) => i));
    expect(pairs.filter((p) => p.same).length).toBe(3 + 1 + 3);
    expect(pairs.filter((p) => !p.same).length).toBe(7);
    expect(pairs.every((p) => p.same === (labels[p.a] === labels[p.b]))).toBe(true);
  });

  it('verification accuracy is 100 on separable scores and near 50 on noise; rank-1 is 100 on tight clusters', () => {
    const same = Array.from({ length: 400 }, (_, i) => i % 2 === 0);
    expect(verificationAccuracy(same.map((s, i) => (s ? 0.8 : 0.2) + (i % 7) * 0.01), same).accuracy).toBe(100);
    let x = 1;
    const noise = same.map(() => ((x = (x * 16807) % 2147483647) / 2147483647));
    expect(Math.abs(verificationAccuracy(noise, same).accuracy - 50)).toBeLessThan(10);
    const emb = Float32Array.from([1, 0, 0.99, 0.1, 0, 1, 0.1, 0.99]);
    expect(leaveOneOutRank1(emb, 2, [0, 0, 1, 1], [0, 1, 2, 3])).toBe(100);
  });
});
