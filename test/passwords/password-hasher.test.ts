import bcrypt from 'bcryptjs';
import {
  type BcryptEngine,
  createPasswordHasher,
  createPasswordHasherOn,
  createPooledPasswordHasher,
  type PasswordHasher,
} from '../../src/passwords/password-hasher';

/** 72 bytes of ASCII: exactly as much as bcrypt reads. */
const AT_LIMIT = 'k9#'.repeat(24);
/** Has composed letters (é U+00E9, è, û): NFC and NFKC, different from its NFD. */
const COMPOSED = 'Crème brûlée à la française';
const DECOMPOSED = COMPOSED.normalize('NFD');

describe.each([
  ['on the calling thread', () => createPasswordHasher(4)],
  ['in worker threads', () => createPooledPasswordHasher(4, 2)],
])('password hasher %s', (_name, create) => {
  let hasher: PasswordHasher;
  beforeAll(() => {
    hasher = create();
  });
  afterAll(async () => {
    await hasher.close();
  });

  it('when a password is hashed, then it is a bcrypt hash at the cost that verifies only that password', async () => {
    const hash = await hasher.hash('correct horse battery staple');
    expect(hash).toMatch(/^\$2[aby]\$04\$/);
    await expect(hasher.verify('correct horse battery staple', hash)).resolves.toBe(true);
    await expect(hasher.verify('correct horse battery stapl', hash)).resolves.toBe(false);
  });

  it('when many hashes run at once, then each verifies its own password', async () => {
    const passwords = Array.from({ length: 8 }, (_, i) => `passphrase number ${i}`);
    const hashes = await Promise.all(passwords.map((p) => hasher.hash(p)));
    const checks = await Promise.all(passwords.map((p, i) => hasher.verify(p, hashes[(i + 1) % hashes.length]!)));
    expect(checks).toEqual(passwords.map(() => false));
    await expect(Promise.all(passwords.map((p, i) => hasher.verify(p, hashes[i]!)))).resolves.toEqual(passwords.map(() => true));
  });

  it('when nobody is verified, then it answers false after doing the work', async () => {
    await expect(hasher.verifyNobody('anything at all')).resolves.toBe(false);
  });

  describe('72-byte limit (never compared truncated)', () => {
    it.each([
      ['one more ASCII letter', 'x'],
      ['a trailing space', ' '],
      ['a multibyte character', '€'],
      ['a long tail', 'k9#'.repeat(10)],
    ])('when a 72-byte password is given with %s, then it does not verify', async (_case, suffix) => {
      const hash = await hasher.hash(AT_LIMIT);
      await expect(hasher.verify(AT_LIMIT + suffix, hash)).resolves.toBe(false);
    });

    it('when the password is exactly 72 bytes, then it verifies', async () => {
      await expect(hasher.verify(AT_LIMIT, await hasher.hash(AT_LIMIT))).resolves.toBe(true);
    });

    it('when asked to hash more than 72 bytes after normalisation, then it refuses rather than truncate', async () => {
      await expect(hasher.hash(`${AT_LIMIT}x`)).rejects.toThrow(TypeError);
    });
  });

  describe('NFKC normalisation', () => {
    it.each([
      ['composed, verified decomposed', COMPOSED, DECOMPOSED],
      ['decomposed, verified composed', DECOMPOSED, COMPOSED],
      ['in fullwidth letters, verified in ASCII', 'ｆｕｌｌｗｉｄｔｈ ｐａｓｓ', 'fullwidth pass'],
      ['with a ligature, verified spelt out', 'ﬁne print matters', 'fine print matters'],
    ])('when a password is hashed %s, then it verifies', async (_case, registered, typed) => {
      const hash = await hasher.hash(registered);
      await expect(hasher.verify(typed, hash)).resolves.toBe(true);
      await expect(hasher.verify(`${typed}!`, hash)).resolves.toBe(false);
    });

    it('when the hash is of the NFKC form, then it is the same hash input as the normalised text', async () => {
      // What is stored is bcrypt(NFKC(password)): a plain bcrypt check of the normalised text agrees.
      const hash = await hasher.hash(DECOMPOSED);
      expect(bcrypt.compareSync(COMPOSED, hash)).toBe(true);
      expect(bcrypt.compareSync(DECOMPOSED, hash)).toBe(false);
    });

    it('when 108 raw bytes normalise to 72, then the normalised length is what counts', async () => {
      const composed = 'é'.repeat(36); // 72 bytes; decomposed it is 108
      const hash = await hasher.hash(composed.normalize('NFD'));
      await expect(hasher.verify(composed.normalize('NFD'), hash)).resolves.toBe(true);
      await expect(hasher.verify(composed, hash)).resolves.toBe(true);
    });

    it('when a hash predates normalisation (bcrypt of the raw decomposed text), then that raw text still verifies', async () => {
      const legacy = bcrypt.hashSync(DECOMPOSED, 4);
      await expect(hasher.verify(DECOMPOSED, legacy)).resolves.toBe(true);
      await expect(hasher.verify(`${DECOMPOSED}!`, legacy)).resolves.toBe(false);
    });
  });
});

