// What a gallery name and an identity id may be (src/store/names.ts), enforced where names enter:
// the store API, the HTTP API and the CLI. A rejected name is BAD_INPUT and changes nothing.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCosfaceError } from '../../src/errors.js';
import { openStore, type Store } from '../../src/store/index.js';
import { repoRoot } from '../helpers/fixtures.js';
import { expectError, makeServer, type TestServer } from '../server/helpers.js';
import { dbFingerprint, tempDir } from './helpers.js';

const BAD_GALLERY = ['../../etc', 'a\u0000b', '', ' a', 'a b', 'a/b', '.hidden', '-x', 'x'.repeat(65), 'ünï', 'a\nb', '..'];
const GOOD_GALLERY = ['a', 'A9', 'staff', 'team-a.b_2', '9lives', 'x'.repeat(64)];
const BAD_ID = ['', 'a\u0000b', 'tab\there', 'line\nfeed', '\u007f', '\u0085x', ' lead', 'trail ', 'x'.repeat(257), '\ud800alone'];
const GOOD_ID = ['alice', 'x/y z', '../../etc', 'José Ferreira', '山田 太郎', 'emoji 😀', 'x'.repeat(256), 'person-3'];

const dir = tempDir('names');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function code(f: () => unknown): Promise<string> {
  try {
    await f();
    return 'ok';
  } catch (e) {
    if (isCosfaceError(e)) return e.code;
    throw e;
  }
}

describe('names in the store API', () => {
  let store: Store;
  beforeAll(async () => {
    store = await openStore(path.join(dir, 'store.db'), { indexDir: null });
  });
  afterAll(async () => store.close());

  it('gallery names: identifiers only', async () => {
    for (const n of BAD_GALLERY) expect([n, await code(() => store.createGallery(n, { modelId: 'm', dimension: 4 }))]).toEqual([n, 'BAD_INPUT']);
    for (const n of GOOD_GALLERY) expect([n, await code(() => store.createGallery(n, { modelId: 'm', dimension: 4 }))]).toEqual([n, 'ok']);
    expect((await store.listGalleries()).map((g) => g.name).sort()).toEqual([...GOOD_GALLERY].sort());
  });

  it('identity ids: printable Unicode, no control characters, at most 256', async () => {
    for (const n of BAD_ID) {
      expect([n, await code(() => store.addIdentity('staff', { externalId: n }))]).toEqual([n, 'BAD_INPUT']);
      expect([n, await code(() => store.ensureIdentity('staff', { externalId: n }))]).toEqual([n, 'BAD_INPUT']);
    }
    for (const n of GOOD_ID) expect([n, await code(() => store.addIdentity('staff', { externalId: n }))]).toEqual([n, 'ok']);
    expect((await store.getGallery('staff')).identities).toBe(GOOD_ID.length);
  });
});

describe('names over HTTP', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await makeServer();
  });
  afterAll(async () => t?.close());

  it('POST /v1/galleries and POST .../identities reject bad names with 400 BAD_INPUT and change nothing', async () => {
    expect((await t.call('POST', '/v1/galleries', { name: 'staff' })).status).toBe(201);
    const before = await t.db.fingerprint(t.store);
    for (const name of BAD_GALLERY) await expectError(await t.call('POST', '/v1/galleries', { name }), 400, 'BAD_INPUT');
    for (const externalId of BAD_ID) await expectError(await t.call('POST', '/v1/galleries/staff/identities', { externalId }), 400, 'BAD_INPUT');
    await expectError(
      await t.call('POST', '/v1/galleries/staff/enroll', { faces: [{ identity: 'a\u0000b', embedding: Array(128).fill(1) }], createIdentities: true }),
      400,
      'BAD_INPUT',
    );
    expect(await t.db.fingerprint(t.store)).toBe(before);
    // An unknown, ill-formed name in a path is simply not found.
    await expectError(await t.call('GET', `/v1/galleries/${encodeURIComponent('../../etc')}`), 404, 'GALLERY_NOT_FOUND');
    expect((await t.call('POST', '/v1/galleries/staff/identities', { externalId: '../../etc' })).status).toBe(201);
  });
});

describe('names in the CLI', () => {
  it('enroll --gallery with a bad name fails with BAD_INPUT before creating a database', async () => {
    const people = path.join(dir, 'people', 'alice');
    mkdirSync(people, { recursive: true });
    const db = path.join(dir, 'cli.db');
    const r = await promisify(execFile)(path.join(repoRoot, 'node_modules/.bin/tsx'), [path.join(repoRoot, 'src/cli.ts'), 'enroll', path.join(dir, 'people'), '--gallery', '../../etc', '--db', db]).catch((e: { code: number; stderr: string }) => e);
    expect((r as { code: number }).code).toBe(2);
    expect((r as { stderr: string }).stderr).toMatch(/^error BAD_INPUT: invalid gallery name "..\/..\/etc"/m);
    expect(existsSync(db)).toBe(false);
  }, 60_000);
});
