// cosface dedupe (group the faces of photo folders into people, find near-duplicate photos, write
// an HTML report) and cosface eval near-dup (the near-duplicate acceptance measurement).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { openDatabase } from '../db/open-db.js';
import { clusterThreshold, personId, runDedupe, dedupeJson, walkDedupeRoots, type DedupeProgress, type DedupeResult } from '../dedupe/run-dedupe.js';
import { CosfaceError } from '../errors.js';
import { PhotoLibrary } from '../library/library-store.js';
import { openStore, storeLocation } from '../store/index.js';
import type { Command } from './index.js';
import { ProgressBar } from './progress.js';
import {
  CLI_MODEL_DIM,
  CLI_MODEL_ID,
  intOpt,
  keepAlive,
  openCliPipeline,
  parse,
  pipelineOpts,
  PIPELINE_OPTIONS,
  processIo,
  str,
  thresholdOpts,
  type PipelineSession,
  type StoreCommandOptions,
} from './store-commands.js';

export const DEFAULT_LIBRARY = 'default';

async function dedupe(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('dedupe', args, {
    db: { type: 'string' },
    library: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
    far: { type: 'string' },
    threshold: { type: 'string' },
    quiet: { type: 'boolean' },
    batch: { type: 'string' },
    ...PIPELINE_OPTIONS,
  });
  const pipe = await pipelineOpts('dedupe', values, o);
  const chosen = thresholdOpts('dedupe', values);
  const batchSize = intOpt('dedupe', values.batch, 'batch', 16, 10_000);
  if (positionals.length === 0) throw new CosfaceError('BAD_INPUT', 'dedupe: give at least one folder: cosface dedupe <dir>...');
  const libraryName = str(values.library) ?? DEFAULT_LIBRARY;
  if (libraryName.length === 0 || libraryName.length > 256 || libraryName.trim() !== libraryName) throw new CosfaceError('BAD_INPUT', 'dedupe: --library must be 1 to 256 characters without surrounding spaces');
  const dbPath = storeLocation(str(values.db));
  const quiet = !!values.quiet;
  // Missing folders and folders without photos fail here, before the database is created or changed.
  const walked = await walkDedupeRoots(positionals);

  const store = await openStore(dbPath);
  let threshold: number | undefined;
  let session: PipelineSession | null = null;
  if (!store.dbPath) {
    await store.close();
    throw new CosfaceError('BAD_INPUT', `dedupe: the photo library needs a SQLite file store for now; ${dbPath} is not one`);
  }
  const opened = openDatabase(store.dbPath);
  try {
    threshold = await clusterThreshold(await store.thresholds(CLI_MODEL_ID), chosen, CLI_MODEL_ID);
    const library = PhotoLibrary.open(opened, libraryName, { id: CLI_MODEL_ID, dimension: CLI_MODEL_DIM });
    const bar = new ProgressBar(o.io, walked.photos.length, 'dedupe', { quiet, unit: 'photos' });
    let phase: DedupeProgress['phase'] = 'walk';
    const r: DedupeResult = await runDedupe({
      roots: positionals,
      walked,
      library,
      threshold,
      batchSize,
      facesOf: async (bytes) => {
        // The pipeline compiles three networks (seconds): only when a photo needs embedding.
        session ??= await o.openPipeline(pipe);
        return session.pipeline.facesInPhoto(bytes);
      },
      onProgress: (p) => {
        if (p.phase === 'embed' && p.done > bar.count) bar.tick(p.done - bar.count);
        if (p.phase !== phase) {
          if (phase === 'embed') bar.finish();
          phase = p.phase;
          if (!quiet && (p.phase === 'cluster' || p.phase === 'near-duplicates')) o.io.err(`${p.phase === 'cluster' ? 'clustering faces' : 'finding near-duplicate photos'}...\n`);
        }
      },
    });
    let reportPath: string | null = null;
    if (values.out) {
      const { writeDedupeReport } = await import('../dedupe/html-report.js');
      reportPath = await writeDedupeReport(r, String(values.out));
    }
    if (values.json) {
      o.io.out(`${JSON.stringify({ ...dedupeJson(r), ...(reportPath ? { report: reportPath } : {}) })}\n`);
      return;
    }
    const lines = [
      `${r.photos} photos, ${r.faces} faces: ${r.people.length} people (${r.people.reduce((s, p) => s + p.faces.length, 0)} faces), ${r.unclustered.length} unclustered faces (threshold ${r.threshold.toFixed(3)})`,
      `library "${r.library.name}" in ${dbPath}: ${r.library.embedded} photos embedded now, ${r.library.reused} already there${r.library.moved ? ` (${r.library.moved} moved or renamed)` : ''}${r.library.copies ? `, ${r.library.copies} identical copies of other files` : ''}`,
      `near-duplicate groups: ${r.nearDuplicates.length}${r.nearDuplicates.length ? ` (${r.nearDuplicates.reduce((s, g) => s + g.length, 0)} photos)` : ''}`,
    ];
    for (const p of r.people.slice(0, 10)) lines.push(`  ${p.id}: ${p.faces.length} faces`);
    if (r.people.length > 10) lines.push(`  ... ${r.people.length - 10} more people`);
    for (const g of r.nearDuplicates.slice(0, 10)) lines.push(`  same shot: ${g.join('  ')}`);
    if (r.duplicatePeople.length) lines.push(`possibly one person twice: ${r.duplicatePeople.slice(0, 10).map((d) => `${d.a} ~ ${d.b} (${d.score.toFixed(3)})`).join(', ')}`);
    if (r.skipped.length) lines.push(`skipped: ${r.skipped.length} (${r.skipped.slice(0, 10).map((s) => `${s.photo}: ${s.reason}`).join(', ')}${r.skipped.length > 10 ? ', ...' : ''})`);
    if (reportPath) lines.push(`report: ${reportPath}`);
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await (session as PipelineSession | null)?.close();
    opened.sqlite.close();
    await store.close();
  }
}

