// The page at /app: photos picked or dropped are decoded, and their faces found, aligned and embedded,
// in this browser (the library in ../index.ts, loaded at run time as ./cosface.js); each face is
// searched in a gallery on the server by its embedding alone, and can be enrolled by embedding.
// Machine-readable state: body[data-state] (loading, idle, working, ready, error) and
// [data-face-count]; each face element has data-face-index, data-identity and data-score.
import { decodeBitmap, isCosfaceError, loadFacePipeline, parseBrowserBackend, rgbPixels, type BrowserBackendChoice, type BrowserFacePipeline, type Face } from '../index.js';

interface Candidate {
  identity: string;
  displayName: string | null;
  score: number;
  faceId: number;
}
interface IdentifyResult {
  candidates: Candidate[];
  match: Candidate | null;
  decision: 'match' | 'unknown' | 'no-threshold';
  threshold: number | null;
}
interface PhotoTimings {
  decode: number;
  faces: number;
  search: number;
  total: number;
}
interface FaceResult extends Face {
  index: number;
  identity: string;
  result: IdentifyResult | null;
}
interface PhotoResult {
  name: string;
  width: number;
  height: number;
  faces: FaceResult[];
  timings: PhotoTimings;
}

const KEY_STORE = 'cosface.apiKey';
const GALLERY_STORE = 'cosface.gallery';
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const body = document.body;
const params = new URLSearchParams(location.search);

const state = {
  pipeline: null as BrowserFacePipeline | null,
  key: localStorage.getItem(KEY_STORE) ?? '',
  photos: [] as PhotoResult[],
  queue: [] as File[],
  busy: false,
  faceCount: 0,
};

/** What scripts and tests read: results (with embeddings), load timings and the backend. */
const exposed = {
  results: state.photos,
  backend: '',
  load: null as BrowserFacePipeline['timings'] | null,
  assets: null as BrowserFacePipeline['assets'] | null,
};
(window as unknown as { cosfaceApp: typeof exposed }).cosfaceApp = exposed;

function showError(message: string | null): void {
  const el = $<HTMLParagraphElement>('error');
  el.hidden = message === null;
  el.textContent = message ?? '';
}

const ms = (v: number) => v.toFixed(0);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function setTiming(row: string, value: number | null, what: string): void {
  const tr = $<HTMLTableRowElement>(row);
  tr.cells[1]!.textContent = value === null ? '–' : ms(value);
  tr.cells[2]!.textContent = what;
  if (value !== null) tr.dataset.ms = value.toFixed(1);
}

function photoWhat(t: PhotoTimings): string {
  return `decode ${ms(t.decode)}, faces ${ms(t.faces)}, search ${ms(t.search)}`;
}

function showTimings(): void {
  const p = state.pipeline;
  if (p) {
    const t = p.timings;
    const a = p.assets;
    setTiming('t-load', t.total, `fetch ${ms(t.fetch)} (${a.fetched} fetched, ${a.cached} from cache, ${(a.bytes / 2 ** 20).toFixed(1)} MiB), prepare ${ms(t.prepare)}, compile ${ms(t.compile)}, warm-up ${ms(t.warmUp)}`);
  }
  const [first, ...later] = state.photos;
  if (first) setTiming('t-first', first.timings.total, photoWhat(first.timings));
  if (later.length > 0) {
    const m = (k: keyof PhotoTimings) => median(later.map((p) => p.timings[k]));
    setTiming('t-later', m('total'), `${later.length} photo${later.length === 1 ? '' : 's'}: ${photoWhat({ decode: m('decode'), faces: m('faces'), search: m('search'), total: m('total') })}`);
  }
}

// ---- the server: key, galleries, identify, enroll ----

async function api<T>(method: string, path: string, payload?: unknown): Promise<T> {
  const headers: Record<string, string> = state.key ? { authorization: `Bearer ${state.key}` } : {};
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(path, { method, headers, ...(payload !== undefined ? { body: JSON.stringify(payload) } : {}) });
  const json = (await r.json().catch(() => null)) as (T & { error?: { code: string; message: string } }) | null;
  if (!r.ok) throw new Error(json?.error ? `${json.error.code}: ${json.error.message}` : `HTTP ${r.status}`);
  return json as T;
}

