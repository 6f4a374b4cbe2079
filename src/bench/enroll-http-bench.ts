// `cosface bench enroll-http`: embeddings/s through POST /v1/galleries/{g}/enroll (the bulk route,
// embeddings in JSON) of a real server on a fresh SQLite file, one request at a time, with the
// server's time split between the route (HTTP, JSON parse, validation, identity checks), the
// store's own checks, the database write and the index add, per slice of the gallery's growth so
// a stage that slows as the gallery grows shows. The client builds each body (face-like 128-d
// vectors, two faces per identity, all identities new) before its request; that time is shown
// apart and is not the server's.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CosfaceError } from '../errors.js';
import { startServer } from '../server/index.js';
import { enrollBody } from '../server/schemas.js';
import { StageTimes } from '../stage-timer.js';
import { ClusterGenerator, FACE_LIKE_CLUSTERS } from './search-bench.js';

export interface EnrollHttpSlice {
  /** Gallery size at the end of the slice. */
  upTo: number;
  faces: number;
  /** Wall time of the slice's requests (client body building excluded). */
  seconds: number;
  facesPerSec: number;
  /** Server-side stages in ms: route = request - (validate + write + index). */
  ms: { route: number; validate: number; write: number; index: number };
  /** The median request's index add, ms, and the slowest one's (a request that saves the index snapshot stands out). */
  indexPerRequest: { median: number; max: number };
}

export interface EnrollHttpResult {
  faces: number;
  batch: number;
  requests: number;
  seconds: number;
  facesPerSec: number;
  /** Client time building and serialising the bodies (not part of the server's time). */
  clientSeconds: number;
  /** Mean request body size, bytes. */
  bodyBytes: number;
  /** JSON.parse and the route's schema on one body, outside the server, ms (medians of 5). */
  parseMs: number;
  validateSchemaMs: number;
  slices: EnrollHttpSlice[];
  load: { before: number[]; after: number[] };
}

