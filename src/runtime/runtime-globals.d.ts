// The few Bun, Deno and workerd APIs the entry files use, declared here so that `tsc` checks the
// entries without installing each runtime's full type package.

declare module 'bun:sqlite' {
  export class Database {
    constructor(path: string, options?: { create?: boolean; readwrite?: boolean; strict?: boolean });
    exec(sql: string): void;
    close(): void;
  }
}

declare const Bun: {
  file(path: string | URL): { arrayBuffer(): Promise<ArrayBuffer> };
  serve(o: { port: number; hostname: string; fetch: (req: Request) => Response | Promise<Response>; maxRequestBodySize?: number }): { port: number; stop(closeActiveConnections?: boolean): void };
  version: string;
};

declare const Deno: {
  env: { get(name: string): string | undefined };
  readFile(path: string | URL): Promise<Uint8Array>;
  serve(
    o: { port: number; hostname: string; onListen?: (addr: { port: number; hostname: string }) => void },
    handler: (req: Request) => Response | Promise<Response>,
  ): { finished: Promise<void>; shutdown(): Promise<void> };
  addSignalListener(signal: 'SIGINT' | 'SIGTERM', handler: () => void): void;
  exit(code?: number): never;
  version: { deno: string };
};

// node:sqlite as Deno provides it (@types/node 20 predates it).
declare module 'node:sqlite' {
  export class StatementSync {
    all(...params: unknown[]): unknown[];
    run(...params: unknown[]): unknown;
  }
  export class DatabaseSync {
    constructor(path: string);
    exec(sql: string): void;
    prepare(sql: string): StatementSync;
    close(): void;
  }
}

// workerd: Durable Objects and WebAssembly modules imported as compiled modules.
declare module 'cloudflare:workers' {
  export abstract class DurableObject<Env = unknown> {
    protected ctx: DurableObjectState;
    protected env: Env;
    constructor(ctx: DurableObjectState, env: Env);
  }
  export interface DurableObjectState {
    storage: unknown;
    blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T>;
  }
}

declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
