// `cosface bench enroll`: photos/s of `cosface enroll` (the same loop, enrollPhotos) photo by photo
// and pipelined in one run, each into a fresh SQLite gallery, with the time split between the
// stages (read, decode, detect, landmarks, align, embed, database write, index add), medians of
// several runs, and the load average before and after.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_ENROLL_BATCH, enrollPhotos } from '../commands/enroll-photos.js';
import { CLI_MODEL_DIM, CLI_MODEL_ID, listEnrollPhotos, openCliPipeline } from '../commands/store-commands.js';
import { parseBackendChoice } from '../engine.js';
import { CosfaceError } from '../errors.js';
import { StageTimes } from '../stage-timer.js';
import { openStore } from '../store/index.js';

export interface EnrollBenchMode {
  /** 'sequential' or 'pipelined, batch B'. */
  mode: string;
  pipelined: boolean;
  batch: number;
  runs: number;
  photos: number;
  faces: number;
  /** Median over the runs. */
  seconds: number;
  photosPerSec: number;
  facesPerSec: number;
  /** Stage times of the median run (ms, share of its wall time). */
  stages: { stage: string; ms: number; share: number }[];
}

export interface EnrollBenchResult {
  backend: string;
  photos: number;
  identities: number;
  modes: EnrollBenchMode[];
  load: { before: number[]; after: number[] };
}

