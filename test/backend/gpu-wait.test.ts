// GpuWait: the sleep before asking Dawn for GPU results (see src/backend/webgpu/gpu-wait.ts).
import { describe, expect, it } from 'vitest';
import { GpuWait } from '../../src/backend/webgpu/gpu-wait.js';

const timed = async (fn: () => Promise<void>) => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};

describe('GpuWait', () => {
  it('does not sleep before anything was measured', async () => {
    const w = new GpuWait();
    expect(await timed(() => w.before(1000))).toBeLessThan(20);
  });

  it('sleeps through most of the expected time, scaled by the units of work', async () => {
    const w = new GpuWait();
    w.record(4, 100); // 25 ms per unit
    const ms = await timed(() => w.before(8)); // expects 200 ms, sleeps 85% of it
    expect(ms).toBeGreaterThanOrEqual(165);
    expect(ms).toBeLessThan(200 + 150);
  });

  it('learns a shorter time after oversleeping, so an overestimate does not stick', async () => {
    const w = new GpuWait();
    w.record(1, 1000);
    for (let i = 0; i < 30; i++) w.record(1, 10); // work got faster
    expect(await timed(() => w.before(1))).toBeLessThan(60);
  });

  it('ignores meaningless samples', async () => {
    const w = new GpuWait();
    w.record(0, 500);
    w.record(3, Number.NaN);
    expect(await timed(() => w.before(1000))).toBeLessThan(20);
  });
});
