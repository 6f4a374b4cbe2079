// The Hono environment shared by the app and its sub-apps: per-request variables set by middleware.
import type { Principal } from './auth.js';

export interface AppEnv {
  Variables: {
    requestId: string;
    principal: Principal;
    /** The validated request input (body fields merged with query), set by the route's spec middleware. */
    input: unknown;
  };
}
