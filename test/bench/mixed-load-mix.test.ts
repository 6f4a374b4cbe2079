// The mixed HTTP load's operation sequence: the proportions the benchmark reports (identify /
// verify / enroll / delete = 50/20/20/10) and requests that name existing identities. A change of
// the random generator's range once silently removed every identify from the mix.
import { describe, expect, it } from 'vitest';
import { Mix } from '../../src/bench/mixed-load.js';

describe('mixed-load operation mix', () => {
  it('draws 50/20/20/10 and names only enrolled identities', () => {
    const base = Array.from({ length: 500 }, (_, i) => Array.from({ length: 4 }, (_, j) => (i * 4 + j) / 2000 - 0.5));
    const mix = new Mix(base, 0, 5000, 't');
    const count: Record<string, number> = { identify: 0, verify: 0, enroll: 0, delete: 0 };
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const m = mix.next();
      count[m.op]!++;
      expect(m.embedding).toHaveLength(4);
      expect(m.embedding.every(Number.isFinite)).toBe(true);
      if (m.op === 'verify') expect(Number(m.identity.slice(2))).toBeLessThan(base.length);
    }
    expect(count.identify! / n).toBeCloseTo(0.5, 1);
    expect(count.verify! / n).toBeCloseTo(0.2, 1);
    expect(count.enroll! / n).toBeCloseTo(0.2, 1);
    expect(count.delete! / n).toBeCloseTo(0.1, 1);
  });
});
