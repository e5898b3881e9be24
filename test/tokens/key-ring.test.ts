import { createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildKeyStore,
  createKeyRing,
  type KeyRingChange,
  loadKeyStore,
  readKeyFiles,
  retirementOf,
  thumbprint,
  writeNewKeyPair,
} from '../../src/tokens/keys';
import { generateRsaPem } from '../helpers/keys';

// The signing key as a function of time, the reloadable ring and the retirement rule
// (src/tokens/keys.ts). test/instances/key-rotation.test.ts runs a whole rotation on two instances.

const older = generateRsaPem();
const newer = generateRsaPem();
const third = generateRsaPem();
const kidOf = (publicPem: string) => thumbprint(createPublicKey(publicPem));

const T0 = new Date('2026-06-01T12:00:00Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

// Created at T0 − 1 day (no activation time: active since its creation); the newer one created
// at T0, activating at T0 + 420 s.
const OLDER_FILE = '20260531T120000Z-older000.key.pem';
const NEWER_FILE = '20260601T120000Z-newer000.from-20260601T120700Z.key.pem';
const NEWER_PUBLIC = '20260601T120000Z-newer000.pub.pem';

const rotating = [
  { name: OLDER_FILE, pem: older.privatePem },
  { name: NEWER_FILE, pem: newer.privatePem },
];

let tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-ring-'));
  tempDirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  tempDirs = [];
});

describe('a key with an activation time', () => {
  it.each([
    { when: 'before its activation', seconds: 419, signs: 'older', states: { older: 'signing', newer: 'pending' } },
    { when: 'at its activation', seconds: 420, signs: 'newer', states: { older: 'published', newer: 'signing' } },
    { when: 'long after it', seconds: 86_400, signs: 'newer', states: { older: 'published', newer: 'signing' } },
  ] as const)('when the time is $when, then the $signs key signs and both are published', ({ seconds, signs, states }) => {
    const store = buildKeyStore(rotating);
    const kids = { older: kidOf(older.publicPem), newer: kidOf(newer.publicPem) };

    expect(store.signingAt(at(seconds)).kid).toBe(kids[signs]);
    expect(store.jwks.keys.map((key) => key.kid).sort()).toEqual([kids.older, kids.newer].sort());
    expect(store.stateAt(kids.older, at(seconds))).toBe(states.older);
    expect(store.stateAt(kids.newer, at(seconds))).toBe(states.newer);
  });

  it('when the only private key is still pending, then it signs (nothing else can) and is reported as signing', () => {
    const store = buildKeyStore([{ name: NEWER_FILE, pem: newer.privatePem }]);

    expect(store.signingAt(at(0)).kid).toBe(kidOf(newer.publicPem));
    expect(store.stateAt(kidOf(newer.publicPem), at(0))).toBe('signing');
  });

  it('when JWT_PRIVATE_KEY is set, then it signs at every moment and no file key is pending', () => {
    const store = buildKeyStore(rotating, third.privatePem);

    for (const seconds of [0, 420, 86_400]) expect(store.signingAt(at(seconds)).kid).toBe(kidOf(third.publicPem));
    expect(store.stateAt(kidOf(newer.publicPem), at(0))).toBe('published');
    expect(store.signingSpan(at(0))).toEqual({ from: -Infinity, until: Infinity });
  });

  it('when asked for the span of the signing key, then it ends at the next activation instant', () => {
    const store = buildKeyStore(rotating);

    expect(store.signingSpan(at(0))).toEqual({ from: Date.parse('2026-05-31T12:00:00Z'), until: at(420).getTime() });
    expect(store.signingSpan(at(420))).toEqual({ from: at(420).getTime(), until: Infinity });
  });

  it('when keys:generate writes a key with an activation time, then its file name carries it and the store reads it back', async () => {
    const dir = await tempDir();

    const written = await writeNewKeyPair(dir, T0, at(420));

    expect(path.basename(written.privateFile)).toMatch(/^20260601T120000Z-.{8}\.from-20260601T120700Z\.key\.pem$/);
    expect(written.activatesAt).toEqual(at(420));
    const store = buildKeyStore(await readKeyFiles(dir));
    expect(store.published.get(written.kid)?.activatesAt).toEqual(at(420));
    // Only the two PEM files: the temporary names are gone.
    expect((await fs.readdir(dir)).sort()).toEqual([path.basename(written.privateFile), path.basename(written.publicFile)].sort());
  });
});

