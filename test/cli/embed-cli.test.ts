// The `cosface embed --aligned` command as a user runs it: a real process, real files, JSON out.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { alignedDir, loadAlignedFixtures, maxAbsDiff, modelPath, repoRoot } from '../helpers/fixtures.js';
import { skipWebGpu } from '../helpers/webgpu.js';

const run = promisify(execFile);
const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
const cli = path.join(repoRoot, 'src/cli.ts');

async function cosface(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(tsx, [cli, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const files = ['Aaron_Sorkin_0001.png', 'Aaron_Sorkin_0002.png', 'Abdullah_0001.png'].map((f) => path.join(alignedDir, f));

async function referenceRows(names: string[]): Promise<Float32Array> {
  const fx = await loadAlignedFixtures();
  const out = new Float32Array(names.length * 128);
  names.forEach((n, i) => {
    const k = fx.files.indexOf(path.basename(n));
    out.set(fx.reference.subarray(k * 128, (k + 1) * 128), i * 128);
  });
  return out;
}

function embeddingsOf(stdout: string): { json: { file: string; faces: { embedding: number[] }[] }[]; rows: Float32Array } {
  const json = JSON.parse(stdout) as { file: string; faces: { embedding: number[] }[] }[];
  return { json, rows: Float32Array.from(json.flatMap((r) => r.faces[0]!.embedding)) };
}

describe('cosface embed --aligned', () => {
  it('works on the WASM backend with the WebGPU adapter made unavailable', async () => {
    const r = await cosface(['embed', ...files, '--aligned', '--backend', 'wasm', '--json'], { COSFACE_WEBGPU: 'off' });
    expect(r.code, r.stderr).toBe(0);
    const { json, rows } = embeddingsOf(r.stdout);
    expect(json.map((x) => x.file)).toEqual(files);
    expect(json.every((x) => x.faces.length === 1 && x.faces[0]!.embedding.length === 128)).toBe(true);
    expect(maxAbsDiff(rows, await referenceRows(files))).toBeLessThanOrEqual(1e-4);
  });

  it('auto falls back to WASM and says so when there is no adapter', async () => {
    const r = await cosface(['info', '--json'], { COSFACE_WEBGPU: 'off' });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ backend: 'wasm' });
  });

  it.skipIf(skipWebGpu)('gives the same embeddings on WebGPU', async () => {
    const r = await cosface(['embed', ...files, '--aligned', '--backend', 'webgpu', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(maxAbsDiff(embeddingsOf(r.stdout).rows, await referenceRows(files))).toBeLessThanOrEqual(1e-4);
  });

  it('resizes an aligned crop of another size to 112x112', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cosface-cli-'));
    const big = path.join(dir, 'big.png');
    const sharp = (await import('sharp')).default;
    await sharp(files[0]!).resize(224, 224, { kernel: 'nearest' }).toFile(big);
    const r = await cosface(['embed', big, files[0]!, '--aligned', '--backend', 'wasm', '--json'], { COSFACE_WEBGPU: 'off' });
    expect(r.code, r.stderr).toBe(0);
    const { rows } = embeddingsOf(r.stdout);
    let dot = 0;
    for (let i = 0; i < 128; i++) dot += rows[i]! * rows[128 + i]!;
    expect(dot).toBeGreaterThan(0.99);
  });

  it('rejects a file that is not an image, a truncated model, an unknown backend and no input, with codes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cosface-cli-'));
    const notImage = path.join(dir, 'notes.png');
    writeFileSync(notImage, 'this is text, not a PNG');
    const truncated = path.join(dir, 'cut.tflite');
    writeFileSync(truncated, readFileSync(modelPath).subarray(0, 100_000));
    const cases: [string[], string][] = [
      [['embed', notImage, '--aligned', '--backend', 'wasm'], 'BAD_IMAGE'],
      [['embed', files[0]!, '--aligned', '--backend', 'wasm', '--model', truncated], 'BAD_MODEL'],
      [['embed', files[0]!, '--aligned', '--backend', 'cuda'], 'UNKNOWN_BACKEND'],
      [['embed', '--aligned'], 'BAD_INPUT'],
    ];
    for (const [args, code] of cases) {
      const r = await cosface(args, { COSFACE_WEBGPU: 'off' });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`error ${code}:`);
    }
  });
});
