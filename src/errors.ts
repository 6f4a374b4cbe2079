// Every failure a user can cause or meet has a stable code; messages say what and where.

export type ErrorCode =
  | 'BAD_MODEL' // truncated, corrupt or not a model file
  | 'UNSUPPORTED_OP' // the model uses an op (or a variant of one) the engine does not implement
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
  | 'INDEX_ERROR'; // the HNSW index failed in a way the database could not repair

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