describe('the key ring', () => {
  async function ringOver(dir: string, now: () => Date) {
    const changes: KeyRingChange[] = [];
    const failures: string[] = [];
    const load = () => loadKeyStore({ keysDir: dir, generateIfMissing: false, now: now() });
    const ring = createKeyRing({
      initial: await load(),
      load,
      clock: now,
      onChange: (change) => changes.push(change),
      onReloadFailed: (reason) => failures.push(reason),
    });
    return { ring, changes, failures };
  }

  it('when a key is added to the folder, then a reload publishes it at once and it signs from its activation time', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, OLDER_FILE), older.privatePem, { mode: 0o600 });
    const { ring, changes } = await ringOver(dir, () => at(0));

    await fs.writeFile(path.join(dir, NEWER_FILE), newer.privatePem, { mode: 0o600 });
    const outcome = await ring.reload();

    expect(outcome).toEqual({ ok: true, changed: true });
    expect(ring.current().jwks.keys.map((key) => key.kid)).toContain(kidOf(newer.publicPem));
    expect(ring.signingKey(at(419)).kid).toBe(kidOf(older.publicPem));
    expect(ring.signingKey(at(420)).kid).toBe(kidOf(newer.publicPem));
    // Back in time too: the cached key is only reused within its span.
    expect(ring.signingKey(at(10)).kid).toBe(kidOf(older.publicPem));
    expect(changes).toEqual([
      {
        added: [kidOf(newer.publicPem)],
        removed: [],
        signing: kidOf(older.publicPem),
        pending: [{ kid: kidOf(newer.publicPem), activatesAt: at(420).toISOString() }],
      },
    ]);
  });

  it('when nothing changed, then a reload reports no change and keeps the same key set', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, OLDER_FILE), older.privatePem, { mode: 0o600 });
    const { ring, changes } = await ringOver(dir, () => at(0));
    const before = ring.current();

    await expect(ring.reload()).resolves.toEqual({ ok: true, changed: false });
    expect(changes).toEqual([]);
    expect(ring.current().jwks).toEqual(before.jwks);
  });

  it('when a key is retired (moved away), then a reload stops publishing it', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, OLDER_FILE), older.privatePem, { mode: 0o600 });
    await fs.writeFile(path.join(dir, NEWER_FILE.replace(/\.from-\w+/, '')), newer.privatePem, { mode: 0o600 });
    const { ring, changes } = await ringOver(dir, () => at(0));

    await fs.mkdir(path.join(dir, 'retired'));
    await fs.rename(path.join(dir, OLDER_FILE), path.join(dir, 'retired', OLDER_FILE));
    await ring.reload();

    expect(ring.current().published.has(kidOf(older.publicPem))).toBe(false);
    expect(changes.map((change) => change.removed)).toEqual([[kidOf(older.publicPem)]]);
  });

  // A folder that fails to load: the ring keeps what it has and says why, naming the file only.
  it.each([
    {
      what: 'a private key file that is not PEM',
      breakIt: (dir: string) => fs.writeFile(path.join(dir, NEWER_FILE), 'not a key', { mode: 0o600 }),
      reason: NEWER_FILE,
    },
    {
      what: 'a public key file that is not PEM',
      breakIt: (dir: string) => fs.writeFile(path.join(dir, NEWER_PUBLIC), 'garbage'),
      reason: NEWER_PUBLIC,
    },
    {
      what: 'no private key left',
      breakIt: (dir: string) => fs.rm(path.join(dir, OLDER_FILE)),
      reason: 'no signing key',
    },
    {
      what: 'an unreadable private key file',
      breakIt: async (dir: string) => {
        await fs.writeFile(path.join(dir, NEWER_FILE), newer.privatePem, { mode: 0o600 });
        // A directory by a key's name cannot be read as a file (also when the tests run as root).
        await fs.rm(path.join(dir, NEWER_FILE));
        await fs.mkdir(path.join(dir, NEWER_FILE));
      },
      reason: NEWER_FILE,
    },
  ])('when KEYS_DIR holds $what, then a reload keeps the keys in use and reports why without key content', async ({ breakIt, reason }) => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, OLDER_FILE), older.privatePem, { mode: 0o600 });
    const { ring, changes, failures } = await ringOver(dir, () => at(0));
    const before = ring.current();

    await breakIt(dir);
    const outcome = await ring.reload();

    expect(outcome).toEqual({ ok: false, changed: false });
    expect(ring.current()).toBe(before);
    expect(ring.signingKey(at(0)).kid).toBe(kidOf(older.publicPem));
    expect(changes).toEqual([]);
    expect(failures).toEqual([expect.stringContaining(reason)]);
    expect(failures.join('\n')).not.toContain('PRIVATE KEY');
  });

  it('when reloads overlap, then they share one reading', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, OLDER_FILE), older.privatePem, { mode: 0o600 });
    let readings = 0;
    const load = () => {
      readings++;
      return loadKeyStore({ keysDir: dir, generateIfMissing: false });
    };
    const ring = createKeyRing({ initial: await load(), load });
    readings = 0;

    await Promise.all([ring.reload(), ring.reload(), ring.reload()]);

    expect(readings).toBe(1);
  });
});

