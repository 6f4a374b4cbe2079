// The Store the edge runtimes serve: metadata in SQLite through a synchronous drizzle driver (the
// same SqliteMeta as Node's), search by exact scan on the WASM kernels in this thread
// (ExactScanIndex), the same Store logic (validation, codes, re-rank, decisions) as Node. The runtime's entry opens the
// database and compiles build/cosface.wasm; this module takes both and is runtime-neutral.
import { sql } from 'drizzle-orm';
import { WasmKernels } from '../../backend/wasm/wasm-instance.js';
import { scoreInline } from '../../backend/wasm/wasm-inline.js';
import type { ExactScorer } from '../exact-scorer.js';
import type { VectorStorage } from '../exact-vector-index.js';
import { Store } from '../store.js';
import { ExactScanIndex } from './exact-scan-index.js';
import { migrateSync } from './migrate-sync.js';
import { SqliteMeta, type SyncSqliteDb } from '../sqlite/sqlite-meta.js';

export interface EdgeStoreOptions {
  /** build/cosface.wasm, compiled (workerd: imported as a module). */
  wasm: WebAssembly.Module;
  /** For messages: the database file, or the Durable Object. */
  location: string;
  /** Vector storage of the exact-scan index (default 'f32'). */
  storage?: VectorStorage;
  /** Closes the database connection (Store.close). */
  closeDb?: () => void;
  /** Skip `PRAGMA foreign_keys = ON` (Durable Objects enforce foreign keys already and refuse the pragma in a transaction). */
  skipForeignKeyPragma?: boolean;
}

export interface EdgeStore {
  store: Store;
  index: ExactScanIndex;
  /** Migrations applied on this open. */
  migrated: string[];
}

export function openEdgeStore(db: SyncSqliteDb, o: EdgeStoreOptions): EdgeStore {
  if (!o.skipForeignKeyPragma) db.run(sql`PRAGMA foreign_keys = ON`);
  const migrated = migrateSync(db);
  const meta = new SqliteMeta(db, o.closeDb);
  const kernels = new WasmKernels(o.wasm);
  const index = new ExactScanIndex(kernels, (galleryId) => meta.liveVectors(galleryId), { storage: o.storage ?? 'f32' });
  const scorer: ExactScorer = async (queries, q, gallery, n, dim, k) => scoreInline(kernels, queries, q, gallery, n, dim, k);
  const store = new Store({
    meta,
    index,
    backend: 'sqlite',
    location: o.location,
    dbPath: null,
    indexDir: null,
    scorer,
    scorerName: `wasm (in-process, exact scan, ${o.storage ?? 'f32'})`,
    // Every search is an exact scan here: report it as one.
    exactBelow: Number.MAX_SAFE_INTEGER,
  });
  return { store, index, migrated };
}
