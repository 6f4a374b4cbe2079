// The server's photo queue (FaceFinder) with concurrent photo requests: photos/s when the pipeline
// takes a batch in one call (facesInPhotos: one network call per step for all of them) beside the
// same pipeline photo by photo, in the same run, median of the runs, the modes alternating.
// Run: npx tsx bench/finder-batch.ts <folder of photos, searched one level down> [photos=160] [concurrency=8] [runs=3]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createBackend } from '../src/engine.js';
import { createFacePipeline } from '../src/pipeline/face-pipeline.js';
import { FaceFinder, type PhotoPipeline } from '../src/server/face-finder.js';

const [dir = 'test/fixtures/photos', nArg = '160', cArg = '8', rArg = '3'] = process.argv.slice(2);
const files: string[] = [];
for (const e of readdirSync(dir).sort()) {
  const p = join(dir, e);
  if (statSync(p).isDirectory()) for (const f of readdirSync(p).sort()) files.push(join(p, f));
  else files.push(p);
}
const photos = files.filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).slice(0, Number(nArg)).map((f) => new Uint8Array(readFileSync(f)));
const concurrency = Number(cArg);
const before = loadavg();
const backend = await createBackend('wasm');
const pipeline = await createFacePipeline({ backend });
await pipeline.warmUp();
const modes: Record<string, PhotoPipeline> = {
  'photo by photo (facesInPhoto)': { facesInPhoto: (p) => pipeline.facesInPhoto(p) },
  'batched (facesInPhotos)': { facesInPhoto: (p) => pipeline.facesInPhoto(p), facesInPhotos: (ps) => pipeline.facesInPhotos(ps) },
};
const times = new Map<string, number[]>();
for (let r = 0; r < Number(rArg); r++) {
  const names = r % 2 === 0 ? Object.keys(modes) : Object.keys(modes).reverse();
  for (const name of names) {
    const finder = new FaceFinder(async () => modes[name]!, { maxBatch: concurrency });
    const t = performance.now();
    let next = 0;
    // `concurrency` clients, each sending its next photo when the last one is answered.
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < photos.length) await finder.find(photos[next++]!).catch(() => undefined);
      }),
    );
    const s = (performance.now() - t) / 1000;
    (times.get(name) ?? times.set(name, []).get(name)!).push(s);
    process.stderr.write(`run ${r + 1} ${name}: ${photos.length} photos in ${s.toFixed(1)} s\n`);
  }
}
const after = loadavg();
console.log(`${backend.describe()}; ${photos.length} photos from ${dir}; ${concurrency} concurrent clients; load average ${before.map((x) => x.toFixed(2)).join(' ')} before, ${after.map((x) => x.toFixed(2)).join(' ')} after\n`);
console.log('| pipeline | runs | median s | photos/s | vs photo by photo |\n|---|---:|---:|---:|---:|');
let base = 0;
for (const [name, ts] of times) {
  const med = [...ts].sort((a, b) => a - b)[Math.floor(ts.length / 2)]!;
  const rate = photos.length / med;
  base ||= rate;
  console.log(`| ${name} | ${ts.length} | ${med.toFixed(1)} | ${rate.toFixed(2)} | ${(rate / base).toFixed(2)}x |`);
}
pipeline.dispose();
await backend.dispose();
