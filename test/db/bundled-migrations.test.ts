// The migrations the edge runtimes apply are embedded in src/db/sqlite-migrations.generated.ts:
// it must match migrations/sqlite (regenerate with `node scripts/gen-migrations.mjs`).
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs script without types
import { OUT, renderMigrations } from '../../scripts/gen-migrations.mjs';

it('the bundled SQLite migrations are current', () => {
  expect(readFileSync(OUT as string, 'utf8')).toBe(renderMigrations() as string);
});
