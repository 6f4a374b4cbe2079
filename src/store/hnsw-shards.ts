// The graphs a GalleryIndex is made of. A small gallery's one graph lives in this thread
// (LocalShard). Each graph of a sharded gallery lives in a worker thread of its own (WorkerShard),
// which builds or loads it and then answers calls synchronously: the caller posts the request and
// blocks in Atomics.wait until the worker answers. So the index keeps its synchronous interface
// (replay inside one read transaction, snapshots, deletes, no interleaving with other requests),
// while a search, a batch of adds or a snapshot runs on every shard at once: the caller starts the
// call on each shard, then waits for each (`ShardCall.wait`).
//
// A worker can die under a blocked caller: an uncaught exception, an out-of-memory abort (Node then
// terminates the thread without running any of its JavaScript), a terminate(). The caller cannot see
// the Worker's 'exit' event while it sits in Atomics.wait (events need its event loop), and the dying
// thread cannot be relied on to say so itself. So each graph thread is started by a small supervisor
// thread whose event loop does nothing else: it sees the graph thread's 'exit' and sets a status
// word in shared memory (ctl[6]) and wakes the caller, who waits in slices and reads that word. A
// caller also gives up on a thread that neither answers nor dies within a deadline scaled to the
// work (callDeadlineMs), and terminates it. Either way the call throws INDEX_UNAVAILABLE and the
// shard is lost for good (`lost`): the store drops the index and reloads it from its snapshot and
// the database, exactly as a restart does. (A native crash, such as a segfault in hnswlib, ends the
// whole process: the next start recovers the same way.)
//
// Before its graph is ready (startShardWorker: building or loading it, which takes minutes at 500k
// faces a shard) a thread may also end or hang. Its end is seen through its supervisor's exit; a
// hang by a watchdog on silence, not on the total time: the thread counts a heartbeat in shared
// memory (ctl[8]) every BEAT_ROWS faces it adds and at each change of phase (ctl[9]), and is taken
// for stuck when the count stands still for longer than its phase allows (startDeadlineMs, scaled
// to that phase's work). Either way the start fails with INDEX_UNAVAILABLE and the thread is
// terminated; the store then fails the call that opens the index, and the next call opens it again.
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
/** Faults a test can inject into a shard worker's next call (ctl[7]; injectShardFaultForTest). */
const FAULT = { terminate: 1, throw: 2, hang: 3, 'exit-after': 4, exit: 5 } as const;
/** Faces a building shard worker adds between two heartbeats (ctl[8]). */
const BEAT_ROWS = 100;
/** What a starting shard worker is doing (ctl[9]), for the watchdog's budget (startDeadlineMs). */
const PHASE = { open: 0, rows: 1, write: 2, ready: 3 } as const;

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
  /** True once the graph's thread has died or stopped answering: every call then throws INDEX_UNAVAILABLE. */
  readonly lost: boolean;
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

  get lost(): boolean {
    return false;
  }
}