describe('retirementOf', () => {
  const rules = { accessTokenTtl: 900, reloadInterval: 60, clockTolerance: 30 };
  const store = buildKeyStore([...rotating, { name: '20260601T130000Z-third000.key.pem', pem: third.privatePem }]);
  const kids = { older: kidOf(older.publicPem), newer: kidOf(newer.publicPem), third: kidOf(third.publicPem) };

  it('when the key signs now, then it may not be retired', () => {
    expect(retirementOf(store, kids.older, at(0), rules)).toEqual({ ok: false, why: 'signing' });
  });

  it('when the key is pending, then it may be retired at once: it never signed', () => {
    expect(retirementOf(store, kids.newer, at(0), rules)).toEqual({ ok: true, why: 'pending' });
  });

  it('when the pending key starts signing sooner than every instance re-reads the folder, then it may not be retired without force', () => {
    // The newer key activates at T0 + 420 s; instances may read a retirement up to 60 s (+ 60 s margin) late.
    expect(retirementOf(store, kids.newer, at(420 - 120), rules)).toEqual({ ok: false, why: 'activating', activatesAt: at(420) });
    expect(retirementOf(store, kids.newer, at(420 - 121), rules)).toEqual({ ok: true, why: 'pending' });
  });

  it('when a pending key will never sign (a newer key is active by then), then it may be retired at once, however soon it activates', () => {
    const shadowed = buildKeyStore([
      { name: '20260531T120000Z-older000.from-20260601T120010Z.key.pem', pem: older.privatePem },
      { name: '20260601T115000Z-newer000.key.pem', pem: newer.privatePem },
    ]);

    expect(retirementOf(shadowed, kids.older, at(0), rules)).toEqual({ ok: true, why: 'pending' });
  });

  it('when a newer key took over, then the old one is safe ACCESS_TOKEN_TTL plus the tolerance after that, not before', () => {
    // The newer key signs from T0 + 420 s (later than its creation + the reload interval).
    const safeAt = at(420 + 900 + 30);

    expect(retirementOf(store, kids.older, at(420 + 900 + 29), rules)).toEqual({ ok: false, why: 'too-soon', safeAt });
    expect(retirementOf(store, kids.older, safeAt, rules)).toEqual({ ok: true, why: 'superseded', safeSince: safeAt });
  });

  it('when the newer key was activated at once, then the old one may have signed until every instance re-read the folder', () => {
    const atOnce = buildKeyStore([
      { name: OLDER_FILE, pem: older.privatePem },
      { name: '20260601T120000Z-newer000.key.pem', pem: newer.privatePem },
    ]);

    expect(retirementOf(atOnce, kids.older, at(60 + 900 + 29), rules)).toMatchObject({ ok: false, why: 'too-soon', safeAt: at(990) });
    expect(retirementOf(atOnce, kids.older, at(990), rules)).toMatchObject({ ok: true });
  });

  it('when nothing newer is in the folder and JWT_PRIVATE_KEY signs, then when the key last signed is unknown', () => {
    const withEnv = buildKeyStore([{ name: OLDER_FILE, pem: older.privatePem }], third.privatePem);

    expect(retirementOf(withEnv, kids.older, at(0), rules)).toEqual({ ok: false, why: 'unknown-history' });
  });

  it('when the kid is not published, then it is unknown', () => {
    expect(retirementOf(store, kidOf(generateRsaPem().publicPem), at(0), rules)).toEqual({ ok: false, why: 'unknown-kid' });
  });
});
