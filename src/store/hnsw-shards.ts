// The graphs a GalleryIndex is made of. A small gallery's one graph lives in this thread
// (LocalShard). Each graph of a sharded gallery lives in a worker thread of its own (WorkerShard),
// which builds or loads it and then answers calls synchronously: the caller posts the request and
// blocks in Atomics.wait until the worker answers. So the index keeps its synchronous interface
// (replay inside one read transaction, snapshots, deletes, no interleaving with other requests),
// while a search, a batch of adds or a snapshot runs on every shard at once: the caller starts the
// call on each shard, then waits for each (`ShardCall.wait`).
import hnswlib from 'hnswlib-node';
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { CosfaceError } from '../errors.js';

type Hnsw = InstanceType<typeof hnswlib.HierarchicalNSW>;

export const MIN_CAPACITY = 1024;
// hnswlib's fixed seed, so two builds over the same faces give the same graph.
export const RANDOM_SEED = 100;

/** A call started on a shard; wait() returns its result (or throws its error). Every call must be waited for. */
export interface ShardCall<T> {
  wait(): T;
}

/** Nearest entries of one shard, best first; scores are inner products (hnswlib 'ip' distance is 1 - dot). */
export interface ShardHits {
  ids: number[];
  scores: number[];
}

/** What a written shard file is: size, checksum, entries (deleted ones included). */
export interface WrittenShard {
  bytes: number;
  sha256: string;
  count: number;
}

/** One hnswlib graph (inner product), wherever it lives. One call at a time per shard. */
export interface Shard {
  /** Entries, deleted ones included. */
  readonly count: number;
  readonly maxElements: number;
  /** Adds row-major unit vectors under their face ids, doubling the capacity when full. */
  add(ids: readonly number[], vectors: Float32Array): ShardCall<void>;
  /** False when the id is not in the graph or already deleted. */
  markDelete(id: number): boolean;
  search(probe: Float32Array, k: number, ef: number): ShardCall<ShardHits>;
  /** The stored vector of a live entry, or null. */
  point(id: number): Float32Array | null;
  entries(): { faceId: number; live: boolean }[];
  /** Writes the graph to `path`, fsynced, and returns its size and checksum. */
  write(path: string): ShardCall<WrittenShard>;
  /** Frees the graph (a worker's thread ends). */
  close(): void;
}

const done = <T>(value: T): ShardCall<T> => ({ wait: () => value });
const failed = <T>(e: unknown): ShardCall<T> => ({
  wait: () => {
    throw e;
  },
});