// The shard worker is plain JavaScript evaluated in a worker thread, so it runs the same way under
// tsx, vitest and the compiled build (a .ts worker file would need a loader in the worker). It makes
// its graph (mode 'build': the faces with id % shards === shard, from its own read-only connection
// inside one read transaction or from vectors in shared memory, written and fsynced to `path`;
// 'load': read from `path`; 'create': empty), reports it, and with `serve` then answers calls: it
// waits on ctl[0] (the request number), takes a search's probe from shared memory (ctl[2] === 1) or
// any other request from its port, answers in shared memory or on the port, and stores the request
// number in ctl[1]. ctl[6] is set by its supervisor (SUPERVISOR_SOURCE) when the thread ends.
// ctl[7] carries a fault injected by a test (injectShardFaultForTest), read with each request;
// w.fault one injected before the graph is ready. While it makes its graph it counts heartbeats in
// ctl[8] (every ${BEAT_ROWS} faces added, and at each change of phase, ctl[9], with its units in ctl[10]).
// ctl[11] is set once its native addons are loaded: a thread terminated while Node initialises an
// addon aborts the whole process (napi_throw in the addon's Init is a fatal error, seen in CI), so
// stopping a thread first waits for it (terminateWhenSafe).
const SHARD_WORKER_SOURCE = `
const { parentPort, workerData: w, receiveMessageOnPort } = require('node:worker_threads');
const ctl = new Int32Array(w.ctl);
const hnswlib = require(w.hnswModule);
const Database = w.mode === 'build' && w.dbPath ? require(w.sqliteModule) : null;
Atomics.store(ctl, 11, 1);
const fs = require('node:fs');
const crypto = require('node:crypto');
const index = new hnswlib.HierarchicalNSW('ip', w.dimension);
const phase = (p, units) => {
  Atomics.store(ctl, 10, units);
  Atomics.store(ctl, 9, p);
  Atomics.add(ctl, 8, 1);
};
// A fault injected by a test before the graph is ready (injectShardFaultForTest with 'build' or 'load').
function startFault() {
  if (w.fault === 'throw') throw new Error('shard worker: fault injected by a test');
  if (w.fault === 'exit' || w.fault === 'exit-after') process.exit(1);
  if (w.fault === 'terminate') parentPort.postMessage({ terminateMe: true });
  // Stuck until terminated (by the supervisor, or by the watchdog of the thread that started it).
  const stuck = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(stuck, 0, 0);
}
let faultAt = -1;
function added(count) {
  if (count % ${BEAT_ROWS} === 0) {
    Atomics.add(ctl, 8, 1);
    if (count % 50000 === 0) parentPort.postMessage({ progress: count });
  }
  if (count === faultAt) startFault();
}
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
    const db = new Database(w.dbPath, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN');
    const where = 'gallery_id = ? AND deleted = 0 AND id <= ? AND id % ? = ?';
    const args = [w.galleryId, w.maxId, w.shards, w.shard];
    const live = db.prepare('SELECT COUNT(*) AS n FROM faces WHERE ' + where).get(...args).n;
    init(live);
    if (w.fault) faultAt = Math.max(1, Math.floor(live / 2));
    phase(${PHASE.rows}, 0);
    const f = new Float32Array(w.dimension);
    for (const row of db.prepare('SELECT id, embedding FROM faces WHERE ' + where + ' ORDER BY id').iterate(...args)) {
      const b = row.embedding;
      for (let i = 0; i < w.dimension; i++) f[i] = b.readFloatLE(i * 4);
      addRow(f, 0, row.id);
      added(++count);
    }
    db.exec('COMMIT');
    db.close();
  } else {
    const ids = w.ids;
    let live = 0;
    for (let r = 0; r < ids.length; r++) if (ids[r] % w.shards === w.shard) live++;
    init(live);
    if (w.fault) faultAt = Math.max(1, Math.floor(live / 2));
    phase(${PHASE.rows}, 0);
    for (let r = 0; r < ids.length; r++) {
      if (ids[r] % w.shards !== w.shard) continue;
      addRow(w.vectors, r * w.dimension, ids[r]);
      added(++count);
    }
  }
  if (w.fault && count < faultAt) startFault();
  phase(${PHASE.write}, index.getCurrentCount());
  const tmp = w.path + '.tmp';
  part = writeFile(tmp);
  fs.renameSync(tmp, w.path);
} else if (w.mode === 'load') {
  index.readIndexSync(w.path);
  if (w.fault) startFault();
} else {
  init(w.capacity);
}
phase(${PHASE.ready}, 0);
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
    const fault = Atomics.exchange(ctl, 7, 0);
    if (fault === ${FAULT.throw}) throw new Error('shard worker: fault injected by a test');
    if (fault === ${FAULT.exit}) process.exit(1);
    if (fault === ${FAULT.terminate}) parentPort.postMessage({ terminateMe: true });
    // Stuck until terminated (by the supervisor, or by the caller's deadline).
    if (fault !== 0 && fault !== ${FAULT['exit-after']}) for (;;) Atomics.wait(ctl, 7, 0);
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
    if (fault === ${FAULT['exit-after']}) process.exit(1);
    if (stop) break;
  }
  port.close();
}
`;

