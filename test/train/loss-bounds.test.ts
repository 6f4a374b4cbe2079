// The paper's bounds on m and s, and the `loss bounds` command text.
import { describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { lossBoundsCommand, marginUpperBound, scaleLowerBound } from '../../src/train/loss-bounds.js';

describe('loss bounds', () => {
  it('gives the three cases of the paper', () => {
    expect(marginUpperBound(8, 2).mMax).toBeCloseTo(1 - Math.cos(Math.PI / 4), 12);
    expect(marginUpperBound(10, 128).mMax).toBeCloseTo(10 / 9, 12);
    expect(marginUpperBound(129, 128).mMax).toBeCloseTo(129 / 128, 12);
    const many = marginUpperBound(10575, 512);
    expect(many.mMax).toBeNull();
    expect(many.reason).toMatch(/much smaller/);
  });

  it('s lower bound grows with C and with the posterior', () => {
    // C = 10575 (CASIA-WebFace), P = 0.9: about 11.2.
    expect(scaleLowerBound(10575, 0.9)).toBeCloseTo((10574 / 10575) * Math.log((10574 * 0.9) / 0.1), 12);
    expect(scaleLowerBound(100, 0.99)).toBeGreaterThan(scaleLowerBound(100, 0.9));
    expect(scaleLowerBound(1000, 0.9)).toBeGreaterThan(scaleLowerBound(100, 0.9));
  });

  it('prints JSON { mMax, sMin } and refuses bad arguments', () => {
    const j = JSON.parse(lossBoundsCommand(['--classes', '30', '--dim', '128', '--posterior', '0.9', '--json']));
    expect(j.mMax).toBeCloseTo(30 / 29, 12);
    expect(j.sMin).toBeCloseTo(scaleLowerBound(30, 0.9), 12);
    expect(JSON.parse(lossBoundsCommand(['--classes', '1000', '--dim', '128', '--json'])).mMax).toBeNull();
    expect(lossBoundsCommand(['--classes', '1000', '--dim', '128'])).toMatch(/mMax: none/);
    for (const bad of [['--classes', '1', '--dim', '2'], ['--classes', '5', '--dim', '2', '--posterior', '1'], ['--bogus']]) {
      let code = '';
      try {
        lossBoundsCommand(bad);
      } catch (e) {
        code = isCosfaceError(e) ? e.code : 'other';
      }
      expect(code).toBe('BAD_INPUT');
    }
  });
});
