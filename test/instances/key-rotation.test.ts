import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { main as generateKey } from '../../scripts/keys-generate';
import { main as listKeys } from '../../scripts/keys-list';
import { main as retireKey } from '../../scripts/keys-retire';
import type { ScriptIo } from '../../scripts/cli';
import { createApp } from '../../src/app';
import { addSeconds } from '../../src/clock';
import type { DatabaseHandle } from '../../src/db/database';
import { createLogger } from '../../src/logger';
import { createKeyRing, type KeyRing, loadKeyStore, writeNewKeyPair } from '../../src/tokens/keys';
import { createVerifier, type Verifier, VerifyError } from '../../src/verify';
import { createTestClock } from '../helpers/clock';
import { DATABASE_KINDS, type DatabaseKind, openTestDatabase } from '../helpers/databases';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { testConfig } from '../helpers/harness';

// Issue 12: a signing-key rotation on two running instances that share one KEYS_DIR and one
// database, with no restart. The instances listen on ports of this process; two
// gatehouse/verify verifiers (one per instance's JWKS, with their caches) check every token
// too. Time is a test clock shared by all of them: the instances' reload timers are played by
// the test at their own phases, as `reloadEvery` would fire them, and the operator commands
// run in-process on the same clock. At every step, every live token from either instance must
// be accepted by the other instance and by both verifiers.

const RELOAD_INTERVAL = 60;
const ACCESS_TOKEN_TTL = 300;
const STEP = 20;
/** Each instance's reload timer fires at these offsets within the interval: never together. */
const PHASES = { A: 0, B: 40 } as const;
const ENV = { ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL), KEYS_RELOAD_INTERVAL: String(RELOAD_INTERVAL) };

type Name = keyof typeof PHASES;

interface Instance {
  name: Name;
  baseUrl: string;
  ring: KeyRing;
  reloadFailures: string[];
  server: Server;
  user: { email: string };
  verifier: Verifier;
}

interface Issued {
  token: string;
  kid: string;
  by: Name;
  /** Seconds since the test began, when it was issued. */
  second: number;
  /** Unix seconds. */
  exp: number;
}

interface Refusal {
  second: number;
  by: Name;
  checkedBy: string;
  kid: string;
  outcome: string;
}

/** An operator command run in-process on the test's clock: exit code and output. */
async function run(
  main: (argv: string[], io: ScriptIo, clock: () => Date) => Promise<number>,
  argv: string[],
  env: Record<string, string>,
  clock: () => Date,
) {
  let stdout = '';
  let stderr = '';
  const io: ScriptIo = {
    env: { ...env, JWT_PRIVATE_KEY: '' },
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  };
  const code = await main(argv, io, clock);
  return { code, stdout, stderr };
}

/** keys:list's state column: kid → state. */
function statesOf(stdout: string): Record<string, string> {
  const states: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^([A-Za-z0-9_-]{43})\s.*\s(signing|pending|published)$/.exec(line.trim());
    if (match) states[match[1]!] = match[2]!;
  }
  return states;
}