// Starts the graph thread (SHARD_WORKER_SOURCE) as its own child and relays its messages. Its event
// loop is free while the caller blocks in Atomics.wait, so it sees the child's 'exit' at once, sets
// ctl[6] and wakes the caller. The child's error is relayed as a message ('failed'): the caller
// listens for it before the graph is ready. It ends when its child ends, with the child's exit code;
// terminating it terminates the child.
const SUPERVISOR_SOURCE = `
const { parentPort, workerData, Worker } = require('node:worker_threads');
const ctl = workerData.child.ctl ? new Int32Array(workerData.child.ctl) : null;
const child = new Worker(workerData.source, { eval: true, workerData: workerData.child, transferList: workerData.child.port ? [workerData.child.port] : [] });
child.on('message', (m) => {
  if (m && m.terminateMe) void child.terminate();
  else parentPort.postMessage(m);
});
child.on('error', (e) => parentPort.postMessage({ failed: String((e && e.message) || e) }));
child.on('exit', (code) => {
  if (ctl) {
    Atomics.store(ctl, 6, 1);
    Atomics.notify(ctl, 1);
  }
  process.exitCode = code;
});
`;

export type ShardFault = keyof typeof FAULT;
export type ShardOp = 'add' | 'search' | 'write' | 'markDelete' | 'point' | 'entries';
/** How a shard worker makes its graph before it is ready (ShardWorkerInit's mode, 'create' aside). */
export type ShardStart = 'build' | 'load';
let injected: { op: ShardOp; fault: ShardFault } | null = null;
let injectedStart: { op: ShardStart; fault: ShardFault; watchdogScale: number } | null = null;
let deadlineScale = 1;

/**
 * Test only (no production code or input reaches it): the next call `op` on any worker shard meets
 * `fault`: 'terminate' (its supervisor terminates the thread mid-call, as Node does on an
 * out-of-memory abort), 'throw' (an uncaught exception ends the thread), 'hang' (the thread stops
 * answering, until the caller's deadline), 'exit' (the thread calls process.exit), 'exit-after' (the
 * thread answers, then ends: it is found dead by the next call). With `op` 'build' or 'load', the
 * next shard worker started to build its graph (halfway through its faces) or to load it (once
 * read) meets the fault before it is ready; 'hang' then lasts until the watchdog (startDeadlineMs),
 * whose allowances for that thread alone are multiplied by `o.watchdogScale` (the other threads'
 * stay as they are, so that a slow machine cannot make one of them fail instead).
 */
export function injectShardFaultForTest(op: ShardOp | ShardStart, fault: ShardFault, o: { watchdogScale?: number } = {}): void {
  if (op === 'build' || op === 'load') injectedStart = { op, fault, watchdogScale: o.watchdogScale ?? 1 };
  else injected = { op, fault };
}

/** Test only: multiplies every shard call deadline and start watchdog (callDeadlineMs, startDeadlineMs); 1 restores them. */
export function scaleShardDeadlinesForTest(scale: number): void {
  deadlineScale = scale;
}

/**
 * How long a shard call may go unanswered before its thread is taken for stuck and terminated. A
 * thread that dies is seen at once (its supervisor sets ctl[6]); this bounds only a thread that is
 * alive but never answers. The base (10 s) is 2000x a search at 1M faces (5 ms p50, BENCHMARKS.md);
 * an add allows 50 ms per face (14x the 3.5 ms an insert takes into a 1M graph, 288/s); a snapshot
 * 1 ms per entry (10x writing 512 floats and links at 20 MB/s, plus its checksum); listing the
 * entries 0.05 ms each. A false alarm costs a reload, never data.
 */
