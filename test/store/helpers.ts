// Test helpers: temporary store folders and a fingerprint of everything in a database file.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cosface-${prefix}-`));
}

export { sqliteFingerprint as dbFingerprint } from '../helpers/backends.js';
