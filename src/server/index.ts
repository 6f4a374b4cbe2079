// Public surface of the HTTP server (the CLI and library users import from here).
export { createApp, packageVersion, type CreateAppOptions, type CosfaceApp, type LogEntry } from './app.js';
export { startServer, serveCommand, ensureAdminKey, createApiKey, DEFAULT_DB, DEFAULT_HOST, DEFAULT_PORT, type StartServerOptions, type RunningServer } from './server.js';
export { parseServeArgs, SERVE_USAGE } from './main.js';
export { ApiKeys, hashKey, type ApiKeyInfo, type CreatedApiKey } from './api-keys.js';
export { FaceFinder, type PhotoPipeline, type FaceFinderOptions } from './face-finder.js';
export { DEFAULT_LIMITS, type Limits } from './route-spec.js';
export { openApiDocument } from './openapi.js';
export { serveCli, keysCli, SERVER_USAGE, KEYS_USAGE } from './cli-commands.js';