export function callDeadlineMs(op: ShardOp | 'close', units: number): number {
  const perUnit = op === 'add' ? 50 : op === 'write' ? 1 : op === 'entries' ? 0.05 : 0;
  return (10_000 + perUnit * units) * deadlineScale;
}

/**
 * How long a shard worker that is making its graph may give no sign of progress (its heartbeat,
 * ctl[8]) before it is taken for stuck and terminated, by what it is doing. Never a bound on the
 * whole build, which takes minutes at 500k faces a shard (BENCHMARKS.md, "Search"):
 * - 'open': starting the thread, opening its source and counting its faces (units: the rows it may
 *   scan), 10 s + 0.05 ms a row, as listing entries;
 * - 'rows': between two heartbeats of a build, every BEAT_ROWS (100) faces added: as an add of
 *   that many (15 s; 100 inserts into a 1M graph take 0.35 s);
 * - 'write': writing, fsyncing and checksumming the built graph (units: its entries), as a snapshot;
 * - 'load': reading a snapshot file (units: its bytes), 10 s + 1 ms per 10 KB (10 MB/s: the file
 *   was just read for its checksum, so mostly from the page cache, where two 46 MB shards load
 *   in 0.1 s, BENCHMARKS.md "Shard start watchdog"; a cold disk reads it 10x faster).
 * A false alarm costs a failed open that the next call retries, never data.
 */
export function startDeadlineMs(phase: 'open' | 'rows' | 'write' | 'load', units: number): number {
  if (phase === 'rows') return callDeadlineMs('add', BEAT_ROWS);
  if (phase === 'write') return callDeadlineMs('write', units);
  if (phase === 'open') return callDeadlineMs('entries', units);
  return (10_000 + units / 10_000) * deadlineScale;
}

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
 * Makes worker.terminate() wait until the graph thread has loaded its native addons (ctl[11]) or
 * ended (ctl[6]), at most ADDON_LOAD_WAIT_MS: terminating a thread inside an addon's initialisation
 * aborts the process. Every caller stops a shard through terminate(), so the rule holds for all.
 */