export function fsyncFile(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function sha256File(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** A graph in this thread (a gallery below the shard threshold). */
export class LocalShard implements Shard {
  constructor(readonly hnsw: Hnsw) {}

  static create(dimension: number, capacity: number, m: number, efConstruction: number): LocalShard {
    const hnsw = new hnswlib.HierarchicalNSW('ip', dimension);
    hnsw.initIndex(Math.max(MIN_CAPACITY, capacity), m, efConstruction, RANDOM_SEED);
    return new LocalShard(hnsw);
  }

  static read(dimension: number, path: string): LocalShard {
    const hnsw = new hnswlib.HierarchicalNSW('ip', dimension);
    hnsw.readIndexSync(path);
    return new LocalShard(hnsw);
  }

  get count(): number {
    return this.hnsw.getCurrentCount();
  }
  get maxElements(): number {
    return this.hnsw.getMaxElements();
  }

  add(ids: readonly number[], vectors: Float32Array): ShardCall<void> {
    const dim = vectors.length / Math.max(1, ids.length);
    try {
      for (let i = 0; i < ids.length; i++) {
        const h = this.hnsw;
        if (h.getCurrentCount() >= h.getMaxElements()) h.resizeIndex(Math.max(MIN_CAPACITY, h.getMaxElements() * 2));
        h.addPoint(Array.from(vectors.subarray(i * dim, (i + 1) * dim)), ids[i]!);
      }
      return done(undefined);
    } catch (e) {
      return failed(e);
    }
  }

  markDelete(id: number): boolean {
    try {
      this.hnsw.markDelete(id);
      return true;
    } catch {
      // hnswlib throws for "Label not found" and "already deleted": both mean nothing to do.
      return false;
    }
  }

  search(probe: Float32Array, k: number, ef: number): ShardCall<ShardHits> {
    try {
      this.hnsw.setEf(ef);
      const r = this.hnsw.searchKnn(Array.from(probe), k);
      return done({ ids: r.neighbors, scores: r.distances.map((d) => 1 - d) });
    } catch (e) {
      return failed(e);
    }
  }

  point(id: number): Float32Array | null {
    try {
      return Float32Array.from(this.hnsw.getPoint(id));
    } catch {
      return null;
    }
  }

  entries(): { faceId: number; live: boolean }[] {
    return this.hnsw.getIdsList().map((faceId) => ({ faceId, live: this.point(faceId) !== null }));
  }

  write(path: string): ShardCall<WrittenShard> {
    try {
      this.hnsw.writeIndexSync(path);
      fsyncFile(path);
      return done({ bytes: statSync(path).size, sha256: sha256File(path), count: this.count });
    } catch (e) {
      return failed(e);
    }
  }

  close(): void {
    // The graph is freed with this object.
  }
}

// The shard worker is plain JavaScript evaluated in a worker thread, so it runs the same way under
// tsx, vitest and the compiled build (a .ts worker file would need a loader in the worker). It makes
// its graph (mode 'build': the faces with id % shards === shard, from its own read-only connection
// inside one read transaction or from vectors in shared memory, written and fsynced to `path`;
// 'load': read from `path`; 'create': empty), reports it, and with `serve` then answers calls: it
// waits on ctl[0] (the request number), takes a search's probe from shared memory (ctl[2] === 1) or
// any other request from its port, answers in shared memory or on the port, and stores the request
// number in ctl[1]. ctl[6] is set when the thread ends, so a caller never waits on a dead worker.
const SHARD_WORKER_SOURCE = `
const { parentPort, workerData: w, receiveMessageOnPort } = require('node:worker_threads');
const hnswlib = require(w.hnswModule);
const fs = require('node:fs');
const crypto = require('node:crypto');
const index = new hnswlib.HierarchicalNSW('ip', w.dimension);
const ctl = w.ctl ? new Int32Array(w.ctl) : null;
if (ctl) process.on('exit', () => { Atomics.store(ctl, 6, 1); Atomics.notify(ctl, 1); });
const init = (live) => index.initIndex(Math.max(${MIN_CAPACITY}, Math.ceil(live * 1.25)), w.m, w.efConstruction, ${RANDOM_SEED});
const v = new Array(w.dimension);
function addRow(vec, offset, id) {
  if (index.getCurrentCount() >= index.getMaxElements()) index.resizeIndex(Math.max(${MIN_CAPACITY}, index.getMaxElements() * 2));
  for (let i = 0; i < w.dimension; i++) v[i] = vec[offset + i];
  index.addPoint(v, id);
}
function writeFile(path) {
  index.writeIndexSync(path);
  const fd = fs.openSync(path, 'r+'); fs.fsyncSync(fd); fs.closeSync(fd);
  const bytes = fs.statSync(path).size;
  const hash = crypto.createHash('sha256');
  const rfd = fs.openSync(path, 'r');
  const buf = Buffer.alloc(1 << 20);
  for (let n; (n = fs.readSync(rfd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  fs.closeSync(rfd);
  return { bytes, sha256: hash.digest('hex'), count: index.getCurrentCount() };
}
let part = null;
if (w.mode === 'build') {
  let count = 0;
  if (w.dbPath) {
    const Database = require(w.sqliteModule);
    const db = new Database(w.dbPath, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN');
    const where = 'gallery_id = ? AND deleted = 0 AND id <= ? AND id % ? = ?';
    const args = [w.galleryId, w.maxId, w.shards, w.shard];
    init(db.prepare('SELECT COUNT(*) AS n FROM faces WHERE ' + where).get(...args).n);
    const f = new Float32Array(w.dimension);
    for (const row of db.prepare('SELECT id, embedding FROM faces WHERE ' + where + ' ORDER BY id').iterate(...args)) {
      const b = row.embedding;
      for (let i = 0; i < w.dimension; i++) f[i] = b.readFloatLE(i * 4);
      addRow(f, 0, row.id);
      if (++count % 50000 === 0) parentPort.postMessage({ progress: count });
    }
    db.exec('COMMIT');
    db.close();
  } else {
    const ids = w.ids;
    let live = 0;
    for (let r = 0; r < ids.length; r++) if (ids[r] % w.shards === w.shard) live++;
    init(live);
    for (let r = 0; r < ids.length; r++) {
      if (ids[r] % w.shards !== w.shard) continue;
      addRow(w.vectors, r * w.dimension, ids[r]);
      if (++count % 50000 === 0) parentPort.postMessage({ progress: count });
    }
  }
  const tmp = w.path + '.tmp';
  part = writeFile(tmp);
  fs.renameSync(tmp, w.path);
} else if (w.mode === 'load') {
  index.readIndexSync(w.path);
} else {
  init(w.capacity);
}
parentPort.postMessage({ ready: { part, count: index.getCurrentCount(), max: index.getMaxElements(), dimension: index.getNumDimensions() } });
if (w.serve) {
  const port = w.port;
  const probe = new Float32Array(w.probe);
  const outIds = new Float64Array(w.outIds);
  const outScores = new Float64Array(w.outScores);
  const q = new Array(w.dimension);
  const handle = (m) => {
    switch (m.op) {
      case 'add':
        for (let r = 0; r < m.ids.length; r++) addRow(m.vectors, r * w.dimension, m.ids[r]);
        return { count: index.getCurrentCount(), max: index.getMaxElements() };
      case 'markDelete':
        try { index.markDelete(m.id); return true; } catch { return false; }
      case 'point':
        try { return Float32Array.from(index.getPoint(m.id)); } catch { return null; }
      case 'entries': {
        const ids = index.getIdsList();
        return { ids, live: ids.map((id) => { try { index.getPoint(id); return true; } catch { return false; } }) };
      }
      case 'write':
        return writeFile(m.path);
      case 'close':
        return null;
    }
    throw new Error('unknown shard request ' + m.op);
  };
  let seen = 0;
  for (;;) {
    Atomics.wait(ctl, 0, seen);
    const seq = Atomics.load(ctl, 0);
    if (seq === seen) continue;
    seen = seq;
    let stop = false;
    if (ctl[2] === 1) {
      try {
        for (let i = 0; i < w.dimension; i++) q[i] = probe[i];
        index.setEf(ctl[4]);
        const r = index.searchKnn(q, ctl[3]);
        for (let i = 0; i < r.neighbors.length; i++) { outIds[i] = r.neighbors[i]; outScores[i] = 1 - r.distances[i]; }
        ctl[5] = r.neighbors.length;
      } catch (e) {
        ctl[5] = -1;
        port.postMessage({ error: String((e && e.message) || e) });
      }
    } else {
      const m = receiveMessageOnPort(port).message;
      let reply;
      try { reply = { value: handle(m) }; } catch (e) { reply = { error: String((e && e.message) || e) }; }
      stop = m.op === 'close';
      port.postMessage(reply);
    }
    Atomics.store(ctl, 1, seq);
    Atomics.notify(ctl, 1);
    if (stop) break;
  }
  port.close();
}
`;

/** Largest k a search answers through shared memory (the store asks for at most 4 x MAX_K faces). */
const MAX_SHARED_K = 4096;

export type ShardWorkerInit =
  | { mode: 'load'; path: string }
  | { mode: 'create'; capacity: number }
  | ({ mode: 'build'; path: string; shard: number; shards: number } & (
      | { dbPath: string; galleryId: number; maxId: number }
      | { ids: Float64Array; vectors: Float32Array }
    ));

export interface StartedShardWorker {
  worker: Worker;
  /** Resolves when the graph is made: the shard (when `serve`), and the file a build wrote. */
  ready: Promise<{ shard: WorkerShard | null; part: WrittenShard | null }>;
}

/**
 * Starts a worker thread that makes one graph (`init`) and, with `serve`, keeps it and answers calls
 * as a WorkerShard. `background`: the thread never keeps the process alive while it builds; a
 * serving thread never does.
 */
export function startShardWorker(
  params: { dimension: number; m: number; efConstruction: number },
  init: ShardWorkerInit,
  o: { serve: boolean; background?: boolean; onProgress?: (added: number) => void },
): StartedShardWorker {
  const require = createRequire(import.meta.url);
  const ctl = new Int32Array(new SharedArrayBuffer(8 * 4));
  const probe = new Float32Array(new SharedArrayBuffer(params.dimension * 4));
  const outIds = new Float64Array(new SharedArrayBuffer(MAX_SHARED_K * 8));
  const outScores = new Float64Array(new SharedArrayBuffer(MAX_SHARED_K * 8));
  const channel = o.serve ? new MessageChannel() : null;
  const worker = new Worker(SHARD_WORKER_SOURCE, {
    eval: true,
    workerData: {
      hnswModule: require.resolve('hnswlib-node'),
      sqliteModule: require.resolve('better-sqlite3'),
      ...init,
      dimension: params.dimension,
      m: params.m,
      efConstruction: params.efConstruction,
      serve: o.serve,
      ...(channel ? { port: channel.port2, ctl: ctl.buffer, probe: probe.buffer, outIds: outIds.buffer, outScores: outScores.buffer } : {}),
    },
    transferList: channel ? [channel.port2] : [],
  });
  if (o.background) worker.unref();
  const ready = new Promise<{ shard: WorkerShard | null; part: WrittenShard | null }>((resolve, reject) => {
    let settled = false;
    worker.on('message', (m: { progress: number } | { ready: { part: WrittenShard | null; count: number; max: number; dimension: number } }) => {
      if ('progress' in m) {
        o.onProgress?.(m.progress);
        return;
      }
      settled = true;
      worker.removeAllListeners('message');
      if (m.ready.dimension !== params.dimension) {
        void worker.terminate();
        reject(new Error(`graph has dimension ${m.ready.dimension}, expected ${params.dimension}`));
        return;
      }
      // A serving thread sits in Atomics.wait from here on: it must not hold the process open.
      if (o.serve) worker.unref();
      resolve({ shard: channel ? new WorkerShard(worker, channel.port1, ctl, probe, outIds, outScores, m.ready.count, m.ready.max) : null, part: m.ready.part });
    });
    worker.once('error', (e) => {
      if (!settled) reject(e);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`shard worker exited with ${code}`));
    });
  });
  return { worker, ready };
}

