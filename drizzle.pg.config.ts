// drizzle-kit configuration for PostgreSQL: `npx drizzle-kit generate --config drizzle.pg.config.ts`
// writes SQL migrations for src/db/schema-pg.ts into migrations/pg. The first migration
// (0000_pgvector, written with --custom) creates the vector extension the tables need.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema-pg.ts',
  out: './migrations/pg',
});