/** Real bcryptjs, counting its comparisons: how much bcrypt work a check costs, without a clock. */
function countingEngine(): BcryptEngine & { compares: number } {
  const engine = {
    compares: 0,
    hash: (password: string, cost: number) => bcrypt.hash(password, cost),
    compare: (password: string, hash: string) => {
      engine.compares += 1;
      return bcrypt.compare(password, hash);
    },
  };
  return engine;
}

describe('password hasher timing (bcrypt comparisons per check)', () => {
  const engine = countingEngine();
  const hasher = createPasswordHasherOn(engine, 4);
  let hash: string;
  let legacy: string;
  beforeAll(async () => {
    hash = await hasher.hash(AT_LIMIT);
    legacy = bcrypt.hashSync(DECOMPOSED, 4); // made before normalisation
    await hasher.verifyNobody('warms the dummy hash');
  });

  const comparesOf = async (check: () => Promise<boolean>) => {
    const before = engine.compares;
    const result = await check();
    return { result, compares: engine.compares - before };
  };

  it.each([
    ['the right password', () => hasher.verify(AT_LIMIT, hash), true],
    ['a wrong password', () => hasher.verify('not the right one at all', hash), false],
    ['72 bytes plus a suffix', () => hasher.verify(`${AT_LIMIT}x`, hash), false],
    ['far over 72 bytes', () => hasher.verify('€'.repeat(200), hash), false],
    ['an unknown account', () => hasher.verifyNobody(`${AT_LIMIT}x`), false],
  ])('when checking %s (already NFKC), then it costs exactly one bcrypt comparison', async (_case, check, expected) => {
    await expect(comparesOf(check)).resolves.toEqual({ result: expected, compares: 1 });
  });

  it.each([
    ['its own legacy hash, matching the raw form', () => hasher.verify(DECOMPOSED, legacy), true],
    ['a hash it does not match in either form', () => hasher.verify(DECOMPOSED, hash), false],
    ['an unknown account', () => hasher.verifyNobody(DECOMPOSED), false],
    ['a raw form over 72 bytes', () => hasher.verify('é'.repeat(36).normalize('NFD'), hash), false],
    ['an unknown account, raw form over 72 bytes', () => hasher.verifyNobody('é'.repeat(36).normalize('NFD')), false],
  ])(
    'when a non-NFKC password is checked against %s, then it costs two comparisons whatever the outcome',
    async (_case, check, expected) => {
      await expect(comparesOf(check)).resolves.toEqual({ result: expected, compares: 2 });
    },
  );

  it('when a non-NFKC password matches in its normalised form, then it still costs two comparisons', async () => {
    const normalised = await hasher.hash(DECOMPOSED);
    await expect(comparesOf(() => hasher.verify(DECOMPOSED, normalised))).resolves.toEqual({ result: true, compares: 2 });
  });
});
