import { createPublicKey, generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import type * as NodeCrypto from 'node:crypto';
import type * as NodeUtil from 'node:util';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildKeyStore, KeyError, loadKeyStore, thumbprint } from '../../src/tokens/keys';
import { generateRsaPem } from '../helpers/keys';

// RSA generation is slow: every key these tests need is made once, here.
const older = generateRsaPem();
const newer = generateRsaPem();
const kidOf = (publicPem: string) => thumbprint(createPublicKey(publicPem));

const OLDER_FILE = '20260101T000000Z-older.key.pem';
const NEWER_FILE = '20260301T000000Z-newer.key.pem';

let tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-keys-'));
  tempDirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  tempDirs = [];
});

describe('thumbprint', () => {
  it('when given the RSA key of RFC 7638 section 3.1, then it returns the thumbprint printed there', () => {
    const jwk: JsonWebKey = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
    };
    expect(thumbprint(createPublicKey({ key: jwk, format: 'jwk' }))).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });
});

describe('buildKeyStore', () => {
  it('when a folder holds several private keys, then the newest by file name signs and every key is published', () => {
    // Listed newest first, so that only sorting by name can pick the right one.
    const store = buildKeyStore([
      { name: NEWER_FILE, pem: newer.privatePem },
      { name: OLDER_FILE, pem: older.privatePem },
    ]);

    expect(store.signing.kid).toBe(kidOf(newer.publicPem));
    expect(store.signing.source).toBe(NEWER_FILE);
    expect(new Set(store.published.keys())).toEqual(new Set([kidOf(older.publicPem), kidOf(newer.publicPem)]));
    expect(store.jwks.keys.map((k) => k.kid).sort()).toEqual([kidOf(older.publicPem), kidOf(newer.publicPem)].sort());
  });

  it('when a public key has no private half, then it is published but does not sign', () => {
    const store = buildKeyStore([
      { name: OLDER_FILE, pem: older.privatePem },
      { name: '20260301T000000Z-newer.pub.pem', pem: newer.publicPem },
    ]);

    expect(store.signing.kid).toBe(kidOf(older.publicPem));
    expect(store.published.has(kidOf(newer.publicPem))).toBe(true);
    expect(store.jwks.keys).toHaveLength(2);
  });

  it.each([
    ['as PEM text', (pem: string) => pem],
    ['with its newlines flattened to literal "\\n"', (pem: string) => pem.replace(/\n/g, '\\n')],
  ])('when JWT_PRIVATE_KEY is given %s, then it signs instead of the newest file and is published', (_name, asEnv) => {
    const store = buildKeyStore([{ name: NEWER_FILE, pem: newer.privatePem }], asEnv(older.privatePem));

    expect(store.signing.kid).toBe(kidOf(older.publicPem));
    expect(store.signing.source).toBe('JWT_PRIVATE_KEY');
    expect(new Set(store.published.keys())).toEqual(new Set([kidOf(older.publicPem), kidOf(newer.publicPem)]));
  });

  it('when the only input is JWT_PRIVATE_KEY, then it signs', () => {
    const store = buildKeyStore([], older.privatePem);
    expect(store.signing.kid).toBe(kidOf(older.publicPem));
  });

  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pemOf = {
    weakPrivate: weak.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    weakPublic: weak.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ecPrivate: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    ecPublic: ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
  const GARBAGE = '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n';

  it.each([
    ['a 1024-bit RSA private key', '20260101T000000Z-weak.key.pem', () => pemOf.weakPrivate],
    ['a 1024-bit RSA public key', '20260101T000000Z-weak.pub.pem', () => pemOf.weakPublic],
    ['an EC private key', '20260101T000000Z-ec.key.pem', () => pemOf.ecPrivate],
    ['an EC public key', '20260101T000000Z-ec.pub.pem', () => pemOf.ecPublic],
    ['a private key file of garbage', '20260101T000000Z-garbage.key.pem', () => GARBAGE],
    ['a public key file of garbage', '20260101T000000Z-garbage.pub.pem', () => GARBAGE.replace(/PRIVATE/g, 'PUBLIC')],
  ])('when a folder holds %s, then it is refused with a KeyError naming the file', (_name, fileName, pem) => {
    // Next to a good key, so the refusal is about this file and not a missing signing key.
    const build = () =>
      buildKeyStore([
        { name: NEWER_FILE, pem: newer.privatePem },
        { name: fileName, pem: pem() },
      ]);

    expect(build).toThrow(KeyError);
    expect(build).toThrow(fileName);
  });

  it.each([
    ['a weak key', () => pemOf.weakPrivate],
    ['an EC key', () => pemOf.ecPrivate],
    ['garbage', () => GARBAGE],
  ])('when JWT_PRIVATE_KEY is %s, then it is refused with a KeyError naming JWT_PRIVATE_KEY', (_name, pem) => {
    const build = () => buildKeyStore([], pem());

    expect(build).toThrow(KeyError);
    expect(build).toThrow('JWT_PRIVATE_KEY');
  });

  it('when a KeyError is raised for a bad file, then its message does not carry the key material', () => {
    let message = '';
    try {
      buildKeyStore([{ name: '20260101T000000Z-weak.key.pem', pem: pemOf.weakPrivate }]);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('20260101T000000Z-weak.key.pem');
    expect(message).not.toMatch(/BEGIN|PRIVATE KEY/);
  });

  it.each([
    ['no files at all', []],
    ['only a public key', [{ name: '20260101T000000Z-older.pub.pem', pem: older.publicPem }]],
  ])('when given %s, then it throws KeyError: nothing could sign', (_name, files) => {
    expect(() => buildKeyStore(files)).toThrow(KeyError);
  });
});

describe('loadKeyStore', () => {
  it('when KEYS_DIR is empty and generation is allowed, then it writes a 0600 private key and its public key, reports it and signs with it', async () => {
    const dir = await tempDir();
    const generated: Array<{ kid: string; file: string }> = [];

    const store = await loadKeyStore({ keysDir: dir, generateIfMissing: true, onGenerated: (kid, file) => generated.push({ kid, file }) });

    const names = (await fs.readdir(dir)).sort();
    expect(names).toEqual([expect.stringMatching(/\.key\.pem$/), expect.stringMatching(/\.pub\.pem$/)]);
    const privateFile = path.join(dir, names[0]!);
    expect((await fs.stat(privateFile)).mode & 0o777).toBe(0o600);
    expect(generated).toEqual([{ kid: store.signing.kid, file: privateFile }]);
    expect(kidOf(await fs.readFile(path.join(dir, names[1]!), 'utf8'))).toBe(store.signing.kid);
    expect(store.signing.publicKey.asymmetricKeyDetails?.modulusLength).toBeGreaterThanOrEqual(2048);
  });

  it('when KEYS_DIR is empty and generation is not allowed, then it throws KeyError and writes nothing', async () => {
    const dir = await tempDir();

    await expect(loadKeyStore({ keysDir: dir, generateIfMissing: false })).rejects.toThrow(KeyError);
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('when KEYS_DIR does not exist and generation is not allowed, then it throws KeyError', async () => {
    const dir = path.join(await tempDir(), 'missing');
    await expect(loadKeyStore({ keysDir: dir, generateIfMissing: false })).rejects.toThrow(KeyError);
  });

  it('when KEYS_DIR is empty but JWT_PRIVATE_KEY is set, then that key signs and nothing is generated', async () => {
    const dir = await tempDir();
    const onGenerated = jest.fn();

    const store = await loadKeyStore({ keysDir: dir, jwtPrivateKey: older.privatePem, generateIfMissing: true, onGenerated });

    expect(store.signing.kid).toBe(kidOf(older.publicPem));
    expect(onGenerated).not.toHaveBeenCalled();
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('when KEYS_DIR holds key files, then the newest signs and all are published', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, OLDER_FILE), older.privatePem);
    await fs.writeFile(path.join(dir, NEWER_FILE), newer.privatePem);
    await fs.writeFile(path.join(dir, 'README.txt'), 'not a key');

    const store = await loadKeyStore({ keysDir: dir, generateIfMissing: true });

    expect(store.signing.kid).toBe(kidOf(newer.publicPem));
    expect(store.published.size).toBe(2);
    expect((await fs.readdir(dir)).sort()).toEqual([OLDER_FILE, NEWER_FILE, 'README.txt'].sort());
  });
});

describe('writeNewKeyPair', () => {
  it('when a key pair by the same name already exists, then it refuses and leaves the existing files untouched', async () => {
    const dir = await tempDir();
    const now = new Date('2026-05-01T12:00:00Z');

    // File names are <stamp>-<kid prefix>: only the same key at the same second collides,
    // so key generation is pinned to one pair for this test.
    await jest.isolateModulesAsync(async () => {
      jest.doMock('node:crypto', () => {
        const actual = jest.requireActual<typeof NodeCrypto>('node:crypto');
        const { promisify } = jest.requireActual<typeof NodeUtil>('node:util');
        const pinned = () => undefined;
        Object.defineProperty(pinned, promisify.custom, {
          value: async () => ({ privateKey: older.privateKey, publicKey: createPublicKey(older.privateKey) }),
        });
        return { ...actual, generateKeyPair: pinned };
      });
      const keys = await import('../../src/tokens/keys');

      const first = await keys.writeNewKeyPair(dir, now);
      const publicBefore = await fs.readFile(first.publicFile, 'utf8');
      // Make the overwrite observable: a rewrite would restore the original content.
      await fs.writeFile(first.privateFile, 'sentinel', { mode: 0o600 });

      await expect(keys.writeNewKeyPair(dir, now)).rejects.toMatchObject({ code: 'EEXIST' });

      expect(first.kid).toBe(kidOf(older.publicPem));
      expect(await fs.readFile(first.privateFile, 'utf8')).toBe('sentinel');
      expect(await fs.readFile(first.publicFile, 'utf8')).toBe(publicBefore);
      expect((await fs.readdir(dir)).length).toBe(2);
    });
    jest.dontMock('node:crypto');
  });
});
