// SQLite's write lock shared between processes (a CLI `enroll` beside `cosface serve`): how long a
// write waits for it, and the stable error when the wait runs out. No driver import, so the CLI's
// error path can use it without loading SQLite.
import { CosfaceError } from '../errors.js';

/**
 * How long a write waits for another process's write lock (a CLI `enroll` beside `cosface serve`)
 * before failing with BUSY: COSFACE_BUSY_TIMEOUT_MS, default 5000.
 */
export function busyTimeoutMs(): number {
  const v = Number(process.env.COSFACE_BUSY_TIMEOUT_MS ?? 5000);
  return Number.isInteger(v) && v >= 0 ? v : 5000;
}

/** SQLite's "database is locked" as the stable BUSY error (null for any other error). */
export function busyError(e: unknown): CosfaceError | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^SQLITE_(BUSY|LOCKED)/.test(code)) return null;
  return new CosfaceError('BUSY', `the database is busy: another process held its write lock for more than ${busyTimeoutMs()} ms (${code}); this write was not made, try again`, { cause: e });
}
