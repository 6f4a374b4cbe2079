// What every edge entry (bun.ts, deno.ts, workerd.ts) does once it has opened its database and
// compiled the WASM modules: the same app as `cosface serve` (createApp), the same admin-key rule
// (COSFACE_ADMIN_KEY installed, else one created and shown once), the same PORT handling, and a
// photo pipeline when the runtime can hold the models; where it cannot, photos are still decoded
// (so a bad photo or a decompression bomb gets BAD_IMAGE / IMAGE_TOO_LARGE as on Node) and a good
// one is answered with PHOTOS_UNAVAILABLE. Runtime-neutral.
import { CosfaceError } from '../errors.js';
import type { WasmImageDecoder } from '../pipeline/decode-wasm.js';
import { ensureAdminKey, ApiKeys } from '../server/api-keys.js';
import { createApp, type CosfaceApp, type CreateAppOptions } from '../server/app.js';
import type { EngineInfo } from '../server/deps.js';
import type { PhotoPipeline } from '../server/face-finder.js';
import type { Store } from '../store/store.js';

export const DEFAULT_PORT = 8080;
export const DEFAULT_HOST = '127.0.0.1';

export interface EdgeServerOptions {
  store: Store;
  /** COSFACE_ADMIN_KEY. */
  adminKey?: string | undefined;
  auth?: 'keys' | 'disabled';
  /** The face pipeline, or null where the runtime cannot hold the models (then `photos` says why). */
  pipeline: PhotoPipeline | (() => Promise<PhotoPipeline>) | null;
  /** Without a pipeline: the decoder that still checks photos, and the reason given for good ones. */
  photos?: { decoder: WasmImageDecoder; maxPixels?: number; unavailable: string };
  engine: EngineInfo;
  notice: (line: string) => void;
  log?: CreateAppOptions['log'];
  limits?: CreateAppOptions['limits'];
}

export interface EdgeServer {
  app: CosfaceApp;
  /** The admin key created on this start (null when one existed or came from the environment). */
  createdAdminKey: string | null;
}

/** PORT as `cosface serve --port` takes it: an integer in [0, 65535]; default 8080. */
export function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_PORT;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CosfaceError('BAD_INPUT', `PORT must be an integer in [0, 65535], got '${value}'`);
  return port;
}

export async function createEdgeServer(o: EdgeServerOptions): Promise<EdgeServer> {
  const auth = o.auth ?? 'keys';
  let createdAdminKey: string | null = null;
  if (auth === 'keys') {
    createdAdminKey = await ensureAdminKey(ApiKeys.of(o.store), o.adminKey);
    if (createdAdminKey) o.notice(`Admin API key (shown once, only its hash is stored; set COSFACE_ADMIN_KEY to choose your own):\n  ${createdAdminKey}`);
  }
  const pipeline = o.pipeline ?? photoChecker(o.photos);
  const app = createApp({
    store: o.store,
    pipeline,
    auth,
    engine: o.engine,
    ...(o.log !== undefined ? { log: o.log } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
  });
  return { app, createdAdminKey };
}

/** A pipeline that decodes (so bad photos fail as on Node) and then refuses with PHOTOS_UNAVAILABLE. */
function photoChecker(photos: EdgeServerOptions['photos']): PhotoPipeline {
  const unavailable = photos?.unavailable ?? 'this deployment serves embedding routes only';
  return {
    async facesInPhoto(photo: Uint8Array) {
      if (photos) await photos.decoder.decode(photo, photos.maxPixels !== undefined ? { maxPixels: photos.maxPixels } : {});
      throw new CosfaceError('PHOTOS_UNAVAILABLE', `${unavailable}: send embeddings instead (POST /v1/embed does not run here)`);
    },
  };
}
