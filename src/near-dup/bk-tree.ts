// A BK-tree over 64-bit hashes under the Hamming distance: each child hangs under the distance it
// has to its parent, so a search for everything within r of a query only descends into children at
// distance d - r .. d + r of each visited node (the triangle inequality) instead of comparing all.
import { hamming, type Hash64 } from './perceptual-hash.js';

interface BkNode {
  hash: Hash64;
  id: number;
  /** children[d]: the subtree at distance d (0..64) from this node. */
  children: (BkNode | undefined)[] | null;
}

export class BkTree {
  private root: BkNode | null = null;
  private count = 0;
  /** Distance computations done by searches, to show the search is not a full scan. */
  comparisons = 0;

  get size(): number {
    return this.count;
  }

  add(hash: Hash64, id: number): void {
    const node: BkNode = { hash, id, children: null };
    this.count++;
    if (!this.root) {
      this.root = node;
      return;
    }
    let at = this.root;
    for (;;) {
      const d = hamming(hash, at.hash);
      at.children ??= [];
      const next = at.children[d];
      if (!next) {
        at.children[d] = node;
        return;
      }
      at = next;
    }
  }

  /** Every (id, distance) within `radius` of the hash. */
  within(hash: Hash64, radius: number): { id: number; distance: number }[] {
    const out: { id: number; distance: number }[] = [];
    if (!this.root) return out;
    const stack: BkNode[] = [this.root];
    while (stack.length) {
      const n = stack.pop()!;
      const d = hamming(hash, n.hash);
      this.comparisons++;
      if (d <= radius) out.push({ id: n.id, distance: d });
      if (!n.children) continue;
      const from = Math.max(0, d - radius);
      const to = Math.min(64, d + radius);
      for (let k = from; k <= to; k++) {
        const c = n.children[k];
        if (c) stack.push(c);
      }
    }
    return out;
  }
}
