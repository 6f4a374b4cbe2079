// Photos per second through the whole face pipeline (decode, detect, landmarks, align, quality,
// embed) on each backend, on the same photos in the same run; median of several passes.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createBackend } from '../engine.js';
import { CosfaceError } from '../errors.js';
import { createFacePipeline } from '../pipeline/face-pipeline.js';

export interface PipelineBenchRow {
  backend: string;
  description: string;
  photos: number;
  faces: number;
  medianMs: number;
  photosPerSec: number;
  facesPerSec: number;
}

function listPhotos(inputs: string[]): string[] {
  const out: string[] = [];
  for (const p of inputs) {
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p).sort()) if (/\.(jpe?g|png|webp)$/i.test(f)) out.push(path.join(p, f));
    } else out.push(p);
  }
  return out;
}

export async function benchPipeline(opts: { photos: string[]; backends: string[]; runs: number }): Promise<PipelineBenchRow[]> {
  const files = listPhotos(opts.photos);
  if (files.length === 0) throw new CosfaceError('BAD_INPUT', 'bench pipeline: no photos (give files or folders of JPEG/PNG/WebP)');
  const bytes = files.map((f) => readFileSync(f));
  const rows: PipelineBenchRow[] = [];
  for (const name of opts.backends) {
    const backend = await createBackend(name);
    const pipeline = await createFacePipeline({ backend });
    try {
      let faces = 0;
      for (const b of bytes) faces += (await pipeline.facesInPhoto(b)).length; // warm-up pass
      const times: number[] = [];
      for (let r = 0; r < opts.runs; r++) {
        const t = performance.now();
        for (const b of bytes) await pipeline.facesInPhoto(b);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      const medianMs = times[Math.floor(times.length / 2)]!;
      rows.push({ backend: name, description: backend.describe(), photos: files.length, faces, medianMs, photosPerSec: (files.length * 1000) / medianMs, facesPerSec: (faces * 1000) / medianMs });
    } finally {
      pipeline.dispose();
      await backend.dispose();
    }
  }
  return rows;
}

export function formatPipelineBench(rows: PipelineBenchRow[]): string {
  const lines = ['| backend | photos | faces | median pass (ms) | photos/s | faces/s |', '|---|---:|---:|---:|---:|---:|'];
  for (const r of rows) lines.push(`| ${r.description} | ${r.photos} | ${r.faces} | ${r.medianMs.toFixed(0)} | ${r.photosPerSec.toFixed(2)} | ${r.facesPerSec.toFixed(2)} |`);
  return lines.join('\n');
}

/** `cosface bench pipeline <photo|dir>... [--backend webgpu,wasm] [--runs 3] [--json]` */
export async function benchPipelineCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { backend: { type: 'string' }, runs: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true });
  if (positionals.length === 0) throw new CosfaceError('BAD_INPUT', 'bench pipeline: give photos or folders');
  const runs = Number(values.runs ?? 3);
  if (!Number.isInteger(runs) || runs < 1) throw new CosfaceError('BAD_INPUT', `--runs must be a positive integer, got ${values.runs}`);
  const rows = await benchPipeline({ photos: positionals, backends: String(values.backend ?? 'webgpu,wasm').split(','), runs });
  process.stdout.write(values.json ? `${JSON.stringify(rows)}\n` : `${formatPipelineBench(rows)}\n`);
}
