// Every failure a user can cause or meet has a stable code; messages say what and where.

export type ErrorCode =
  | 'BAD_MODEL' // truncated, corrupt or not a model file
  | 'UNSUPPORTED_OP' // the model uses an op (or a variant of one) the engine does not implement
  | 'UNSUPPORTED_MODEL' // a valid model of a kind the engine does not run (quantised, external data, other opsets)
  | 'NO_ADAPTER' // no WebGPU adapter or device
  | 'SHADER_COMPILE' // a WGSL shader failed to compile or validate
  | 'GPU_ERROR' // a WebGPU validation or out-of-memory error at run time
  | 'BAD_IMAGE' // not a decodable image, empty, truncated
  | 'IMAGE_TOO_LARGE'
  | 'EMPTY_BATCH'
  | 'BAD_INPUT' // wrong length, NaN, wrong type
  | 'DIMENSION_MISMATCH'
  | 'UNKNOWN_BACKEND'
  | 'WASM_ERROR'
  | 'GALLERY_NOT_FOUND'
  | 'GALLERY_EXISTS'
  | 'IDENTITY_NOT_FOUND'
  | 'DUPLICATE_IDENTITY' // an external id already enrolled (not deleted) in the gallery
  | 'FACE_NOT_FOUND'
  | 'NOT_CALIBRATED' // a FAR was asked for but no threshold is calibrated for it for this model
  | 'INDEX_ERROR' // the HNSW index failed in a way the database could not repair
  | 'INDEX_UNAVAILABLE' // a worker thread holding part of a gallery's index died or stopped answering mid-call, or before it was ready (while the index opens): the index reloads from its snapshot and the database, try again
  | 'BAD_JSON' // a request body that is not valid JSON
  | 'UNSUPPORTED_MEDIA_TYPE' // a request body in a content type the route does not take
  | 'PAYLOAD_TOO_LARGE' // a request body over the route's size limit
  | 'NO_FACE' // an image with no detectable face where one is needed
  | 'MODEL_MISMATCH' // a gallery built for another embedding model than the one asked to fill it
  | 'UNAUTHORIZED' // no API key, or one that is unknown or revoked
  | 'FORBIDDEN' // a valid API key used outside its scope
  | 'NOT_FOUND' // no such route or resource (resources with their own code use that)
  | 'BUSY' // another process held the database's write lock past the busy timeout: try again
  | 'INTERNAL' // a bug: anything not foreseen
  | 'OVERLOADED' // too much work queued already: try again shortly
  | 'PHOTOS_UNAVAILABLE' // this deployment serves embedding routes only (the face models do not fit the runtime's limits)
  | 'INTERRUPTED' // long work stopped before the end (a server shutting down); what was done is kept
  | 'MIGRATING' // the gallery is being migrated to another model: faces cannot be added until it ends (or another migration holds it)
  | 'MODEL_CHANGED' // the gallery switched to another model while the request ran: embed with the gallery's model and ask again
  | 'MIGRATION_INCOMPLETE'; // faces could not be re-embedded (photo missing, no matching face): nothing was switched

export class CosfaceError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CosfaceError';
    this.code = code;
  }
}

export function isCosfaceError(e: unknown, code?: ErrorCode): e is CosfaceError {
  return e instanceof CosfaceError && (code === undefined || e.code === code);
}
