// /v1/info reports the package version on every runtime from a constant: it must match package.json.
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { VERSION } from '../../src/server/version.js';

it('VERSION equals the version in package.json', () => {
  expect(VERSION).toBe((JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
});