async function evalNearDupCommand(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const { values, positionals } = parse('eval near-dup', args, {
    data: { type: 'string' },
    images: { type: 'string' },
    cache: { type: 'string' },
    'no-faces': { type: 'boolean' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    ...PIPELINE_OPTIONS,
  });
  if (positionals.length) throw new CosfaceError('BAD_INPUT', `eval near-dup: unexpected argument '${positionals[0]}'`);
  const pipe = await pipelineOpts('eval near-dup', values, o);
  const data = str(values.data);
  if (!data) throw new CosfaceError('BAD_INPUT', 'eval near-dup: --data <dir> is required (an LFW-style folder: one folder of images per person)');
  const count = intOpt('eval near-dup', values.images, 'images', 500, 100_000);
  const { evalNearDup, VARIANTS } = await import('../eval/near-dup.js');
  const session = values['no-faces'] ? null : await o.openPipeline(pipe);
  let bar: ProgressBar | null = null;
  try {
    const t0 = performance.now();
    const r = await evalNearDup({
      data,
      count,
      pipeline: session?.pipeline ?? null,
      cache: str(values.cache) && resolve(String(values.cache)),
      onProgress: (_d, total) => {
        bar ??= new ProgressBar(o.io, total, 'variants', { quiet: !!values.quiet, unit: 'images' });
        bar.tick();
      },
    });
    const seconds = (performance.now() - t0) / 1000;
    if (values.json) {
      o.io.out(`${JSON.stringify({ data, images: count, variants: VARIANTS, withFaces: values['no-faces'] ? null : r.withFaces, hashOnly: r.hashOnly, seconds })}\n`);
      return;
    }
    const row = (name: string, s: typeof r.hashOnly) =>
      `| ${name} | ${s.images} | ${s.groupsFound} | ${s.recalled}/${s.photos} = ${s.recall.toFixed(4)} | ${s.falsePairs} / ${s.distinctPairs} = ${(100 * s.falsePairRate).toFixed(4)}% | ${VARIANTS.slice(1).map((v) => s.perVariant[v].toFixed(3)).join(' / ')} | ${s.comparisons} |`;
    const lines = [
      `near duplicates of ${count} images of ${data}, ${VARIANTS.length} versions each (${VARIANTS.join(', ')})`,
      `| rule | images | groups found | variant groups recalled | distinct pairs grouped | per variant (${VARIANTS.slice(1).join(' / ')}) | hash comparisons |`,
      '|---|---:|---:|---:|---:|---|---:|',
      ...(values['no-faces'] ? [] : [row(`hash <= ${r.withFaces.options.maxDistance} + faces >= ${r.withFaces.options.faceMatch} (default)`, r.withFaces)]),
      row(`hash only <= ${r.hashOnly.options.maxDistanceWithoutFaces}`, r.hashOnly),
    ];
    o.io.out(`${lines.join('\n')}\n`);
  } finally {
    await session?.close();
  }
}

/** cosface people name <person-id> <name>: a confirmed person, never merged with another automatically. */
async function peopleCommand(args: string[], o: Required<StoreCommandOptions>): Promise<void> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(`people ${sub ?? ''}`.trim(), rest, { db: { type: 'string' }, library: { type: 'string' }, json: { type: 'boolean' } });
  if (sub !== 'name') throw new CosfaceError('BAD_INPUT', `people: unknown subcommand '${sub ?? ''}' (name <person-id> <name>)`);
  if (positionals.length !== 2) throw new CosfaceError('BAD_INPUT', 'people name: give a person id (as dedupe printed it, person-12) and a name');
  const [ref, name] = positionals as [string, string];
  const id = personId(ref);
  if (id === null) throw new CosfaceError('BAD_INPUT', `people name: "${ref}" is not a person id like person-12`);
  if (name.length === 0 || name.length > 256 || name.trim() !== name) throw new CosfaceError('BAD_INPUT', 'people name: the name must be 1 to 256 characters without surrounding spaces');
  const dbPath = storeLocation(str(values.db));
  if (!existsSync(dbPath)) throw new CosfaceError('NOT_FOUND', `no database at ${dbPath} (cosface dedupe creates one; --db chooses another)`);
  const opened = openDatabase(dbPath);
  try {
    const library = PhotoLibrary.open(opened, str(values.library) ?? DEFAULT_LIBRARY, { id: CLI_MODEL_ID, dimension: CLI_MODEL_DIM });
    library.namePerson(id, name);
    if (values.json) o.io.out(`${JSON.stringify({ id: ref, name })}\n`);
    else o.io.out(`${ref} is now "${name}" (never merged with another person automatically)\n`);
  } finally {
    opened.sqlite.close();
  }
}

export function dedupeCommands(opts: StoreCommandOptions = {}): Record<'dedupe' | 'eval-near-dup' | 'people', Command> {
  const o: Required<StoreCommandOptions> = { io: opts.io ?? processIo, openPipeline: opts.openPipeline ?? openCliPipeline };
  return {
    dedupe: keepAlive((a) => dedupe(a, o)),
    'eval-near-dup': keepAlive((a) => evalNearDupCommand(a, o)),
    people: keepAlive((a) => peopleCommand(a, o)),
  };
}