async function useKey(key: string): Promise<void> {
  state.key = key;
  const status = $<HTMLParagraphElement>('auth-status');
  const select = $<HTMLSelectElement>('gallery');
  try {
    const info = await api<{ auth: string; galleries: { name: string; identities: number; faces: number }[] }>('GET', '/v1/info');
    if (key) localStorage.setItem(KEY_STORE, key);
    select.innerHTML = '';
    for (const g of info.galleries) {
      const o = document.createElement('option');
      o.value = g.name;
      o.textContent = `${g.name} (${g.identities} identities, ${g.faces} faces)`;
      select.append(o);
    }
    const wanted = params.get('gallery') ?? localStorage.getItem(GALLERY_STORE);
    if (wanted && info.galleries.some((g) => g.name === wanted)) select.value = wanted;
    const who = key ? 'Key accepted' : 'No key needed (this server has authentication off)';
    status.textContent = info.galleries.length ? `${who}: ${info.galleries.length} gallery${info.galleries.length === 1 ? '' : 'ies'} visible.` : `${who}, but no gallery is visible.`;
  } catch (e) {
    status.textContent = key ? `Key refused: ${(e as Error).message}` : 'No key: faces are found and embedded, but not searched until you enter one.';
    select.innerHTML = `<option value="">(${key ? 'no gallery' : 'enter a key'})</option>`;
  }
}

const gallery = () => $<HTMLSelectElement>('gallery').value;
const threshold = () => Number($<HTMLInputElement>('threshold').value);

/** Identifies faces by embedding only: the request carries the 128 numbers per face, never pixels. */
async function identify(faces: FaceResult[]): Promise<void> {
  if (!gallery() || faces.length === 0) return;
  const { results } = await api<{ results: IdentifyResult[] }>('POST', `/v1/galleries/${encodeURIComponent(gallery())}/identify/batch`, {
    probes: faces.map((f) => f.embedding),
    k: 5,
    threshold: threshold(),
  });
  faces.forEach((f, i) => {
    f.result = results[i] ?? null;
    f.identity = f.result?.decision === 'match' && f.result.match ? f.result.match.identity : '';
  });
}

async function enroll(face: FaceResult, identity: string, li: HTMLLIElement, photo: PhotoResult, canvas: HTMLCanvasElement, bitmap: ImageBitmap): Promise<void> {
  await api('POST', `/v1/galleries/${encodeURIComponent(gallery())}/enroll`, { faces: [{ identity, embedding: face.embedding }], createIdentities: true });
  await identify([face]);
  renderFace(li, face);
  drawPhoto(canvas, bitmap, photo);
}

// ---- drawing ----

const COLORS = ['#1a73e8', '#e8710a', '#188038', '#d01884', '#9334e6', '#c5221f', '#007b83', '#b06000'];

function drawPhoto(canvas: HTMLCanvasElement, bitmap: ImageBitmap, photo: PhotoResult): void {
  const scale = Math.min(1, 960 / bitmap.width);
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const ctx = canvas.getContext('2d')!;
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const line = Math.max(2, Math.max(canvas.width, canvas.height) / 300);
  ctx.font = `600 ${Math.max(12, Math.round(Math.max(canvas.width, canvas.height) / 40))}px system-ui, sans-serif`;
  for (const f of photo.faces) {
    const color = COLORS[f.index % COLORS.length]!;
    const [x, y, w, h] = f.box.map((v) => v * scale) as [number, number, number, number];
    ctx.strokeStyle = color;
    ctx.lineWidth = line;
    ctx.strokeRect(x, y, w, h);
    ctx.fillStyle = color;
    for (const [px, py] of f.landmarks) {
      ctx.beginPath();
      ctx.arc(px * scale, py * scale, line * 1.2, 0, Math.PI * 2);
      ctx.fill();
    }
    const label = `#${f.index} q ${f.quality.toFixed(2)}${f.identity ? ` ${f.identity}` : ''}`;
    const tw = ctx.measureText(label).width;
    const th = parseInt(ctx.font.split(' ')[1]!, 10);
    const ly = y > th + 6 ? y - th - 6 : y + h;
    const lx = Math.max(0, Math.min(x - line / 2, canvas.width - tw - 8)); // inside the photo
    ctx.fillRect(lx, ly, tw + 8, th + 6);
    ctx.fillStyle = '#fff';
    ctx.fillText(label, lx + 4, ly + th);
  }
}

