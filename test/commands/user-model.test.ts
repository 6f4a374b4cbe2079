// A gallery of another model's dimension, through the CLI: `cosface enroll/identify --model
// iresnet.onnx` (a small InsightFace IResNet with a 512-d head, random weights) makes a 512-d
// gallery named after the model file's content, identify finds an enrolled photo as itself, and
// the default 128-d pipeline is refused on that gallery (and the 512-d one on a 128-d gallery).
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelIdOf, openCliPipeline, storeCommands, type EnrollSummary } from '../../src/commands/store-commands.js';
import { buildIResNet } from '../helpers/iresnet-onnx.js';
import { tempDir } from '../store/helpers.js';
import { aligned, captureIo, expectCode, makeEnrollDir, photo, runJson } from './helpers.js';

interface IdentifyJson {
  faces: { candidates: { identity: string; score: number }[] }[];
}

describe('galleries of a user model (512-d) through the CLI', () => {
  let dir: string;
  let model: string;
  let people: string;
  const io = captureIo();
  // The real pipeline, opened per command as the CLI does (on WASM, two workers).
  const cmd = storeCommands({ io, openPipeline: (o) => openCliPipeline({ ...o, backend: 'wasm', workers: 2 }) });

  beforeAll(() => {
    dir = tempDir('user-model');
    model = join(dir, 'iresnet-small.onnx');
    writeFileSync(model, buildIResNet({ layers: [1, 1, 1, 1], widths: [16, 16, 32, 32], features: 512, normalise: true, seed: 21 }).bytes);
    people = makeEnrollDir(join(dir, 'people'), {
      obama: [photo('obama_small.jpg')],
      biden: [photo('biden-400.jpg')],
      brody: [aligned('Adrien_Brody_0002.png')],
    });
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('enroll --model makes a 512-d gallery of that model; identify --model finds each enrolled photo as itself', async () => {
    const db = join(dir, 'g.db');
    const s = await runJson<EnrollSummary>(io, cmd.enroll, [people, '--gallery', 'big', '--db', db, '--model', model]);
    expect(s.added).toBe(3);
    io.clear();
    await cmd.gallery(['list', '--db', db, '--json']);
    const list = (JSON.parse(io.stdout) as { galleries: { name: string; modelId: string; dimension: number }[] }).galleries;
    expect(list).toEqual([expect.objectContaining({ name: 'big', modelId: await modelIdOf(model), dimension: 512 })]);
    expect(list[0]!.modelId).toMatch(/^iresnet-small-[0-9a-f]{12}$/);

    const r = await runJson<IdentifyJson>(io, cmd.identify, [photo('biden-400.jpg'), '--gallery', 'big', '--db', db, '--model', model, '--threshold', '0.5']);
    expect(r.faces[0]!.candidates[0]!.identity).toBe('biden');
    expect(r.faces[0]!.candidates[0]!.score).toBeGreaterThan(0.9999);

    // The vendored 128-d pipeline on the 512-d gallery, and the 512-d one on a 128-d gallery: refused.
    await expectCode(cmd.identify, [photo('biden-400.jpg'), '--gallery', 'big', '--db', db], 'MODEL_MISMATCH');
    await runJson<EnrollSummary>(io, cmd.enroll, [people, '--gallery', 'small', '--db', db]);
    await expectCode(cmd.enroll, [people, '--gallery', 'small', '--db', db, '--model', model], 'MODEL_MISMATCH');
    await expectCode(cmd.identify, [photo('biden-400.jpg'), '--gallery', 'big', '--db', db, '--input-std', '127.5'], 'BAD_INPUT');
  }, 600_000);
});
