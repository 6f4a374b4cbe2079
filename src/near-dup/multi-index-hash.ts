// Multi-index hashing (Norouzi, Punjani, Fleet, CVPR 2012) for 64-bit hashes under the Hamming
// distance: each hash is filed under its four 16-bit quarters. Two hashes within r bits of each
// other have at least one quarter within floor(r / 4) bits (pigeonhole), so a search probes, per
// quarter, the buckets of every 16-bit value that close (137 of 65,536 for r = 8) and checks only
// the hashes found there, instead of comparing the query with every hash.
import { CosfaceError } from '../errors.js';
import { hamming, popcount32, type Hash64 } from './perceptual-hash.js';

const QUARTERS = 4;
const BUCKETS = 1 << 16;

function quarter(h: Hash64, q: number): number {
  return q < 2 ? (h.hi >>> (16 * (1 - q))) & 0xffff : (h.lo >>> (16 * (3 - q))) & 0xffff;
}

/** The 16-bit masks with at most r bits set, fewest bits first. */
function masksUpTo(r: number): Int32Array {
  const out: number[] = [];
  for (let m = 0; m < BUCKETS; m++) if (popcount32(m) <= r) out.push(m);
  return Int32Array.from(out.sort((a, b) => popcount32(a) - popcount32(b)));
}

export class MultiIndexHash {
  private readonly hashes: Hash64[] = [];
  private readonly ids: number[] = [];
  private readonly tables: (number[] | undefined)[][] = Array.from({ length: QUARTERS }, () => new Array<number[] | undefined>(BUCKETS));
  private readonly masks = new Map<number, Int32Array>();
  private stamp = new Uint32Array(0);
  private query = 0;
  /** Full Hamming distances computed by searches (a scan would compute one per stored hash). */
  comparisons = 0;

  get size(): number {
    return this.hashes.length;
  }

  add(hash: Hash64, id: number): void {
    const entry = this.hashes.length;
    this.hashes.push(hash);
    this.ids.push(id);
    for (let q = 0; q < QUARTERS; q++) {
      const t = this.tables[q]!;
      const k = quarter(hash, q);
      (t[k] ??= []).push(entry);
    }
  }

  /** Every (id, distance) stored within `radius` bits of the hash (radius 0..15). */
  within(hash: Hash64, radius: number): { id: number; distance: number }[] {
    if (!Number.isInteger(radius) || radius < 0 || radius > 15) throw new CosfaceError('BAD_INPUT', `MultiIndexHash: radius must be an integer from 0 to 15, got ${radius}`);
    const per = Math.floor(radius / QUARTERS);
    let masks = this.masks.get(per);
    if (!masks) this.masks.set(per, (masks = masksUpTo(per)));
    if (this.stamp.length < this.hashes.length) {
      const s = new Uint32Array(Math.max(1024, this.hashes.length * 2));
      s.set(this.stamp);
      this.stamp = s;
    }
    const mark = ++this.query;
    const out: { id: number; distance: number }[] = [];
    for (let q = 0; q < QUARTERS; q++) {
      const t = this.tables[q]!;
      const k = quarter(hash, q);
      for (let i = 0; i < masks.length; i++) {
        const bucket = t[k ^ masks[i]!];
        if (!bucket) continue;
        for (const e of bucket) {
          if (this.stamp[e] === mark) continue;
          this.stamp[e] = mark;
          this.comparisons++;
          const d = hamming(hash, this.hashes[e]!);
          if (d <= radius) out.push({ id: this.ids[e]!, distance: d });
        }
      }
    }
    return out;
  }
}