describe.each(DATABASE_KINDS)('a key rotation on two instances sharing KEYS_DIR and the database (%s)', (kind: DatabaseKind) => {
  const clock = createTestClock(new Date());
  const keysDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-rotation-'));
  const scriptEnv = { ...ENV, KEYS_DIR: keysDir };
  const databases: DatabaseHandle[] = [];
  const instances = {} as Record<Name, Instance>;
  const issued: Issued[] = [];
  const refusals: Refusal[] = [];
  let elapsed = 0;
  let checks = 0;
  let oldKid: string;

  async function startInstance(name: Name, database: DatabaseHandle): Promise<Instance> {
    const reloadFailures: string[] = [];
    const load = () => loadKeyStore({ keysDir, generateIfMissing: false, now: clock.now() });
    const ring = createKeyRing({ initial: await load(), load, clock: clock.now, onReloadFailed: (reason) => reloadFailures.push(reason) });
    const app = createApp({
      config: testConfig({ ...ENV, KEYS_DIR: keysDir }),
      db: database.db,
      keys: ring,
      logger: createLogger('silent'),
      clock: clock.now,
      poolStats: database.poolStats,
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const user = { email: uniqueEmail(`rotation-${name}`) };
    const registered = await fetch(`${baseUrl}/auth/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: user.email, password: GOOD_PASSWORD }),
    });
    if (registered.status !== 201) throw new Error(`registration on ${name} failed: ${registered.status}`);
    // The verifier's JWKS cache and cooldown run on the shared clock (defaults: max-age 300 s, cooldown 30 s).
    const verifier = createVerifier({
      jwksUrl: `${baseUrl}/.well-known/jwks.json`,
      issuer: 'gatehouse',
      audience: 'gatehouse',
      maxTokenAge: ACCESS_TOKEN_TTL,
      clock: clock.now,
    });
    return { name, baseUrl, ring, reloadFailures, server, user, verifier };
  }

  beforeAll(async () => {
    // The key in use: generated a day ago, active since.
    const first = await writeNewKeyPair(keysDir, addSeconds(clock.now(), -86_400));
    oldKid = first.kid;
    const a = await openTestDatabase(kind);
    // The embedded database is one process's: there both instances share its handle.
    const b = kind === 'postgres' ? await openTestDatabase(kind) : a;
    databases.push(...new Set([a, b]));
    instances.A = await startInstance('A', a);
    instances.B = await startInstance('B', b);
  }, 60_000);

  afterAll(async () => {
    for (const instance of Object.values(instances)) {
      instance.server.closeAllConnections();
      await new Promise((resolve) => instance.server.close(resolve));
    }
    await Promise.all(databases.map((database) => database.close()));
    rmSync(keysDir, { recursive: true, force: true });
  });

  async function login(instance: Instance): Promise<Issued> {
    const res = await fetch(`${instance.baseUrl}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: instance.user.email, password: GOOD_PASSWORD }),
    });
    const body = (await res.json()) as { accessToken: string; expiresIn: number };
    if (res.status !== 200) throw new Error(`login on ${instance.name} failed: ${res.status} ${JSON.stringify(body)}`);
    const issuedAt = Math.floor(clock.now().getTime() / 1000);
    const kid = decodeProtectedHeader(body.accessToken).kid!;
    return { token: body.accessToken, kid, by: instance.name, second: elapsed, exp: issuedAt + body.expiresIn };
  }

  /** Checks one token everywhere it must be accepted: both instances' /users/me, both verifiers. */
  async function checkEverywhere(token: Issued): Promise<void> {
    for (const instance of Object.values(instances)) {
      checks++;
      const res = await fetch(`${instance.baseUrl}/users/me`, { headers: { Authorization: `Bearer ${token.token}` } });
      if (res.status !== 200) {
        const { code } = (await res.json()) as { code: string };
        refusals.push({ second: elapsed, by: token.by, checkedBy: `instance ${instance.name}`, kid: token.kid, outcome: code });
      }
      checks++;
      await instance.verifier.verify(token.token).catch((error: unknown) => {
        const outcome = error instanceof VerifyError ? error.code : String(error);
        refusals.push({ second: elapsed, by: token.by, checkedBy: `verifier of ${instance.name}`, kid: token.kid, outcome });
      });
    }
  }

  /** One step of the clock: the timers that are due fire, each instance issues a token, every live token is checked. */
  async function step(): Promise<Issued[]> {
    clock.advance(STEP);
    elapsed += STEP;
    for (const instance of Object.values(instances)) {
      if ((elapsed - PHASES[instance.name]) % RELOAD_INTERVAL === 0) await instance.ring.reload();
    }
    const fresh = [await login(instances.A), await login(instances.B)];
    issued.push(...fresh);
    const now = clock.now().getTime() / 1000;
    for (const token of issued.filter((t) => t.exp >= now)) await checkEverywhere(token);
    return fresh;
  }

  async function stepsUntil(second: number): Promise<Issued[]> {
    const fresh: Issued[] = [];
    while (elapsed < second) fresh.push(...(await step()));
    return fresh;
  }

  const jwksKids = async (instance: Instance) =>
    ((await (await fetch(`${instance.baseUrl}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);

  it('when a key is generated, waited for and the old one retired, then no token of either instance is refused anywhere', async () => {
    // Before: one key, signing everywhere.
    const before = await stepsUntil(60);
    expect(new Set(before.map((t) => t.kid))).toEqual(new Set([oldKid]));

    // keys:generate with its default delay: JWKS max-age + KEYS_RELOAD_INTERVAL + a margin.
    const generatedAt = elapsed;
    const generated = await run(generateKey, [], scriptEnv, clock.now);
    expect(generated.code).toBe(0);
    const newKid = /kid\s+(\S+)/.exec(generated.stdout)![1]!;
    const activation = generatedAt + 300 + RELOAD_INTERVAL + 60;
    expect(generated.stdout).toContain(`in ${activation - generatedAt} s`);

    let listed = await run(listKeys, [], scriptEnv, clock.now);
    expect(statesOf(listed.stdout)).toEqual({ [oldKid]: 'signing', [newKid]: 'pending' });
    // The old key signs: it cannot be retired yet.
    const refusedSigning = await run(retireKey, ['--kid', oldKid], scriptEnv, clock.now);
    expect(refusedSigning.code).toBe(1);
    expect(refusedSigning.stderr).toContain('signing key');

    // B's timer fires first (at 100 s): the new key is published there, not yet on A, and signs nowhere.
    await stepsUntil(100);
    expect(await jwksKids(instances.B)).toContain(newKid);
    expect(await jwksKids(instances.A)).not.toContain(newKid);
    // Through the activation: every token from either instance carries the old kid before it, the new one after.
    const around = await stepsUntil(activation + 2 * STEP);
    for (const token of around) {
      expect([token.by, token.second, token.kid]).toEqual([token.by, token.second, token.second < activation ? oldKid : newKid]);
    }
    listed = await run(listKeys, [], scriptEnv, clock.now);
    expect(statesOf(listed.stdout)).toEqual({ [oldKid]: 'published', [newKid]: 'signing' });

    // Too soon: a token the old key signed just before the activation may be live.
    const safeAt = activation + ACCESS_TOKEN_TTL + 30;
    const tooSoon = await run(retireKey, ['--kid', oldKid], scriptEnv, clock.now);
    expect(tooSoon.code).toBe(1);
    expect(tooSoon.stderr).toContain(
      addSeconds(clock.now(), safeAt - elapsed)
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z'),
    );

    // Wait until then, retire, and go on through both instances' next reloads.
    await stepsUntil(safeAt);
    const retired = await run(retireKey, ['--kid', oldKid], scriptEnv, clock.now);
    expect(retired.code).toBe(0);
    await stepsUntil(elapsed + 2 * RELOAD_INTERVAL);
    expect(await jwksKids(instances.A)).toEqual([newKid]);
    expect(await jwksKids(instances.B)).toEqual([newKid]);
    listed = await run(listKeys, [], scriptEnv, clock.now);
    expect(statesOf(listed.stdout)).toEqual({ [newKid]: 'signing' });

    // Tokens of both keys from both instances were checked, and none was refused.
    expect(new Set(issued.map((t) => `${t.by}:${t.kid === oldKid ? 'old' : 'new'}`))).toEqual(
      new Set(['A:old', 'B:old', 'A:new', 'B:new']),
    );
    expect(checks).toBeGreaterThan(1000);
    expect(refusals).toEqual([]);
    expect([...instances.A.reloadFailures, ...instances.B.reloadFailures]).toEqual([]);
  }, 120_000);

  // The control: what the activation delay prevents. A key that signs at once on the instance
  // that read it first is refused by the one that has not: this test's checks do see refusals.
  it('when a key signs at once (--now) before the other instance has read it, then that instance refuses its tokens until it reloads', async () => {
    // Past both verifiers' cooldown (30 s on their clock): an unknown kid makes them fetch again.
    clock.advance(31);
    const generated = await run(generateKey, ['--now'], scriptEnv, clock.now);
    expect(generated.code).toBe(0);
    const newKid = /kid\s+(\S+)/.exec(generated.stdout)![1]!;
    await instances.A.ring.reload();

    const token = await login(instances.A);
    const before = refusals.length;
    await checkEverywhere(token);

    expect(token.kid).toBe(newKid);
    // A's verifier fetched A's JWKS again on the unknown kid and accepts it; B and the verifier
    // fetching from B do not know the key yet.
    expect(refusals.slice(before).map((r) => [r.checkedBy, r.outcome])).toEqual([
      ['instance B', 'TOKEN_INVALID'],
      ['verifier of B', 'TOKEN_INVALID'],
    ]);

    await instances.B.ring.reload();
    const afterReload = refusals.length;
    await checkEverywhere(token);
    // B has it now; B's verifier asked moments ago and waits out its cooldown before asking again.
    expect(refusals.slice(afterReload).map((r) => r.checkedBy)).toEqual(['verifier of B']);

    clock.advance(30);
    const afterCooldown = refusals.length;
    await checkEverywhere(token);
    expect(refusals.slice(afterCooldown)).toEqual([]);
  }, 60_000);
});
