// drizzle-kit configuration for SQLite: `npx drizzle-kit generate` writes SQL migrations for
// src/db/schema.ts into migrations/sqlite (Postgres: drizzle.pg.config.ts).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema.ts',
  out: './migrations/sqlite',
});