function renderFace(li: HTMLLIElement, f: FaceResult): void {
  li.dataset.faceIndex = String(f.index);
  li.dataset.identity = f.identity;
  li.dataset.score = f.result?.candidates[0] ? f.result.candidates[0].score.toFixed(4) : '';
  li.dataset.quality = f.quality.toFixed(3);
  li.dataset.detectorScore = f.score.toFixed(3);
  const decision = li.querySelector('.decision')!;
  const list = li.querySelector('.candidates')!;
  list.innerHTML = '';
  const r = f.result;
  if (!r) decision.textContent = gallery() ? 'not searched' : 'not searched (no key or gallery)';
  else if (r.decision === 'match' && r.match) decision.textContent = `match: ${r.match.displayName ?? r.match.identity} (${r.match.score.toFixed(3)})`;
  else if (r.decision === 'unknown') decision.textContent = `unknown${r.candidates[0] ? ` (best ${r.candidates[0].score.toFixed(3)} < ${r.threshold?.toFixed(2)})` : ' (empty gallery)'}`;
  else decision.textContent = 'no threshold';
  for (const c of r?.candidates ?? []) {
    const item = document.createElement('li');
    item.textContent = `${c.displayName ?? c.identity} ${c.score.toFixed(3)}`;
    list.append(item);
  }
}

function faceElement(f: FaceResult, bitmap: ImageBitmap, onEnroll: (identity: string) => Promise<void>): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'face';
  const thumb = document.createElement('canvas');
  thumb.width = thumb.height = 144;
  const [x, y, w, h] = f.box;
  const side = Math.max(w, h) * 1.2;
  thumb.getContext('2d')!.drawImage(bitmap, x + w / 2 - side / 2, y + h / 2 - side / 2, side, side, 0, 0, 144, 144);
  const head = document.createElement('div');
  head.textContent = `#${f.index} · quality ${f.quality.toFixed(2)} · detector ${f.score.toFixed(2)}${f.alignment === 'detector' ? ' · 4-point alignment' : ''}`;
  const decision = document.createElement('div');
  decision.className = 'decision';
  const list = document.createElement('ol');
  list.className = 'candidates';
  const form = document.createElement('form');
  const input = document.createElement('input');
  input.placeholder = 'identity id';
  input.required = true;
  input.setAttribute('aria-label', `identity to enroll face ${f.index} into`);
  const button = document.createElement('button');
  button.textContent = 'Enroll';
  form.append(input, button);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!gallery()) return showError('Enter a key and pick a gallery to enroll.');
    button.disabled = true;
    onEnroll(input.value.trim())
      .then(() => showError(null))
      .catch((e: Error) => showError(`Enroll failed: ${e.message}`))
      .finally(() => (button.disabled = false));
  });
  li.append(thumb, head, decision, list, form);
  renderFace(li, f);
  return li;
}

// ---- photos ----