function terminateWhenSafe(worker: Worker, ctl: Int32Array): void {
  const terminate = worker.terminate.bind(worker);
  worker.terminate = async () => {
    for (let t = 0; Atomics.load(ctl, 11) === 0 && Atomics.load(ctl, 6) === 0 && t < ADDON_LOAD_WAIT_MS; t += 5) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return terminate();
  };
}
const ADDON_LOAD_WAIT_MS = 10_000;

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
  const ctl = new Int32Array(new SharedArrayBuffer(12 * 4));
  const probe = new Float32Array(new SharedArrayBuffer(params.dimension * 4));
  const outIds = new Float64Array(new SharedArrayBuffer(MAX_SHARED_K * 8));
  const outScores = new Float64Array(new SharedArrayBuffer(MAX_SHARED_K * 8));
  const channel = o.serve ? new MessageChannel() : null;
  let fault: ShardFault | null = null;
  let scale = 1;
  if (injectedStart && injectedStart.op === init.mode) {
    fault = injectedStart.fault;
    scale = injectedStart.watchdogScale;
    injectedStart = null;
  }
  const child = {
    hnswModule: require.resolve('hnswlib-node'),
    sqliteModule: require.resolve('better-sqlite3'),
    ...init,
    dimension: params.dimension,
    m: params.m,
    efConstruction: params.efConstruction,
    serve: o.serve,
    ctl: ctl.buffer,
    ...(fault ? { fault } : {}),
    ...(channel ? { port: channel.port2, probe: probe.buffer, outIds: outIds.buffer, outScores: outScores.buffer } : {}),
  };
  // `worker` is the supervisor; the graph thread is its child (see SUPERVISOR_SOURCE).
  const worker = new Worker(SUPERVISOR_SOURCE, {
    eval: true,
    workerData: { source: SHARD_WORKER_SOURCE, child },
    transferList: channel ? [channel.port2] : [],
  });
  terminateWhenSafe(worker, ctl);
  if (o.background) worker.unref();
  // Seen whenever this thread's event loop runs (not while blocked in a call: ctl[6] covers that).
  worker.on('exit', () => {
    Atomics.store(ctl, 6, 1);
  });
  worker.on('error', () => {
    // Only the supervisor's own failure reaches here (its child's are relayed as messages); the
    // exit that follows marks the shard lost.
  });
  // What the thread may spend without a heartbeat, by its phase (ctl[9]).
  const firstPhase: { phase: 'open' | 'load'; units: number } =
    init.mode === 'load' ? { phase: 'load', units: fileBytes(init.path) } : { phase: 'open', units: init.mode === 'build' ? ('ids' in init ? init.ids.length : init.maxId) : 0 };
  const silence = (): { ms: number; doing: string } => {
    const phase = Atomics.load(ctl, 9);
    if (phase === PHASE.rows) return { ms: scale * startDeadlineMs('rows', 0), doing: 'adding faces to its graph' };
    if (phase === PHASE.write) return { ms: scale * startDeadlineMs('write', Atomics.load(ctl, 10)), doing: 'writing its graph' };
    if (firstPhase.phase === 'load') return { ms: scale * startDeadlineMs('load', firstPhase.units), doing: `loading ${firstPhase.units} bytes of index file` };
    return { ms: scale * startDeadlineMs('open', firstPhase.units), doing: 'starting' };
  };
  const ready = new Promise<{ shard: WorkerShard | null; part: WrittenShard | null }>((resolve, reject) => {
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearInterval(watchdog);
      return true;
    };
    // The watchdog reads the heartbeat in shared memory, not the thread's messages: a caller that
    // blocked this thread's event loop for a while finds the beats the thread counted meanwhile.
    let beats = 0;
    let since = performance.now();
    const watchdog = setInterval(() => {
      const now = performance.now();
      const at = Atomics.load(ctl, 8);
      // A thread that is ready, or has ended, says so in a message this thread has yet to read.
      if (Atomics.load(ctl, 9) === PHASE.ready || Atomics.load(ctl, 6) !== 0) return;
      if (at !== beats) {
        beats = at;
        since = now;
        return;
      }
      const { ms, doing } = silence();
      if (now - since < ms || !settle()) return;
      // Terminated, not awaited: a thread stuck in native code ends only when it returns to JavaScript.
      void worker.terminate();
      reject(notReady(`gave no sign of progress for ${((now - since) / 1000).toFixed(1)} s while ${doing} (allowed ${(ms / 1000).toFixed(1)} s) and was stopped`));
    }, Math.min(1000, Math.max(10, (scale * callDeadlineMs('search', 0)) / 20)));
    watchdog.unref();
    worker.on('message', (m: { progress: number } | { failed: string } | { ready: { part: WrittenShard | null; count: number; max: number; dimension: number } }) => {
      if ('progress' in m) {
        o.onProgress?.(m.progress);
        return;
      }
      if ('failed' in m) {
        // An exception in the thread (hnswlib rejecting a file among them): the thread ends by itself.
        if (settle()) reject(new Error(m.failed));
        return;
      }
      if (!settle()) return;
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
      if (settle()) reject(e);
    });
    worker.once('exit', (code) => {
      if (settle()) reject(notReady(`ended (exit code ${code})`));
    });
  });
  return { worker, ready };
}

/** A shard worker that ended or hung before its graph was ready (an exception in it is its own error). */
function notReady(why: string): CosfaceError {
  return new CosfaceError('INDEX_UNAVAILABLE', `an index shard's worker thread ${why} before its graph was ready (tried again on the next use of the index)`);
}

function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0; // the thread fails to read it, and says why
  }
}

