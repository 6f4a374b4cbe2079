// One small seeded PRNG for everything that needs repeatable randomness (benchmark galleries,
// clustering tie-breaks, generated test data): mulberry32, uniform in [0, 1).
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The same generator shifted to [-0.5, 0.5): random directions and symmetric noise. */
export function centredRandom(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() - 0.5;
}

/** Standard normal samples from a uniform generator (Box-Muller, two draws a sample). */
export function gaussian(rnd: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
}
