import { createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main as generateKey } from '../../scripts/keys-generate';
import { main as listKeys } from '../../scripts/keys-list';
import { main as retireKey } from '../../scripts/keys-retire';
import type { ScriptIo } from '../../scripts/cli';
import { buildKeyStore, readKeyFiles, thumbprint } from '../../src/tokens/keys';
import { generateRsaPem } from '../helpers/keys';

// keys:generate --activate-in / --now, keys:list's states and keys:retire's safety rule, run
// in-process on a test clock (scripts/keys-*.ts take one after `io`).

const T0 = new Date('2026-06-01T12:00:00.000Z');
const older = generateRsaPem();
const newer = generateRsaPem();
const kidOf = (publicPem: string) => thumbprint(createPublicKey(publicPem));

let tempDirs: string[] = [];
async function keysDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-keys-rotation-'));
  tempDirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  tempDirs = [];
});

async function run(
  main: (argv: string[], io: ScriptIo, clock: () => Date) => Promise<number>,
  argv: string[],
  env: Record<string, string>,
  now: Date,
) {
  let stdout = '';
  let stderr = '';
  const io: ScriptIo = {
    env: { JWT_PRIVATE_KEY: '', ...env },
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  };
  const code = await main(argv, io, () => new Date(now));
  return { code, stdout, stderr };
}

/** A folder with the older key (created a day before T0) and, when asked, a newer one. */
async function folderWith(newerName?: string): Promise<string> {
  const dir = await keysDir();
  await fs.writeFile(path.join(dir, '20260531T120000Z-older000.key.pem'), older.privatePem, { mode: 0o600 });
  await fs.writeFile(path.join(dir, '20260531T120000Z-older000.pub.pem'), older.publicPem);
  if (newerName) await fs.writeFile(path.join(dir, newerName), newer.privatePem, { mode: 0o600 });
  return dir;
}

describe('keys:generate', () => {
  it.each<{ args: string[]; env: Record<string, string>; delay: number; why: string }>([
    { args: [], env: {}, delay: 420, why: 'the default: JWKS max-age 300 + KEYS_RELOAD_INTERVAL 60 + 60' },
    { args: [], env: { KEYS_RELOAD_INTERVAL: '5' }, delay: 365, why: 'the default follows KEYS_RELOAD_INTERVAL' },
    { args: ['--activate-in', '10'], env: {}, delay: 10, why: '--activate-in' },
    { args: ['--now'], env: {}, delay: 0, why: '--now' },
  ])('when a key already signs and it is run with $why, then the new key signs $delay s later', async ({ args, env, delay }) => {
    const dir = await folderWith();

    const run1 = await run(generateKey, args, { KEYS_DIR: dir, ...env }, T0);

    expect(run1.code).toBe(0);
    const activation = new Date(T0.getTime() + delay * 1000);
    const store = buildKeyStore(await readKeyFiles(dir), undefined, T0);
    const kid = /kid\s+(\S+)/.exec(run1.stdout)![1]!;
    expect(store.published.get(kid)?.activatesAt).toEqual(activation);
    expect(run1.stdout).toContain(activation.toISOString().replace('.000Z', 'Z'));
    expect(store.signingAt(new Date(activation.getTime() - 1000)).kid).toBe(kidOf(older.publicPem));
    expect(store.signingAt(activation).kid).toBe(kid);
  });

  it('when KEYS_DIR holds no key yet, then the first key signs at once', async () => {
    const dir = await keysDir();

    const generated = await run(generateKey, [], { KEYS_DIR: dir }, T0);

    expect(generated.code).toBe(0);
    expect(buildKeyStore(await readKeyFiles(dir), undefined, T0).stateAt(/kid\s+(\S+)/.exec(generated.stdout)![1]!, T0)).toBe('signing');
  });

  it('when --activate-in is shorter than the safe delay, then it says what may be refused', async () => {
    const dir = await folderWith();

    const generated = await run(generateKey, ['--activate-in', '10'], { KEYS_DIR: dir }, T0);

    expect(generated.stdout).toMatch(/Warning: 10 s is less than/);
  });

  it.each([
    ['--activate-in with --now', ['--activate-in', '10', '--now']],
    ['a negative delay', ['--activate-in=-5']],
    ['a delay that is not whole seconds', ['--activate-in', '1.5']],
  ])('when given %s, then it exits 1 and writes nothing', async (_what, args) => {
    const dir = await folderWith();

    const refused = await run(generateKey, args, { KEYS_DIR: dir }, T0);

    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^keys:generate: /);
    expect(await fs.readdir(dir)).toHaveLength(2);
  });
});

