// The portable SHA-256 against node:crypto on the standard vectors, every length around the block
// padding boundaries, a photo fixture and UTF-8 text.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/server/sha256.js';
import { mulberry32 } from '../helpers/fixtures.js';

const node = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

describe('sha256Hex', () => {
  it('gives the FIPS 180 test vectors', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe('248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  });

  it('equals node:crypto for every length 0..200, a photo, subarray views and UTF-8 text', () => {
    const rnd = mulberry32(5);
    const bytes = Uint8Array.from({ length: 300 }, () => Math.floor(rnd() * 256));
    for (let n = 0; n <= 200; n++) expect(sha256Hex(bytes.subarray(0, n)), `length ${n}`).toBe(node(bytes.subarray(0, n)));
    expect(sha256Hex(bytes.subarray(37, 251))).toBe(node(bytes.subarray(37, 251)));
    const photo = new Uint8Array(readFileSync('test/fixtures/photos/t1.jpg'));
    expect(sha256Hex(photo)).toBe(node(photo));
    expect(sha256Hex('cfk_zoë-🙂-key')).toBe(node('cfk_zoë-🙂-key'));
  });
});
