// An ordinary command prints its result and nothing else. Dawn prints notices to stderr while it
// enumerates some adapters (lavapipe: "maxDynamicUniformBuffersPerPipelineLayout artificially
// reduced ..."), so `auto` probes the adapter in a child process and loads Dawn in the command's
// process only when it will use WebGPU (src/backend/webgpu/device.ts, probeAdapter).
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { probeAdapter } from '../../src/backend/webgpu/device.js';
import { repoRoot } from '../helpers/fixtures.js';
import { webgpuRequired } from '../helpers/webgpu.js';
import { tempDir } from '../store/helpers.js';

const run = promisify(execFile);
const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
const cli = path.join(repoRoot, 'src/cli.ts');
const photo = (f: string) => path.join(repoRoot, 'test/fixtures/photos', f);
const dir = tempDir('quiet');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cosface(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.COSFACE_WEBGPU;
  try {
    const r = await run(tsx, [cli, ...args], { cwd: dir, env, maxBuffer: 16 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('stderr of ordinary commands', () => {
  it('the adapter probe sees the adapter WebGPU has (lavapipe in CI)', async () => {
    const p = await probeAdapter();
    if (webgpuRequired) expect(p.adapterName).not.toBeNull();
    if (p.adapterName !== null) expect(typeof p.software).toBe('boolean');
  }, 60_000);

  it('info and embed with the default backend print nothing on stderr', async () => {
    const info = await cosface(['info', '--json']);
    expect(info.code).toBe(0);
    expect(info.stderr).toBe('');
    const e = await cosface(['embed', photo('obama-240p.jpg'), '--json']);
    expect(e.code).toBe(0);
    expect(e.stderr).toBe('');
    expect((JSON.parse(e.stdout) as { faces: unknown[] }[])[0]!.faces).toHaveLength(1);
  }, 120_000);

  it('with --backend webgpu the command still works (Dawn loaded in-process)', async () => {
    const p = await probeAdapter();
    if (p.adapterName === null && !webgpuRequired) return;
    const info = await cosface(['info', '--backend', 'webgpu', '--json']);
    expect(info.code).toBe(0);
    expect((JSON.parse(info.stdout) as { backend: string }).backend).toBe('webgpu');
  }, 60_000);
});
