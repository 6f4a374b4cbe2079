// drizzle-kit configuration: `npx drizzle-kit generate` writes SQL migrations for src/db/schema.ts.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema.ts',
  out: './migrations',
});
