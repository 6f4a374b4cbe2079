// The HTML report of a de-duplication (cosface dedupe --out <dir>): one self-contained folder,
// index.html and thumbs/*.jpg, nothing loaded from the network. A contact sheet per person (face
// thumbnails cut from the photos, the largest person first), the unclustered faces, near-duplicate
// photos side by side with their sizes, and pairs of people that may be one person.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import type { DedupeFace, DedupeResult } from './run-dedupe.js';

export interface ReportOptions {
  /** Faces shown per person (the rest are counted); default 120. */
  facesPerPerson?: number;
  /** Unclustered faces shown; default 300. */
  unclusteredShown?: number;
  /** Face thumbnail size in pixels; default 96. */
  thumb?: number;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function kib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${Math.max(1, Math.round(bytes / 1024))} KiB`;
}

/** Writes the report into `dir` (created if needed); returns the path of index.html. */
export async function writeDedupeReport(r: DedupeResult, dir: string, o: ReportOptions = {}): Promise<string> {
  const perPerson = o.facesPerPerson ?? 120;
  const unclusteredShown = o.unclusteredShown ?? 300;
  const size = o.thumb ?? 96;
  const out = resolve(dir);
  await mkdir(join(out, 'thumbs'), { recursive: true });

  // Which thumbnails to cut, grouped by photo so each photo is read once.
  const wanted = new Map<string, { face?: DedupeFace; file: string }[]>();
  let n = 0;
  const want = (photo: string, face?: DedupeFace): string => {
    const file = `thumbs/${face ? 'f' : 'p'}${++n}.jpg`;
    let l = wanted.get(photo);
    if (!l) wanted.set(photo, (l = []));
    l.push({ face, file });
    return file;
  };
  const faceImg = (f: DedupeFace) => {
    const file = want(f.photo, f);
    const [x, y, w, h] = f.box.map((v) => Math.round(v));
    return `<figure class="face"><img src="${file}" width="${size}" height="${size}" alt="face in ${esc(f.photo)}" title="${esc(f.photo)} [${x}, ${y}, ${w}, ${h}]" loading="lazy"></figure>`;
  };

  const people = r.people.map((p) => {
    const faces = [...p.faces].sort((a, b) => b.quality - a.quality);
    const shown = faces.slice(0, perPerson);
    const photos = new Set(p.faces.map((f) => f.photo)).size;
    return `<section class="person" id="${esc(p.id)}"><h3>${p.name ? `${esc(p.name)} <span class="count">(${esc(p.id)})</span>` : esc(p.id)} <span class="count">${p.faces.length} face${p.faces.length === 1 ? '' : 's'} in ${photos} photo${photos === 1 ? '' : 's'}</span></h3>
<div class="sheet">${shown.map(faceImg).join('')}${faces.length > shown.length ? `<p class="more">and ${faces.length - shown.length} more</p>` : ''}</div></section>`;
  });
  const unclustered = r.unclustered.slice(0, unclusteredShown).map(faceImg).join('');
  const dupGroups = r.nearDuplicateDetails.map((g, gi) => {
    const cells = g.map((p) => {
      const file = want(p.photo);
      return `<figure class="photo"><img src="${file}" alt="${esc(p.photo)}" loading="lazy"><figcaption><b>${p.width} x ${p.height}</b> ${esc(p.format)}, ${kib(p.bytes)}<br><span class="path">${esc(p.photo)}</span></figcaption></figure>`;
    });
    return `<section class="dups"><h3>group ${gi + 1} <span class="count">${g.length} photos</span></h3><div class="row">${cells.join('')}</div></section>`;
  });
  const firstFace = new Map(r.people.map((p) => [p.id, p.faces[0]!]));
  const pairs = r.duplicatePeople.map((d) => {
    const fa = firstFace.get(d.a);
    const fb = firstFace.get(d.b);
    return `<tr><td>${fa ? faceImg(fa) : ''}<a href="#${esc(d.a)}">${esc(d.a)}</a></td><td>${fb ? faceImg(fb) : ''}<a href="#${esc(d.b)}">${esc(d.b)}</a></td><td class="num">${d.score.toFixed(3)}</td></tr>`;
  });

  await cutThumbnails(wanted, out, size);

  const clusteredFaces = r.people.reduce((s, p) => s + p.faces.length, 0);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'">
<title>cosface dedupe: ${r.photos} photos, ${r.people.length} people</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; margin: 0 0 .3em; } h2 { font-size: 1.15em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin: .8em 0 .3em; } .count { color: #666; font-weight: normal; }
.summary { color: #444; } .sheet, .row { display: flex; flex-wrap: wrap; gap: 4px; align-items: flex-start; }
figure { margin: 0; } .face img { display: block; border-radius: 3px; background: #ddd; }
.photo { background: #fff; border: 1px solid #ddd; padding: 4px; max-width: 260px; }
.photo img { display: block; max-width: 250px; max-height: 250px; } .photo figcaption { font-size: 12px; }
.path { color: #666; word-break: break-all; } .more { color: #666; align-self: center; margin: 0 .5em; }
table { border-collapse: collapse; } td { padding: 4px 10px; border-bottom: 1px solid #ddd; vertical-align: middle; }
td .face { display: inline-block; vertical-align: middle; margin-right: 6px; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.skipped li { color: #844; }
</style></head><body>
<h1>cosface dedupe</h1>
<p class="summary">${r.photos} photos, ${r.faces} faces: <b>${r.people.length} people</b> (${clusteredFaces} faces), ${r.unclustered.length} unclustered faces,
${r.nearDuplicates.length} near-duplicate group${r.nearDuplicates.length === 1 ? "" : "s"}, ${r.skipped.length} file${r.skipped.length === 1 ? "" : "s"} skipped. Clustering threshold ${r.threshold.toFixed(3)} (cosine);
library "${esc(r.library.name)}": ${r.library.embedded} photos embedded in this run, ${r.library.reused} already known${r.library.copies ? `, ${r.library.copies} identical copies of other files` : ''}.</p>
<h2 id="people">People <span class="count">${r.people.length}, largest first</span></h2>
${people.join('\n') || '<p>none</p>'}
<h2 id="unclustered">Unclustered faces <span class="count">${r.unclustered.length}${r.unclustered.length > unclusteredShown ? `, ${unclusteredShown} shown` : ''}</span></h2>
<div class="sheet">${unclustered || '<p>none</p>'}</div>
<h2 id="near-duplicates">Near-duplicate photos <span class="count">${r.nearDuplicateDetails.length} group${r.nearDuplicateDetails.length === 1 ? "" : "s"}, largest photo first</span></h2>
${dupGroups.join('\n') || '<p>none</p>'}
<h2 id="duplicate-people">Possibly the same person twice <span class="count">${r.duplicatePeople.length} pairs of people with a face pair at or above the threshold</span></h2>
${pairs.length ? `<table><tr><th>person</th><th>person</th><th>best cosine</th></tr>${pairs.join('\n')}</table>` : '<p>none</p>'}
${r.skipped.length ? `<h2 id="skipped">Skipped files <span class="count">${r.skipped.length}</span></h2><ul class="skipped">${r.skipped.map((s) => `<li>${esc(s.photo)}: ${esc(s.reason)}${s.detail ? ` (${esc(s.detail)})` : ''}</li>`).join('')}</ul>` : ''}
</body></html>
`;
  const index = join(out, 'index.html');
  await writeFile(index, html);
  return index;
}