/** A graph owned by a worker thread (startShardWorker with serve), called synchronously. */
export class WorkerShard implements Shard {
  private seq = 0;
  private closed = false;
  private pendingSeq = 0;

  constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly ctl: Int32Array,
    private readonly probe: Float32Array,
    private readonly outIds: Float64Array,
    private readonly outScores: Float64Array,
    public count: number,
    public maxElements: number,
  ) {
    port.unref();
  }

  add(ids: readonly number[], vectors: Float32Array): ShardCall<void> {
    const seq = this.request({ op: 'add', ids: [...ids], vectors });
    return {
      wait: () => {
        const r = this.reply<{ count: number; max: number }>(seq);
        this.count = r.count;
        this.maxElements = r.max;
      },
    };
  }

  markDelete(id: number): boolean {
    return this.reply<boolean>(this.request({ op: 'markDelete', id }));
  }

  search(probe: Float32Array, k: number, ef: number): ShardCall<ShardHits> {
    if (k > MAX_SHARED_K) return failed(new CosfaceError('INDEX_ERROR', `a shard search for ${k} faces: at most ${MAX_SHARED_K}`));
    this.probe.set(probe);
    this.ctl[3] = k;
    this.ctl[4] = ef;
    const seq = this.start(1);
    return {
      wait: () => {
        this.waitFor(seq);
        const n = this.ctl[5]!;
        if (n < 0) this.reply(seq); // throws the worker's error
        const ids: number[] = new Array(n);
        const scores: number[] = new Array(n);
        for (let i = 0; i < n; i++) {
          ids[i] = this.outIds[i]!;
          scores[i] = this.outScores[i]!;
        }
        return { ids, scores };
      },
    };
  }

  point(id: number): Float32Array | null {
    return this.reply<Float32Array | null>(this.request({ op: 'point', id }));
  }

  entries(): { faceId: number; live: boolean }[] {
    const r = this.reply<{ ids: number[]; live: boolean[] }>(this.request({ op: 'entries' }));
    return r.ids.map((faceId, i) => ({ faceId, live: r.live[i]! }));
  }

  write(path: string): ShardCall<WrittenShard> {
    const seq = this.request({ op: 'write', path });
    return { wait: () => this.reply<WrittenShard>(seq) };
  }

  close(): void {
    if (this.closed) return;
    try {
      if (Atomics.load(this.ctl, 6) === 0) this.reply(this.request({ op: 'close' }));
    } catch {
      // A thread that already ended has nothing to free.
    }
    this.closed = true;
    void this.worker.terminate();
  }

  private request(m: object): number {
    if (this.closed) throw new CosfaceError('INDEX_ERROR', 'index shard already closed');
    this.port.postMessage(m);
    return this.start(2);
  }

  private start(op: number): number {
    if (this.closed) throw new CosfaceError('INDEX_ERROR', 'index shard already closed');
    if (this.pendingSeq !== 0) throw new Error('a shard call is still running');
    this.ctl[2] = op;
    const seq = ++this.seq;
    this.pendingSeq = seq;
    Atomics.store(this.ctl, 0, seq);
    Atomics.notify(this.ctl, 0);
    return seq;
  }

  private waitFor(seq: number): void {
    for (;;) {
      const at = Atomics.load(this.ctl, 1);
      if (at === seq) break;
      if (Atomics.load(this.ctl, 6) !== 0) {
        this.pendingSeq = 0;
        this.closed = true;
        throw new CosfaceError('INDEX_ERROR', 'index shard worker stopped');
      }
      Atomics.wait(this.ctl, 1, at, 1000);
    }
    this.pendingSeq = 0;
  }

  private reply<T>(seq: number): T {
    if (this.pendingSeq === seq) this.waitFor(seq);
    const m = receiveMessageOnPort(this.port)?.message as { value: T } | { error: string } | undefined;
    if (!m) throw new CosfaceError('INDEX_ERROR', 'index shard worker gave no answer');
    if ('error' in m) throw new CosfaceError('INDEX_ERROR', `index shard: ${m.error}`);
    return m.value;
  }
}

/** Waits for every call (each must be waited for), then returns their results or throws the first error. */
export function waitAll<T>(calls: ShardCall<T>[]): T[] {
  const out: T[] = [];
  let error: unknown = null;
  for (const c of calls) {
    try {
      out.push(c.wait());
    } catch (e) {
      error ??= e;
    }
  }
  if (error !== null) throw error;
  return out;
}
