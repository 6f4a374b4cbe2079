// Child process of the crash test: enrolls faces (and now and then deletes an identity) as fast as
// it can, printing an ack line after each call returns, until the parent kills it with SIGKILL.
// Usage: node --import tsx test/store/crash-child.ts <db path> <round>
import { openStore } from '../../src/store/index.js';
import { crashTestVector, CRASH_DIM, CRASH_GALLERY } from './crash-vectors.js';

const [dbPath, roundArg] = process.argv.slice(2);
const round = Number(roundArg);
// Tiny checkpoint interval and rebuild thresholds, so kills also land inside snapshot writes and
// background rebuilds.
const store = await openStore(dbPath!, { checkpointEvery: 25, rebuildMinDeleted: 4, rebuildDeletedFraction: 0.05 });
try {
  await store.getGallery(CRASH_GALLERY);
} catch {
  await store.createGallery(CRASH_GALLERY, { modelId: 'synthetic', dimension: CRASH_DIM });
}
// stdout is a pipe, and pipe writes are synchronous on Linux: once the line is written, it is out.
const say = (line: string) => process.stdout.write(line + '\n');
say('ready');
for (let i = 0; ; i++) {
  const identity = `r${round}-p${Math.floor(i / 3)}`;
  await store.ensureIdentity(CRASH_GALLERY, { externalId: identity });
  const vecSeed = round * 1_000_000 + i;
  const face = await store.addFace(CRASH_GALLERY, identity, { embedding: crashTestVector(vecSeed), quality: i });
  say(`ack ${face.id} ${identity} ${vecSeed}`);
  if (i % 20 === 19) {
    const victim = `r${round}-p${Math.floor(i / 3) - 2}`;
    await store.deleteIdentity(CRASH_GALLERY, victim);
    say(`del ${victim}`);
  }
  // Yield now and then so background rebuild results can be swapped in.
  if (i % 10 === 0) await new Promise((r) => setImmediate(r));
}