/** Face thumbnails (the box with a margin, square) and photo thumbnails (250 px), one photo read at a time. */
async function cutThumbnails(wanted: Map<string, { face?: DedupeFace; file: string }[]>, out: string, size: number): Promise<void> {
  for (const [photo, items] of wanted) {
    let bytes: Buffer;
    try {
      bytes = await readFile(photo);
    } catch {
      continue; // moved since: the report shows an empty box
    }
    let upright: { data: Buffer; info: { width: number; height: number; channels: number } };
    try {
      upright = await sharp(bytes).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
    } catch {
      continue;
    }
    const { width, height, channels } = upright.info;
    const raw = { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } };
    for (const it of items) {
      let img = sharp(upright.data, raw);
      if (it.face) {
        const [x, y, w, h] = it.face.box;
        const side = Math.max(w, h) * 1.3;
        const left = Math.max(0, Math.round(x + w / 2 - side / 2));
        const top = Math.max(0, Math.round(y + h / 2 - side / 2));
        const ew = Math.max(1, Math.min(width - left, Math.round(side)));
        const eh = Math.max(1, Math.min(height - top, Math.round(side)));
        if (left >= width || top >= height) continue;
        img = img.extract({ left, top, width: ew, height: eh }).resize(size, size, { fit: 'cover' });
      } else {
        img = img.resize(250, 250, { fit: 'inside', withoutEnlargement: true });
      }
      await img.jpeg({ quality: 82 }).toFile(join(out, it.file));
    }
  }
}
