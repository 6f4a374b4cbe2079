// Starts cosface on a runtime the way a user does (`npm run serve:<runtime>` with PORT,
// COSFACE_ADMIN_KEY and a fresh database from the environment) and waits for its "listening on"
// line. Used by the conformance suite (test/edge) and the edge benchmark (edge-bench.ts).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(fileURLToPath(new URL('.', import.meta.url)), '../..');

export type RuntimeName = 'node' | 'bun' | 'deno' | 'workerd';
export const RUNTIMES: readonly RuntimeName[] = ['node', 'bun', 'deno', 'workerd'];

export interface RunningRuntime {
  name: RuntimeName;
  url: string;
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** Process ids in the runtime's process group, with their command names (to find workerd under wrangler). */
export function groupPids(r: RunningRuntime): { pid: number; comm: string }[] {
  return execFileSync('ps', ['-o', 'pid=,comm=', '-g', String(r.child.pid)], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .map(([pid, comm]) => ({ pid: Number(pid), comm: comm ?? '' }));
}

export function startRuntime(name: RuntimeName, o: { adminKey: string; env?: Record<string, string>; timeoutMs?: number }): Promise<RunningRuntime> {
  const dir = mkdtempSync(join(tmpdir(), `cosface-${name}-`));
  const child = spawn('npm', ['run', '-s', `serve:${name}`], {
    cwd: repoRoot,
    detached: true, // its own process group: stop() ends npm, the runtime and wrangler's workerd together
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      COSFACE_ADMIN_KEY: o.adminKey,
      COSFACE_DB: join(dir, 'cosface.db'),
      COSFACE_WORKERD_STATE: join(dir, 'workerd-state'),
      COSFACE_BACKEND: 'wasm',
      ...o.env,
    },
  });
  let out = '';
  /** True while any process of the runtime's group (npm, the runtime, wrangler's workerd) is alive. */
  const groupAlive = () => {
    try {
      process.kill(-child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  };
  const stop = () =>
    new Promise<void>((resolve) => {
      const done = async () => {
        // npm exits on SIGTERM before the runtime it started has finished shutting down (the Node
        // server writes its index snapshots then): wait for the whole group, so that the folder is
        // not removed under a process still writing into it (seen once in CI: ENOTEMPTY).
        // Bounded: an unreaped zombie would count as alive for ever.
        for (let t = 0; groupAlive() && t < 7000; t += 50) {
          if (t === 5000) kill();
          await new Promise((r) => setTimeout(r, 50));
        }
        // COSFACE_RUNTIME_LOGS=<dir>: keep each runtime's output there (for failures).
        if (process.env.COSFACE_RUNTIME_LOGS) writeFileSync(join(process.env.COSFACE_RUNTIME_LOGS, `${name}.log`), out);
        rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
        resolve();
      };
      const kill = () => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      };
      if (child.exitCode !== null || child.signalCode !== null) return void done();
      const killTimer = setTimeout(kill, 5000);
      child.once('exit', () => {
        clearTimeout(killTimer);
        void done();
      });
      // The process group: npm, the runtime, and wrangler's workerd.
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        void done();
      }
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${name} did not start in ${(o.timeoutMs ?? 90_000) / 1000} s:\n${out}`));
    }, o.timeoutMs ?? 90_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /cosface[^\n]* listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stderr!.off('data', onData);
        // Keep draining (a full pipe would block the server) and keep the output for failures.
        child.stdout!.on('data', (x: Buffer) => (out = (out + x.toString()).slice(-200_000)));
        child.stderr!.on('data', (x: Buffer) => (out = (out + x.toString()).slice(-200_000)));
        resolve({ name, url: m[1]!, child, output: () => out, stop });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening:\n${out}`));
    });
  });
}
