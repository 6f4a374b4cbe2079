// Error code -> HTTP status, and the one JSON error body every failure is sent as.
import { CosfaceError, type ErrorCode } from '../errors.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_INPUT: 400,
  BAD_JSON: 400,
  DIMENSION_MISMATCH: 400,
  EMPTY_BATCH: 400,
  UNKNOWN_BACKEND: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  GALLERY_NOT_FOUND: 404,
  IDENTITY_NOT_FOUND: 404,
  FACE_NOT_FOUND: 404,
  GALLERY_EXISTS: 409,
  DUPLICATE_IDENTITY: 409,
  MODEL_MISMATCH: 409,
  MODEL_CHANGED: 409,
  MIGRATING: 409,
  MIGRATION_INCOMPLETE: 409,
  PAYLOAD_TOO_LARGE: 413,
  IMAGE_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BAD_IMAGE: 422,
  NO_FACE: 422,
  NOT_CALIBRATED: 422,
  OVERLOADED: 503,
  BUSY: 503,
  INDEX_UNAVAILABLE: 503,
  PHOTOS_UNAVAILABLE: 501,
};

/** The HTTP status a CosfaceError code is answered with (500 for codes that mean a server fault). */
export function httpStatus(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

/** Every status the API can answer an error with, by code (for the OpenAPI description). */
export function documentedErrors(): { code: ErrorCode; status: number }[] {
  return (Object.entries(STATUS) as [ErrorCode, number][]).map(([code, status]) => ({ code, status }));
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId?: string };
}

export function errorBody(e: CosfaceError, requestId?: string): ErrorBody {
  return { error: { code: e.code, message: e.message, ...(requestId ? { requestId } : {}) } };
}
