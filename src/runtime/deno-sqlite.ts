// node:sqlite (Deno's built-in SQLite, no native addon) presented as the Durable Object storage API
// that drizzle's durable-sqlite driver speaks (`sql.exec(query, ...params)` returning a cursor, and
// `transactionSync`), so Deno runs the same synchronous drizzle MetaStore as Bun and workerd.
import type { DatabaseSync, StatementSync } from 'node:sqlite';

type Row = Record<string, unknown>;

interface Cursor {
  toArray(): Row[];
  raw(): { toArray(): unknown[][] };
  next(): { done: boolean; value?: Row };
  one(): Row;
}

export interface DurableStorageLike {
  sql: { exec(query: string, ...params: unknown[]): Cursor };
  transactionSync<T>(fn: () => T): T;
}

export function durableStorageOver(db: DatabaseSync): DurableStorageLike {
  const statements = new Map<string, StatementSync>();
  const prepared = (query: string) => {
    let st = statements.get(query);
    if (!st) {
      st = db.prepare(query);
      // Arrays keep repeated column names (joins) apart, which objects cannot.
      (st as unknown as { setReturnArrays(on: boolean): void }).setReturnArrays(true);
      statements.set(query, st);
    }
    return st;
  };
  return {
    sql: {
      exec(query: string, ...params: unknown[]): Cursor {
        const st = prepared(query);
        // Run once, now (drizzle's run() ignores the cursor; an INSERT ... RETURNING must not run twice).
        const rows = st.all(...(params as never[])) as unknown as unknown[][];
        const names = (st as unknown as { columns(): { name: string }[] }).columns().map((c) => c.name);
        const asObject = (r: unknown[]): Row => Object.fromEntries(names.map((n, j) => [n, r[j]]));
        let i = 0;
        return {
          toArray: () => rows.map(asObject),
          raw: () => ({ toArray: () => rows }),
          next: () => (i < rows.length ? { done: false, value: asObject(rows[i++]!) } : { done: true }),
          one: () => {
            if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}`);
            return asObject(rows[0]!);
          },
        };
      },
    },
    transactionSync<T>(fn: () => T): T {
      db.exec('BEGIN IMMEDIATE');
      try {
        const r = fn();
        db.exec('COMMIT');
        return r;
      } catch (e) {
        db.exec('ROLLBACK');
        throw e;
      }
    },
  };
}
