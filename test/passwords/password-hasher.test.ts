import { createPasswordHasher, createPooledPasswordHasher, type PasswordHasher } from '../../src/passwords/password-hasher';

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
});