export async function benchEnroll(o: { dir: string; limit?: number; backend: string; workers?: number; batches: number[]; sequential: boolean; runs: number; onRun?: (line: string) => void }): Promise<EnrollBenchResult> {
  const listed = await listEnrollPhotos(o.dir);
  const photos = o.limit ? listed.photos.slice(0, o.limit) : listed.photos;
  if (photos.length === 0) throw new CosfaceError('BAD_INPUT', `bench enroll: no photos in identity folders under ${o.dir}`);
  const load = { before: loadavg(), after: [] as number[] };
  const session = await openCliPipeline({ backend: parseBackendChoice(o.backend), ...(o.workers ? { workers: o.workers } : {}), note: (s) => o.onRun?.(s) });
  const tmp = mkdtempSync(join(tmpdir(), 'cosface-bench-enroll-'));
  try {
    await session.pipeline.warmUp();
    const modes = [...(o.sequential ? [{ pipelined: false, batch: 1 }] : []), ...o.batches.map((b) => ({ pipelined: true, batch: b }))];
    // A pass over the first photos at the largest batch, not counted: the workers' memory grows to
    // the largest batch once, outside the measured runs.
    const warm = await openStore(join(tmp, 'warm.db'));
    try {
      await warm.createGallery('warm', { modelId: CLI_MODEL_ID, dimension: CLI_MODEL_DIM });
      const b = Math.max(1, ...o.batches);
      await enrollPhotos({ store: warm, gallery: 'warm', photos: photos.slice(0, 2 * b), pipeline: async () => session.pipeline, pipelined: true, batch: b });
    } finally {
      await warm.close();
    }
    const runs = new Map<number, { seconds: number; faces: number; stages: EnrollBenchMode['stages'] }[]>();
    for (let r = 0; r < o.runs; r++) {
      // Alternate the order of the modes from run to run, so neither always goes first.
      const order = r % 2 === 0 ? modes.map((_, i) => i) : modes.map((_, i) => modes.length - 1 - i);
      for (const i of order) {
        const m = modes[i]!;
        const db = join(tmp, `run${r}-${i}.db`);
        const store = await openStore(db);
        try {
          await store.createGallery('bench', { modelId: CLI_MODEL_ID, dimension: CLI_MODEL_DIM });
          const timer = new StageTimes();
          const out = await enrollPhotos({ store, gallery: 'bench', photos, pipeline: async () => session.pipeline, pipelined: m.pipelined, batch: m.batch, timer });
          const ms = timer.elapsedMs();
          const stages = timer.shares(ms).filter((s) => s.stage !== 'open').map(({ stage, ms: t, share }) => ({ stage, ms: t, share }));
          (runs.get(i) ?? runs.set(i, []).get(i)!).push({ seconds: ms / 1000, faces: out.facesFound, stages });
          o.onRun?.(`run ${r + 1}/${o.runs} ${modeName(m)}: ${photos.length} photos in ${(ms / 1000).toFixed(1)} s (${((photos.length * 1000) / ms).toFixed(2)} photos/s), ${out.added} enrolled`);
        } finally {
          await store.close();
          rmSync(db, { force: true });
          rmSync(`${db}-wal`, { force: true });
          rmSync(`${db}-shm`, { force: true });
        }
      }
    }
    load.after = loadavg();
    return {
      backend: session.describe,
      photos: photos.length,
      identities: new Set(photos.map((p) => p.identity)).size,
      load,
      modes: modes.map((m, i) => {
        const rs = [...runs.get(i)!].sort((a, b) => a.seconds - b.seconds);
        const med = rs[Math.floor(rs.length / 2)]!;
        return {
          mode: modeName(m),
          pipelined: m.pipelined,
          batch: m.batch,
          runs: rs.length,
          photos: photos.length,
          faces: med.faces,
          seconds: med.seconds,
          photosPerSec: photos.length / med.seconds,
          facesPerSec: med.faces / med.seconds,
          stages: med.stages,
        };
      }),
    };
  } finally {
    await session.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

const modeName = (m: { pipelined: boolean; batch: number }) => (m.pipelined ? `pipelined, ${m.batch} photos per call` : 'photo by photo');

export function formatEnrollBench(r: EnrollBenchResult): string {
  const base = r.modes[0]!;
  const lines = [
    `${r.backend}; ${r.photos} photos of ${r.identities} identities; load average ${r.load.before.map((x) => x.toFixed(2)).join(' ')} before, ${r.load.after.map((x) => x.toFixed(2)).join(' ')} after`,
    '',
    `| schedule | runs | photos | faces | median s | photos/s | faces/s | vs ${base.mode} |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const m of r.modes) {
    lines.push(`| ${m.mode} | ${m.runs} | ${m.photos} | ${m.faces} | ${m.seconds.toFixed(1)} | ${m.photosPerSec.toFixed(2)} | ${m.facesPerSec.toFixed(2)} | ${(m.photosPerSec / base.photosPerSec).toFixed(2)}x |`);
  }
  const stages = [...new Set(r.modes.flatMap((m) => m.stages.map((s) => s.stage)))];
  lines.push('', `| stage (wall s, share of the run) | ${r.modes.map((m) => m.mode).join(' | ')} |`, `|---|${r.modes.map(() => '---:').join('|')}|`);
  for (const st of stages) {
    const cells = r.modes.map((m) => {
      const s = m.stages.find((x) => x.stage === st);
      return s ? `${(s.ms / 1000).toFixed(2)} (${(100 * s.share).toFixed(1)}%)` : '';
    });
    lines.push(`| ${st} | ${cells.join(' | ')} |`);
  }
  lines.push('', 'Stage times are wall time with the stage running (overlapping calls counted once); pipelined, stages overlap and their shares add up to more than 100%.');
  return lines.join('\n');
}

/** `cosface bench enroll --photos <dir> [--limit N] [--backend wasm] [--workers N] [--pipeline on,off] [--batch 4] [--runs 1] [--json]` */
export async function benchEnrollCommand(args: string[]): Promise<void> {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        photos: { type: 'string' },
        limit: { type: 'string' },
        backend: { type: 'string' },
        workers: { type: 'string' },
        pipeline: { type: 'string' },
        batch: { type: 'string' },
        runs: { type: 'string' },
        json: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    throw new CosfaceError('BAD_INPUT', `bench enroll: ${(e as Error).message}`);
  }
  if (!values.photos) throw new CosfaceError('BAD_INPUT', 'bench enroll: --photos <dir> is required (one folder per identity, as for cosface enroll)');
  const int = (v: string | undefined, name: string, dflt: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new CosfaceError('BAD_INPUT', `bench enroll: --${name} must be a positive integer, got '${v}'`);
    return n;
  };
  const pipeline = (values.pipeline ?? 'off,on').split(',');
  if (pipeline.some((p) => p !== 'on' && p !== 'off')) throw new CosfaceError('BAD_INPUT', `bench enroll: --pipeline takes on, off or both (off,on), got '${values.pipeline}'`);
  const batches = (values.batch ?? String(DEFAULT_ENROLL_BATCH)).split(',').map((b) => int(b, 'batch', DEFAULT_ENROLL_BATCH));
  const r = await benchEnroll({
    dir: values.photos,
    ...(values.limit ? { limit: int(values.limit, 'limit', 0) } : {}),
    backend: values.backend ?? 'wasm',
    ...(values.workers ? { workers: int(values.workers, 'workers', 0) } : {}),
    sequential: pipeline.includes('off'),
    batches: pipeline.includes('on') ? batches : [],
    runs: int(values.runs, 'runs', 1),
    onRun: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatEnrollBench(r)}\n`);
}
