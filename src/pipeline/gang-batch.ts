// Several photos through one network call per step: each photo runs the ordinary per-photo code,
// but its network calls go through a GangBatcher, which holds them until every photo still in
// the gang is waiting on one, then runs each network once on all the waiting inputs back to back
// and hands every photo its own rows. A photo that finishes (or fails) leaves the gang, so the
// others never wait for it. The backends compute each sample of a batch on its own, so a photo's
// results are those it gets alone.

/** A compiled network's run: n samples back to back in, n outputs back to back out. */
export type RunGraph = (input: Float32Array, n: number) => Promise<Float32Array>;

interface Waiting {
  run: RunGraph;
  input: Float32Array;
  n: number;
  resolve: (out: Float32Array) => void;
  reject: (e: unknown) => void;
}

export class GangBatcher {
  private waiting: Waiting[] = [];

  /** members: the photos that will call through this gang, each calling leave() once when done. */
  constructor(private members: number) {
    if (!(Number.isInteger(members) && members >= 1)) throw new RangeError('GangBatcher: members must be a positive integer');
  }

  /** run, batched with the other members' calls of the same network. */
  runner(run: RunGraph): RunGraph {
    return (input, n) =>
      new Promise<Float32Array>((resolve, reject) => {
        this.waiting.push({ run, input, n, resolve, reject });
        this.flushIfAllWait();
      });
  }

  /** A member is done: the others no longer wait for its calls. */
  leave(): void {
    if (this.members === 0) throw new Error('GangBatcher: more leave() calls than members');
    this.members--;
    this.flushIfAllWait();
  }

  private flushIfAllWait(): void {
    if (this.waiting.length === 0 || this.waiting.length < this.members) return;
    const calls = this.waiting;
    this.waiting = [];
    // One call per network, in the order the networks were first asked for.
    const byRun = new Map<RunGraph, Waiting[]>();
    for (const c of calls) {
      const list = byRun.get(c.run);
      if (list) list.push(c);
      else byRun.set(c.run, [c]);
    }
    void (async () => {
      for (const [run, group] of byRun) await runGroup(run, group);
    })();
  }
}

async function runGroup(run: RunGraph, group: Waiting[]): Promise<void> {
  if (group.length === 1) {
    const c = group[0]!;
    await run(c.input, c.n).then(c.resolve, c.reject);
    return;
  }
  const total = group.reduce((s, c) => s + c.n, 0);
  const input = new Float32Array(group.reduce((s, c) => s + c.input.length, 0));
  let off = 0;
  for (const c of group) {
    input.set(c.input, off);
    off += c.input.length;
  }
  let out: Float32Array;
  try {
    out = await run(input, total);
  } catch (e) {
    for (const c of group) c.reject(e);
    return;
  }
  const per = out.length / total;
  let row = 0;
  for (const c of group) {
    c.resolve(out.slice(row * per, (row + c.n) * per));
    row += c.n;
  }
}