async function processPhoto(file: File): Promise<void> {
  const pipeline = state.pipeline!;
  const section = document.createElement('section');
  section.className = 'photo';
  const title = document.createElement('h2');
  title.textContent = file.name;
  section.append(title);
  $('photos').append(section);
  const t0 = performance.now();
  let bitmap: ImageBitmap;
  let faces: Face[];
  let t1: number;
  try {
    bitmap = await decodeBitmap(file, file.name);
    const img = rgbPixels(bitmap);
    t1 = performance.now();
    faces = await pipeline.facesInImage(img);
  } catch (e) {
    const p = document.createElement('p');
    p.className = 'photo-error';
    p.textContent = isCosfaceError(e) ? `${e.code}: ${e.message}` : (e as Error).message;
    section.append(p);
    return;
  }
  const t2 = performance.now();
  const photo: PhotoResult = {
    name: file.name,
    width: bitmap.width,
    height: bitmap.height,
    faces: faces.map((f) => ({ ...f, index: state.faceCount++, identity: '', result: null })),
    timings: { decode: t1 - t0, faces: t2 - t1, search: 0, total: 0 },
  };
  let searchError: string | null = null;
  try {
    await identify(photo.faces);
  } catch (e) {
    searchError = `Search failed: ${(e as Error).message}`;
  }
  const t3 = performance.now();
  photo.timings.search = t3 - t2;
  photo.timings.total = t3 - t0;
  state.photos.push(photo);

  const small = document.createElement('small');
  small.textContent = `${bitmap.width}x${bitmap.height}, ${photo.faces.length} face${photo.faces.length === 1 ? '' : 's'}, ${ms(photo.timings.total)} ms (${photoWhat(photo.timings)})`;
  title.append(small);
  const canvas = document.createElement('canvas');
  canvas.className = 'view';
  section.append(canvas);
  drawPhoto(canvas, bitmap, photo);
  const list = document.createElement('ul');
  list.className = 'faces';
  for (const f of photo.faces) {
    const li: HTMLLIElement = faceElement(f, bitmap, (identity) => enroll(f, identity, li, photo, canvas, bitmap));
    list.append(li);
  }
  section.append(list);
  if (searchError) showError(searchError);
  body.dataset.faceCount = String(state.faceCount);
  showTimings();
}

async function drain(): Promise<void> {
  if (state.busy || !state.pipeline) return;
  state.busy = true;
  body.dataset.state = 'working';
  while (state.queue.length > 0) await processPhoto(state.queue.shift()!);
  state.busy = false;
  body.dataset.faceCount = String(state.faceCount);
  body.dataset.state = 'ready';
}

function addPhotos(files: Iterable<File>): void {
  for (const f of files) state.queue.push(f);
  if (state.queue.length > 0) body.dataset.state = state.pipeline ? 'working' : body.dataset.state!;
  void drain();
}

// ---- start ----

function wire(choice: BrowserBackendChoice): void {
  const keyInput = $<HTMLInputElement>('key');
  keyInput.value = state.key;
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void useKey(keyInput.value.trim());
  });
  $('forget-key').addEventListener('click', () => {
    localStorage.removeItem(KEY_STORE);
    keyInput.value = '';
    void useKey('');
  });
  $<HTMLSelectElement>('gallery').addEventListener('change', () => localStorage.setItem(GALLERY_STORE, gallery()));
  const t = params.get('threshold');
  if (t !== null) $<HTMLInputElement>('threshold').value = t;
  const backendSelect = $<HTMLSelectElement>('backend');
  backendSelect.value = choice;
  backendSelect.addEventListener('change', () => {
    params.set('backend', backendSelect.value);
    location.search = params.toString();
  });
  $<HTMLInputElement>('files').addEventListener('change', (ev) => {
    const input = ev.target as HTMLInputElement;
    addPhotos(Array.from(input.files ?? []));
    input.value = '';
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    addPhotos(Array.from(ev.dataTransfer?.files ?? []).filter((f) => f.type.startsWith('image/')));
  });
}

async function start(): Promise<void> {
  let choice: BrowserBackendChoice;
  try {
    choice = parseBrowserBackend(params.get('backend'));
  } catch (e) {
    showError((e as Error).message);
    choice = 'auto';
  }
  wire(choice);
  void useKey(state.key);
  try {
    const pipeline = await loadFacePipeline({ backend: choice });
    state.pipeline = pipeline;
    exposed.backend = pipeline.describe();
    exposed.load = pipeline.timings;
    exposed.assets = pipeline.assets;
    body.dataset.backend = pipeline.backend.name;
    $('backend-status').textContent = `Backend: ${pipeline.describe()}`;
    showTimings();
  } catch (e) {
    body.dataset.state = 'error';
    $('backend-status').textContent = 'The engine could not start.';
    showError(isCosfaceError(e) ? `${e.code}: ${e.message}` : String(e));
    return;
  }
  if (state.queue.length > 0) void drain();
  else body.dataset.state = 'idle';
}

void start();
