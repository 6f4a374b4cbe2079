// What a gallery name and an identity's external id may be. Checked where names enter (the store's
// createGallery / addIdentity / ensureIdentity, which the CLI and the HTTP API both go through; the
// HTTP schemas repeat the rule so it shows in the OpenAPI description). Lookups take any string:
// a name that breaks the rule can only be not found.
import { CosfaceError } from '../errors.js';

/**
 * A gallery name: 1 to 64 characters, ASCII letters, digits, '.', '_' and '-', starting with a
 * letter or a digit. Names appear in URLs, file names of exports, logs and shell commands, so they
 * are identifiers: no '/', no '..' component, no spaces, nothing that needs quoting.
 */
export const GALLERY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const GALLERY_NAME_RULE = "1-64 characters: ASCII letters, digits, '.', '_', '-', starting with a letter or digit";

/** The longest external id, in UTF-16 code units. */
export const EXTERNAL_ID_MAX = 256;
/**
 * An identity's external id is the caller's own key (a person's name, a folder name, an employee
 * number), so it may hold any printable Unicode: spaces, '/', accents. Not allowed: control
 * characters (U+0000-U+001F, U+007F-U+009F: NUL, newlines, escapes), lone surrogates, surrounding
 * spaces, and more than 256 characters.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const EXTERNAL_ID_RULE = `1-${EXTERNAL_ID_MAX} characters of printable Unicode without control characters or surrounding spaces`;

function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v) : String(v);
}

export function isGalleryName(v: unknown): v is string {
  return typeof v === 'string' && GALLERY_NAME_PATTERN.test(v);
}

export function checkGalleryName(v: unknown): asserts v is string {
  if (!isGalleryName(v)) throw new CosfaceError('BAD_INPUT', `invalid gallery name ${shown(v)}: a gallery name is ${GALLERY_NAME_RULE}`);
}

export function isExternalId(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= EXTERNAL_ID_MAX && v.trim() === v && !CONTROL.test(v) && !LONE_SURROGATE.test(v);
}

export function checkExternalId(v: unknown): asserts v is string {
  if (!isExternalId(v)) throw new CosfaceError('BAD_INPUT', `invalid identity id ${shown(v)}: an identity id is ${EXTERNAL_ID_RULE}`);
}
