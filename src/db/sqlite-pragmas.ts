// The PRAGMAs a SQLite file connection runs when it opens, one source for every runtime (open-db.ts
// for better-sqlite3 on Node, runtime/bun.ts, runtime/deno.ts; a Durable Object's storage sets its
// own). No driver import: each runtime runs the string through its own driver.
import { busyTimeoutMs } from './busy.js';

export interface SqlitePragmaOptions {
  /**
   * 'full' (default): a commit is on disk when it returns, surviving power loss as well as a process
   * crash. 'normal': in WAL mode survives a process crash but may lose the last commits on power
   * loss; faster for bulk loads.
   */
  synchronous?: 'full' | 'normal';
  /** A read-only connection sets neither the journal mode nor synchronous. */
  readonly?: boolean;
}

/**
 * WAL (readers never wait for the writer), the synchronous level, and how long a write waits for
 * another process's write lock before failing with BUSY (busy.ts), as one `exec`-able string.
 */
export function sqliteOpenPragmas(o: SqlitePragmaOptions = {}): string {
  const pragmas = [`PRAGMA busy_timeout = ${busyTimeoutMs()};`];
  if (!o.readonly) pragmas.push('PRAGMA journal_mode = WAL;', `PRAGMA synchronous = ${o.synchronous === 'normal' ? 'NORMAL' : 'FULL'};`);
  return pragmas.join(' ');
}
