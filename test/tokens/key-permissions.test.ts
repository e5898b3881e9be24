import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKeyRing, keyFolderReloader, loadKeyStore, writeNewKeyPair } from '../../src/tokens/keys';
import { generateRsaPem } from '../helpers/keys';

// Whoever reads a private signing key can mint access tokens for any user. Like OpenSSH with
// its identity files, Gatehouse says so when a private key file in KEYS_DIR is open to group
// or others; it names the file, never what is in it.

let dir: string;
let key: { privateFile: string; publicFile: string };
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-key-modes-'));
  key = await writeNewKeyPair(dir);
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function insecureFilesWhen(mode: number): Promise<Array<[string, number]>> {
  await fs.chmod(key.privateFile, mode);
  const reported: Array<[string, number]> = [];
  await loadKeyStore({ keysDir: dir, generateIfMissing: false, onInsecureFile: (file, fileMode) => reported.push([file, fileMode]) });
  return reported;
}

describe('loadKeyStore and the permissions of private key files', () => {
  it.each([
    ['readable by everyone (0644)', 0o644],
    ['readable by its group (0640)', 0o640],
    ['readable by others (0604)', 0o604],
    ['writable by its group, so replaceable (0620)', 0o620],
  ])('when the private key file is %s, then that file and its mode are reported', async (_case, mode) => {
    expect(await insecureFilesWhen(mode)).toEqual([[key.privateFile, mode]]);
  });

  it.each([
    ['0600', 0o600],
    ['0400', 0o400],
  ])('when the private key file is %s, then nothing is reported', async (_case, mode) => {
    expect(await insecureFilesWhen(mode)).toEqual([]);
  });

  it('when the public key file is readable by everyone (0644, as it is written), then nothing is reported', async () => {
    expect((await fs.stat(key.publicFile)).mode & 0o777).toBe(0o644);

    expect(await insecureFilesWhen(0o600)).toEqual([]);
  });

  it('when a development key is generated into an empty KEYS_DIR, then it is private and nothing is reported', async () => {
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-key-modes-'));
    try {
      const reported: string[] = [];
      await loadKeyStore({ keysDir: empty, generateIfMissing: true, onInsecureFile: (file) => reported.push(file) });

      expect(reported).toEqual([]);
    } finally {
      await fs.rm(empty, { recursive: true, force: true });
    }
  });
});

// A running instance re-reads KEYS_DIR unattended, and publishes (and verifies with, and may sign
// with) whatever key it finds there. A key file someone else could have put there or replaced is
// not trusted by a reload: the ring keeps the keys it has, and says why, naming the file.
describe('keyFolderReloader: re-reading KEYS_DIR while running', () => {
  let folder: string;
  let first: { kid: string; privateFile: string; publicFile: string };
  beforeEach(async () => {
    folder = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-key-reload-'));
    first = await writeNewKeyPair(folder, new Date(Date.now() - 3_600_000));
  });
  afterEach(async () => {
    await fs.rm(folder, { recursive: true, force: true });
  });

  async function ringOver() {
    const reported: Array<[string, number]> = [];
    const failures: string[] = [];
    const load = keyFolderReloader({ keysDir: folder, onInsecureFile: (file, mode) => reported.push([file, mode]) });
    const ring = createKeyRing({ initial: await load(), load, onReloadFailed: (reason) => failures.push(reason) });
    return { ring, reported, failures };
  }

  it('when a reload finds a private key file open to group or others, then it is reported once, as at start-up', async () => {
    const { ring, reported } = await ringOver();
    const added = await writeNewKeyPair(folder);
    await fs.chmod(added.privateFile, 0o640);

    expect(await ring.reload()).toEqual({ ok: true, changed: true });
    expect(await ring.reload()).toEqual({ ok: true, changed: false });

    expect(reported).toEqual([[added.privateFile, 0o640]]);
  });

  it.each([
    ['a public key file writable by others (0646)', 'public', 0o646],
    ['a private key file writable by its group (0620)', 'private', 0o620],
  ] as const)(
    'when a reload finds %s, then the reading is refused, naming the file, and the keys in use stay',
    async (_case, half, mode) => {
      const { ring, failures } = await ringOver();
      const added = await writeNewKeyPair(folder);
      const file = half === 'public' ? added.publicFile : added.privateFile;
      await fs.chmod(file, mode);

      expect(await ring.reload()).toEqual({ ok: false, changed: false });

      expect(ring.current().jwks.keys.map((key) => key.kid)).toEqual([first.kid]);
      expect(failures).toEqual([expect.stringContaining(path.basename(file))]);
      expect(failures[0]).toContain('writable by group or others');
    },
  );

  it('when JWT_PRIVATE_KEY signs and KEYS_DIR does not exist, then a reload succeeds', async () => {
    const missing = path.join(folder, 'none');
    const load = keyFolderReloader({ keysDir: missing, jwtPrivateKey: generateRsaPem().privatePem });
    const failures: string[] = [];
    const ring = createKeyRing({ initial: await load(), load, onReloadFailed: (reason) => failures.push(reason) });

    expect(await ring.reload()).toEqual({ ok: true, changed: false });
    expect(failures).toEqual([]);
  });

  const runsAsRoot = process.getuid?.() === 0;
  (runsAsRoot ? it : it.skip)(
    'when a reload finds a key file owned by another user, then the reading is refused and the keys in use stay',
    async () => {
      const { ring, failures } = await ringOver();
      const added = await writeNewKeyPair(folder, new Date(), new Date());
      await fs.chown(added.publicFile, 4242, 4242);

      expect(await ring.reload()).toEqual({ ok: false, changed: false });

      expect(ring.signingKey(new Date()).kid).toBe(first.kid);
      expect(failures).toEqual([expect.stringContaining(`${path.basename(added.publicFile)}: owned by uid 4242`)]);
    },
  );

  (runsAsRoot ? it : it.skip)('when the folder and its key files belong to one provisioning user, then a reload reads them', async () => {
    const { ring, failures } = await ringOver();
    const added = await writeNewKeyPair(folder, new Date(), new Date());
    for (const file of [folder, first.privateFile, first.publicFile, added.privateFile, added.publicFile]) await fs.chown(file, 4242, 4242);

    expect(await ring.reload()).toEqual({ ok: true, changed: true });

    expect(ring.signingKey(new Date()).kid).toBe(added.kid);
    expect(failures).toEqual([]);
  });
});
