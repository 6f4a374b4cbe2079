// The package version as a constant, so every runtime reports it without reading package.json
// (test/server/version.test.ts keeps it equal to package.json's).
export const VERSION = '0.1.0';
