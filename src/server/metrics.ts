// Prometheus text-format metrics: requests and latencies per route, faces embedded, embedding batch
// sizes, and gallery sizes (read when scraped).

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }
  lines(name: string, labels: string): string[] {
    const sep = labels ? ',' : '';
    const out = this.buckets.map((b, i) => `${name}_bucket{${labels}${sep}le="${b}"} ${this.counts[i]}`);
    out.push(`${name}_bucket{${labels}${sep}le="+Inf"} ${this.count}`);
    const braces = labels ? `{${labels}}` : '';
    out.push(`${name}_sum${braces} ${this.sum}`, `${name}_count${braces} ${this.count}`);
    return out;
  }
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export interface GallerySize {
  name: string;
  identities: number;
  faces: number;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private readonly batchSizes = new Histogram(BATCH_BUCKETS);
  private facesEmbedded = 0;
  private photos = 0;

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const key = `method="${esc(method)}",route="${esc(route)}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const lk = `method="${esc(method)}",route="${esc(route)}"`;
    let h = this.latency.get(lk);
    if (!h) this.latency.set(lk, (h = new Histogram(LATENCY_BUCKETS)));
    h.observe(seconds);
  }

  observeBatch(photos: number, faces: number): void {
    this.batchSizes.observe(photos);
    this.photos += photos;
    this.facesEmbedded += faces;
  }

  render(galleries: GallerySize[]): string {
    const out: string[] = [];
    out.push('# HELP cosface_http_requests_total HTTP requests by method, route and status.', '# TYPE cosface_http_requests_total counter');
    for (const [k, v] of this.requests) out.push(`cosface_http_requests_total{${k}} ${v}`);
    out.push('# HELP cosface_http_request_duration_seconds Request latency.', '# TYPE cosface_http_request_duration_seconds histogram');
    for (const [k, h] of this.latency) out.push(...h.lines('cosface_http_request_duration_seconds', k));
    out.push('# HELP cosface_photos_processed_total Photos run through the face pipeline.', '# TYPE cosface_photos_processed_total counter');
    out.push(`cosface_photos_processed_total ${this.photos}`);
    out.push('# HELP cosface_faces_embedded_total Faces detected and embedded.', '# TYPE cosface_faces_embedded_total counter');
    out.push(`cosface_faces_embedded_total ${this.facesEmbedded}`);
    out.push('# HELP cosface_embed_batch_size Photos per face-pipeline batch.', '# TYPE cosface_embed_batch_size histogram');
    out.push(...this.batchSizes.lines('cosface_embed_batch_size', ''));
    out.push('# HELP cosface_gallery_faces Live faces per gallery.', '# TYPE cosface_gallery_faces gauge');
    for (const g of galleries) out.push(`cosface_gallery_faces{gallery="${esc(g.name)}"} ${g.faces}`);
    out.push('# HELP cosface_gallery_identities Live identities per gallery.', '# TYPE cosface_gallery_identities gauge');
    for (const g of galleries) out.push(`cosface_gallery_identities{gallery="${esc(g.name)}"} ${g.identities}`);
    return out.join('\n') + '\n';
  }
}