/** A graph owned by a worker thread (startShardWorker with serve), called synchronously. */
export class WorkerShard implements Shard {
  private seq = 0;
  private closed = false;
  private pendingSeq = 0;
  /** The call waited for now: what it is (for messages) and when the thread is taken for stuck. */
  private pending = { op: 'search' as ShardOp | 'close', deadline: 0, budgetMs: 0 };
  /** Why the thread is gone, once it is (a lost shard stays lost). */
  private lostWhy: string | null = null;

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

  get lost(): boolean {
    return this.lostWhy !== null || (!this.closed && Atomics.load(this.ctl, 6) !== 0);
  }

  add(ids: readonly number[], vectors: Float32Array): ShardCall<void> {
    const seq = this.request({ op: 'add', ids: [...ids], vectors }, ids.length);
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
    const seq = this.start(1, 'search', 0);
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
    const r = this.reply<{ ids: number[]; live: boolean[] }>(this.request({ op: 'entries' }, this.count));
    return r.ids.map((faceId, i) => ({ faceId, live: r.live[i]! }));
  }

  write(path: string): ShardCall<WrittenShard> {
    const seq = this.request({ op: 'write', path }, this.count);
    return { wait: () => this.reply<WrittenShard>(seq) };
  }

  close(): void {
    if (this.closed) return;
    try {
      if (!this.lost) this.reply(this.request({ op: 'close' }));
    } catch {
      // A thread that already ended has nothing to free.
    }
    this.closed = true;
    void this.worker.terminate();
  }

  private request(m: { op: ShardOp | 'close'; [field: string]: unknown }, units = 0): number {
    this.usable();
    this.port.postMessage(m);
    return this.start(2, m.op, units);
  }

  private start(kind: number, op: ShardOp | 'close', units: number): number {
    this.usable();
    if (this.pendingSeq !== 0) throw new Error('a shard call is still running');
    this.ctl[2] = kind;
    if (injected && injected.op === op) {
      this.ctl[7] = FAULT[injected.fault];
      injected = null;
    }
    const seq = ++this.seq;
    this.pendingSeq = seq;
    const budgetMs = callDeadlineMs(op, units);
    this.pending = { op, deadline: performance.now() + budgetMs, budgetMs };
    Atomics.store(this.ctl, 0, seq);
    Atomics.notify(this.ctl, 0);
    return seq;
  }

  /** Throws unless the shard can take a call. */
  private usable(): void {
    if (this.lostWhy !== null) throw this.lostError(this.lostWhy);
    if (this.closed) throw new CosfaceError('INDEX_ERROR', 'index shard already closed');
    if (Atomics.load(this.ctl, 6) !== 0) this.lose('stopped');
  }

  /**
   * Blocks until the worker answers call `seq`, in slices of at most 100 ms: the supervisor's
   * notify wakes this at once when the thread dies, the slice bounds the one race (the thread dying
   * between the check and the wait), and between slices the deadline is checked.
   */
  private waitFor(seq: number): void {
    for (;;) {
      const at = Atomics.load(this.ctl, 1);
      if (at === seq) break;
      if (Atomics.load(this.ctl, 6) !== 0) this.lose(`stopped during a ${this.pending.op} call`);
      const left = this.pending.deadline - performance.now();
      if (left <= 0) {
        // Alive but not answering: stop it, so it can never answer a later call with this one's reply.
        void this.worker.terminate();
        this.lose(`did not answer a ${this.pending.op} call within ${(this.pending.budgetMs / 1000).toFixed(1)} s`);
      }
      Atomics.wait(this.ctl, 1, at, Math.min(100, Math.max(1, left)));
    }
    this.pendingSeq = 0;
  }

  private lose(why: string): never {
    this.lostWhy = why;
    this.pendingSeq = 0;
    throw this.lostError(why);
  }

  private lostError(why: string): CosfaceError {
    return new CosfaceError('INDEX_UNAVAILABLE', `an index shard's worker thread ${why}; the index is reloaded from its snapshot and the database: try again`);
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