describe('keys:list', () => {
  it('when a newer key is pending, then it shows it as pending with its activation time, and which key signs', async () => {
    const dir = await folderWith('20260601T120000Z-newer000.from-20260601T120700Z.key.pem');

    const listed = await run(listKeys, [], { KEYS_DIR: dir }, T0);

    expect(listed.code).toBe(0);
    const rows = listed.stdout.split('\n').filter((line) => /^[A-Za-z0-9_-]{43}\s.*\s(signing|pending|published)$/.test(line));
    expect(rows.map((row) => row.split(/\s+/))).toEqual([
      [kidOf(older.publicPem), '2026-05-31T12:00:00Z', '2026-05-31T12:00:00Z', '20260531T120000Z-older000.key.pem', 'signing'],
      [
        kidOf(newer.publicPem),
        '2026-06-01T12:00:00Z',
        '2026-06-01T12:07:00Z',
        '20260601T120000Z-newer000.from-20260601T120700Z.key.pem',
        'pending',
      ],
    ]);
    expect(listed.stdout).toContain(`${kidOf(newer.publicPem)} is pending: it signs from 2026-06-01T12:07:00Z (in 420 s)`);
  });

  it('when the activation time has passed, then the newer key signs and the older one is published only', async () => {
    const dir = await folderWith('20260601T120000Z-newer000.from-20260601T120700Z.key.pem');

    const listed = await run(listKeys, [], { KEYS_DIR: dir }, new Date('2026-06-01T12:07:00Z'));

    expect(listed.stdout).toMatch(new RegExp(`${kidOf(older.publicPem)}\\s.*\\spublished\\n`));
    expect(listed.stdout).toMatch(new RegExp(`${kidOf(newer.publicPem)}\\s.*\\ssigning\\n`));
  });
});

describe('keys:retire', () => {
  // The newer key signs from 12:07:00; with ACCESS_TOKEN_TTL 900 and 30 s of tolerance, the
  // older one's last token may live until 12:22:30.
  const NEWER = '20260601T120000Z-newer000.from-20260601T120700Z.key.pem';
  const env = (dir: string) => ({ KEYS_DIR: dir, ACCESS_TOKEN_TTL: '900' });

  it('when a token the old key signed may still be live, then it refuses, says when it becomes safe, and moves nothing', async () => {
    const dir = await folderWith(NEWER);

    const refused = await run(retireKey, ['--kid', kidOf(older.publicPem)], env(dir), new Date('2026-06-01T12:22:29Z'));

    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('2026-06-01T12:22:30Z (in 1 s');
    expect(refused.stderr).toContain('--force');
    expect((await fs.readdir(dir)).sort()).not.toContain('retired');
  });

  it('when that time has come, then it retires the old key', async () => {
    const dir = await folderWith(NEWER);

    const retired = await run(retireKey, ['--kid', kidOf(older.publicPem)], env(dir), new Date('2026-06-01T12:22:30Z'));

    expect(retired.code).toBe(0);
    expect((await fs.readdir(path.join(dir, 'retired'))).sort()).toEqual([
      '20260531T120000Z-older000.key.pem',
      '20260531T120000Z-older000.pub.pem',
    ]);
  });

  it('when --force is given too soon, then it retires the key and says live tokens will be refused', async () => {
    const dir = await folderWith(NEWER);

    const forced = await run(retireKey, ['--kid', kidOf(older.publicPem), '--force'], env(dir), new Date('2026-06-01T12:08:00Z'));

    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('Forced');
    expect(await fs.readdir(path.join(dir, 'retired'))).toHaveLength(2);
  });

  it('when the key signs now, then even --force does not retire it', async () => {
    const dir = await folderWith(NEWER);

    const refused = await run(retireKey, ['--kid', kidOf(older.publicPem), '--force'], env(dir), T0);

    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('signing key');
  });

  it('when the key is pending, then it is retired at once: it never signed', async () => {
    const dir = await folderWith(NEWER);

    const retired = await run(retireKey, ['--kid', kidOf(newer.publicPem)], env(dir), T0);

    expect(retired.code).toBe(0);
    expect(retired.stdout).toContain('never signed');
    expect(await fs.readdir(path.join(dir, 'retired'))).toEqual([NEWER]);
  });
});