export async function benchEnrollHttp(o: { faces: number; batch: number; slices: number; shardFrom?: number; onSlice?: (line: string) => void }): Promise<EnrollHttpResult> {
  const load = { before: loadavg(), after: [] as number[] };
  const dir = mkdtempSync(join(tmpdir(), 'cosface-bench-enroll-http-'));
  const server = await startServer({
    db: join(dir, 'bench.db'),
    port: 0,
    auth: 'disabled',
    backend: 'wasm',
    log: false,
    ...(o.shardFrom !== undefined ? { shardFrom: o.shardFrom } : {}),
    notice: (l) => {
      if (/rebuild-(started|swapped|failed)/.test(l)) o.onSlice?.(l);
    },
  });
  try {
    const res = await fetch(`${server.url}/v1/galleries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench' }) });
    if (res.status !== 201) throw new Error(`create gallery: HTTP ${res.status} ${await res.text()}`);
    const gen = new ClusterGenerator(FACE_LIKE_CLUSTERS, 17);
    const centre = new Float32Array(128);
    const sample = new Float32Array(128);
    let nextIdentity = 0;
    const body = (n: number): string => {
      const faces: { identity: string; embedding: number[] }[] = [];
      for (let i = 0; i < n; i++) {
        if (i % 2 === 0) {
          gen.centre(centre);
          nextIdentity++;
        }
        gen.sample(centre, sample);
        faces.push({ identity: `p${nextIdentity}`, embedding: Array.from(sample) });
      }
      return JSON.stringify({ faces });
    };

    const timer = new StageTimes();
    server.store.stageTimer = timer;
    const sliceSize = Math.ceil(o.faces / o.slices);
    const slices: EnrollHttpSlice[] = [];
    let done = 0;
    let clientMs = 0;
    let bytes = 0;
    let requests = 0;
    let sample1: string | null = null;
    const storeMs = () => {
      const s = new Map(timer.shares().map((x) => [x.stage, x.ms]));
      return { validate: s.get('validate') ?? 0, write: s.get('write') ?? 0, index: s.get('index') ?? 0 };
    };
    let wallMs = 0;
    while (done < o.faces) {
      const sliceEnd = Math.min(o.faces, done + sliceSize);
      const before = storeMs();
      let reqMs = 0;
      const indexMs: number[] = [];
      while (done < sliceEnd) {
        const idx0 = storeMs().index;
        const n = Math.min(o.batch, sliceEnd - done);
        const t0 = performance.now();
        const b = body(n);
        sample1 ??= b;
        const t1 = performance.now();
        const r = await fetch(`${server.url}/v1/galleries/bench/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b });
        const text = await r.text();
        const t2 = performance.now();
        if (r.status !== 201) throw new Error(`enroll: HTTP ${r.status} ${text.slice(0, 300)}`);
        indexMs.push(storeMs().index - idx0);
        clientMs += t1 - t0;
        reqMs += t2 - t1;
        bytes += b.length;
        requests++;
        done += n;
      }
      const after = storeMs();
      const d = { validate: after.validate - before.validate, write: after.write - before.write, index: after.index - before.index };
      const faces = sliceEnd - (slices.at(-1)?.upTo ?? 0);
      indexMs.sort((a, b) => a - b);
      const slice: EnrollHttpSlice = {
        upTo: sliceEnd,
        faces,
        seconds: reqMs / 1000,
        facesPerSec: (faces * 1000) / reqMs,
        ms: { route: reqMs - d.validate - d.write - d.index, ...d },
        indexPerRequest: { median: indexMs[Math.floor(indexMs.length / 2)]!, max: indexMs.at(-1)! },
      };
      slices.push(slice);
      wallMs += reqMs;
      o.onSlice?.(`${sliceEnd} faces: ${slice.facesPerSec.toFixed(0)} faces/s (route ${slice.ms.route.toFixed(0)} ms, validate ${d.validate.toFixed(0)}, write ${d.write.toFixed(0)}, index ${d.index.toFixed(0)})`);
    }
    server.store.stageTimer = undefined;
    // What the route's body reading does, on one of the bodies, outside the server.
    const med = (f: () => void) => {
      const t: number[] = [];
      for (let i = 0; i < 5; i++) {
        const s = performance.now();
        f();
        t.push(performance.now() - s);
      }
      return t.sort((a, b) => a - b)[2]!;
    };
    const parsed = JSON.parse(sample1!) as unknown;
    const parseMs = med(() => JSON.parse(sample1!));
    const validateSchemaMs = med(() => enrollBody.parse(parsed));
    load.after = loadavg();
    return {
      faces: o.faces,
      batch: o.batch,
      requests,
      seconds: wallMs / 1000,
      facesPerSec: (o.faces * 1000) / wallMs,
      clientSeconds: clientMs / 1000,
      bodyBytes: Math.round(bytes / requests),
      parseMs,
      validateSchemaMs,
      slices,
      load,
    };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatEnrollHttp(r: EnrollHttpResult): string {
  const lines = [
    `${r.faces} faces in ${r.requests} requests of ${r.batch} (${(r.bodyBytes / 1e6).toFixed(2)} MB each): ${r.seconds.toFixed(1)} s of requests, ${r.facesPerSec.toFixed(0)} embeddings/s; client body building ${r.clientSeconds.toFixed(1)} s apart`,
    `load average ${r.load.before.map((x) => x.toFixed(2)).join(' ')} before, ${r.load.after.map((x) => x.toFixed(2)).join(' ')} after`,
    `one body outside the server: JSON.parse ${r.parseMs.toFixed(1)} ms, the route's schema ${r.validateSchemaMs.toFixed(1)} ms`,
    '',
    '| gallery size | faces/s | route (HTTP, parse, schema, checks) | store checks | database write | index add | index add per request: median, slowest ms |',
    '|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const pct = (ms: number, s: EnrollHttpSlice) => `${(ms / 1000).toFixed(2)} s (${((100 * ms) / (s.seconds * 1000)).toFixed(0)}%)`;
  for (const s of r.slices) lines.push(`| ${s.upTo} | ${s.facesPerSec.toFixed(0)} | ${pct(s.ms.route, s)} | ${pct(s.ms.validate, s)} | ${pct(s.ms.write, s)} | ${pct(s.ms.index, s)} | ${s.indexPerRequest.median.toFixed(0)}, ${s.indexPerRequest.max.toFixed(0)} |`);
  return lines.join('\n');
}

/** `cosface bench enroll-http [--faces 100000] [--batch 1000] [--slices 5] [--json]` */
export async function benchEnrollHttpCommand(args: string[]): Promise<void> {
  let values;
  try {
    values = parseArgs({ args, options: { faces: { type: 'string' }, batch: { type: 'string' }, slices: { type: 'string' }, 'shard-from': { type: 'string' }, json: { type: 'boolean' } } }).values;
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `bench enroll-http: ${(e as Error).message}`);
  }
  const int = (v: string | undefined, name: string, dflt: number, max: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new CosfaceError('BAD_INPUT', `bench enroll-http: --${name} must be an integer from 1 to ${max}, got '${v}'`);
    return n;
  };
  const r = await benchEnrollHttp({
    faces: int(values.faces, 'faces', 100_000, 10_000_000),
    batch: int(values.batch, 'batch', 1000, 1000),
    slices: int(values.slices, 'slices', 5, 100),
    ...(values['shard-from'] !== undefined ? { shardFrom: int(values['shard-from'], 'shard-from', 1, 100_000_000) } : {}),
    onSlice: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatEnrollHttp(r)}\n`);
}
