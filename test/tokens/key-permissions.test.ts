import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadKeyStore, writeNewKeyPair } from '../../src/tokens/keys';

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
