import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { DATABASE_KINDS } from '../helpers/databases';
import { expectProblem, registerUser, uniqueEmail } from '../helpers/factories';

const MAX_FAILURES = 5;
const LOCKOUT = 900;
const WRONG_PASSWORD = 'not the right password';
// TRUST_PROXY=1: X-Forwarded-For is the client address, so one test can speak from several.
const ENV = { LOGIN_MAX_FAILURES: String(MAX_FAILURES), LOCKOUT_DURATION: String(LOCKOUT), HMAC_MODE: 'off', TRUST_PROXY: '1' };

/** Documentation addresses (RFC 5737, RFC 3849): the attacker's, the owner's, and others. */
const ATTACKER = '203.0.113.66';
const OWNER = '198.51.100.7';
const ELSEWHERE = '2001:db8::1';

const login = (h: Harness, email: string, password: string, ip = ATTACKER) =>
  request(h.app).post('/auth/login').set('X-Forwarded-For', ip).send({ email, password });

async function failTimes(h: Harness, email: string, times: number, ip = ATTACKER): Promise<request.Response[]> {
  const responses: request.Response[] = [];
  for (let i = 0; i < times; i += 1) responses.push(await login(h, email, WRONG_PASSWORD, ip));
  return responses;
}

/** The failure counter of one email from one address, as the database holds it; undefined when there is none. */
const counter = (h: Harness, email: string, ip = ATTACKER) =>
  h.database.db
    .selectFrom('login_failures')
    .select(['failures', 'locked_until'])
    .where('email', '=', email)
    .where('ip', '=', ip)
    .executeTakeFirst();

const lockEvents = (h: Harness, userId: string) =>
  h.database.db
    .selectFrom('audit_events')
    .select(['user_id', 'ip', 'data'])
    .where('user_id', '=', userId)
    .where('type', '=', 'user.locked')
    .execute();

const lockoutsCounted = async (h: Harness): Promise<number> => {
  const text = (await request(h.app).get('/metrics')).text;
  return Number(/^gatehouse_account_lockouts_total (\d+)$/m.exec(text)?.[1] ?? 0);
};

/** Every answer of a guessing burst is a refusal, and the lock is told only once it exists. */
function expectRefusals(responses: request.Response[]): void {
  for (const res of responses) {
    expect([401, 423]).toContain(res.status);
    expectProblem(res, res.status, res.status === 401 ? 'INVALID_CREDENTIALS' : 'ACCOUNT_LOCKED');
  }
  // The count reached the limit exactly once, so exactly the first MAX_FAILURES - 1 counted failures say 401.
  expect(responses.filter((res) => res.status === 401)).toHaveLength(MAX_FAILURES - 1);
  expect(responses.filter((res) => res.status === 423).length).toBeGreaterThanOrEqual(1);
}

describe.each(DATABASE_KINDS)('login lockout per email and address (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: ENV });
  });
  afterAll(async () => {
    await h.close();
  });

  it(`when ${MAX_FAILURES} wrong passwords come in a row from one address, then the last answers 423 ACCOUNT_LOCKED with Retry-After of LOCKOUT_DURATION`, async () => {
    const user = await registerUser(h.app);
    const responses = await failTimes(h, user.email, MAX_FAILURES);
    for (const res of responses.slice(0, -1)) expectProblem(res, 401, 'INVALID_CREDENTIALS');
    const locked = responses.at(-1)!;
    expectProblem(locked, 423, 'ACCOUNT_LOCKED');
    expect(Number(locked.headers['retry-after'])).toBe(LOCKOUT);
  });

  it('when the email is locked for an address, then the right password from there also answers 423 with the time left', async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES);
    h.clock.advance(60);
    const res = await login(h, user.email, user.password);
    expectProblem(res, 423, 'ACCOUNT_LOCKED');
    expect(Number(res.headers['retry-after'])).toBe(LOCKOUT - 60);
    expect(res.body).not.toHaveProperty('accessToken');
  });

  it("when the attacker's address is locked, then the owner logs in from another address, and the attacker stays locked", async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES, ATTACKER);

    const owner = await login(h, user.email, user.password, OWNER);
    expect(owner.status).toBe(200);
    expect(owner.body.user.id).toBe(user.id);
    // Nor is the owner's address a step closer to a lock: a full run of failures is needed there.
    for (const res of await failTimes(h, user.email, MAX_FAILURES - 1, ELSEWHERE)) expectProblem(res, 401, 'INVALID_CREDENTIALS');

    expectProblem(await login(h, user.email, user.password, ATTACKER), 423, 'ACCOUNT_LOCKED');
  });

  it('when an unknown email fails as often, then it answers exactly as an account would: 401s, then 423 with Retry-After', async () => {
    const user = await registerUser(h.app);
    const nobody = uniqueEmail('nobody');
    const real = await failTimes(h, user.email, MAX_FAILURES + 1);
    const unknown = await failTimes(h, nobody, MAX_FAILURES + 1);

    const answers = (responses: request.Response[]) =>
      responses.map((res) => ({ status: res.status, code: res.body.code, retryAfter: res.headers['retry-after'] }));
    expect(answers(unknown)).toEqual(answers(real));
    expectProblem(unknown.at(-1)!, 423, 'ACCOUNT_LOCKED');
    expect(Number(unknown.at(-1)!.headers['retry-after'])).toBe(LOCKOUT);
  });

  it('when an unknown email locks, then a user.locked event without a user is written and the lockout metric moves', async () => {
    const nobody = uniqueEmail('nobody');
    const before = await lockoutsCounted(h);
    await failTimes(h, nobody, MAX_FAILURES - 1);
    const requestId = `lock-${randomUUID()}`;
    const locking = await request(h.app)
      .post('/auth/login')
      .set('X-Forwarded-For', ATTACKER)
      .set('X-Request-Id', requestId)
      .send({ email: nobody, password: WRONG_PASSWORD });
    expectProblem(locking, 423, 'ACCOUNT_LOCKED');

    expect(await lockoutsCounted(h)).toBe(before + 1);
    const events = await h.database.db
      .selectFrom('audit_events')
      .select(['type', 'user_id', 'ip', 'data'])
      .where('request_id', '=', requestId)
      .orderBy('type')
      .execute();
    const lockedUntil = new Date(h.clock.now().getTime() + LOCKOUT * 1000).toISOString();
    expect(events).toEqual([
      { type: 'auth.failed', user_id: null, ip: ATTACKER, data: { reason: 'unknown_email' } },
      { type: 'user.locked', user_id: null, ip: ATTACKER, data: { scope: 'address', failures: MAX_FAILURES, lockedUntil } },
    ]);
    expect(JSON.stringify(events)).not.toContain(WRONG_PASSWORD);
  });

  it('when an account locks, then one user.locked event names the user, the address and the lock, without the password', async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES);
    const lockedUntil = new Date(h.clock.now().getTime() + LOCKOUT * 1000).toISOString();
    expect(await lockEvents(h, user.id)).toEqual([
      { user_id: user.id, ip: ATTACKER, data: { scope: 'address', failures: MAX_FAILURES, lockedUntil } },
    ]);
  });

  it('when LOCKOUT_DURATION + 1 seconds have passed, then the right password works and the counter is gone', async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES);
    h.clock.advance(LOCKOUT - 1);
    expectProblem(await login(h, user.email, user.password), 423, 'ACCOUNT_LOCKED');
    h.clock.advance(2);
    const res = await login(h, user.email, user.password);
    expect(res.status).toBe(200);
    expect(await counter(h, user.email)).toBeUndefined();
  });

  it(`when ${MAX_FAILURES - 1} failures, a success, then ${MAX_FAILURES - 1} failures come from one address, then it is not locked`, async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES - 1);
    expect((await login(h, user.email, user.password)).status).toBe(200);
    expect(await counter(h, user.email)).toBeUndefined();
    const again = await failTimes(h, user.email, MAX_FAILURES - 1);
    for (const res of again) expectProblem(res, 401, 'INVALID_CREDENTIALS');
    expect(await counter(h, user.email)).toEqual({ failures: MAX_FAILURES - 1, locked_until: null });
    expect((await login(h, user.email, user.password)).status).toBe(200);
  });

  it('when a login succeeds from one address, then only that address starts again: the other keeps its count', async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES - 1, ATTACKER);
    await failTimes(h, user.email, MAX_FAILURES - 1, OWNER);

    expect((await login(h, user.email, user.password, OWNER)).status).toBe(200);

    expect(await counter(h, user.email, OWNER)).toBeUndefined();
    expect(await counter(h, user.email, ATTACKER)).toEqual({ failures: MAX_FAILURES - 1, locked_until: null });
    expectProblem(await login(h, user.email, WRONG_PASSWORD, ATTACKER), 423, 'ACCOUNT_LOCKED');
  });

  it('when the last failure is more than LOCKOUT_DURATION old, then the next one starts a new count (as if prune had run)', async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES - 1);
    h.clock.advance(LOCKOUT + 1);

    expectProblem(await login(h, user.email, WRONG_PASSWORD), 401, 'INVALID_CREDENTIALS');
    expect(await counter(h, user.email)).toEqual({ failures: 1, locked_until: null });
  });

  it(`when 20 wrong passwords arrive at once from one address, then the email locks exactly once at ${MAX_FAILURES} failures`, async () => {
    const user = await registerUser(h.app);
    const responses = await Promise.all(Array.from({ length: 20 }, () => login(h, user.email, WRONG_PASSWORD)));
    expectRefusals(responses);
    expect(await lockEvents(h, user.id)).toHaveLength(1);
    expect((await counter(h, user.email))?.failures).toBe(MAX_FAILURES);
    expectProblem(await login(h, user.email, user.password), 423, 'ACCOUNT_LOCKED');
    expect((await login(h, user.email, user.password, OWNER)).status).toBe(200);
  });

  it('when 20 failures come from 10 addresses and ACCOUNT_MAX_FAILURES is off (the default), then the owner still logs in', async () => {
    const user = await registerUser(h.app);
    for (let i = 0; i < 10; i += 1) await failTimes(h, user.email, 2, `203.0.113.${100 + i}`);
    expect((await login(h, user.email, user.password, OWNER)).status).toBe(200);
  });
});

describe.each(DATABASE_KINDS)('account-wide lockout with ACCOUNT_MAX_FAILURES (%s)', (kind) => {
  const ACCOUNT_MAX = 8;
  const address = (i: number) => `192.0.2.${10 + i}`;
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: { ...ENV, ACCOUNT_MAX_FAILURES: String(ACCOUNT_MAX) } });
  });
  afterAll(async () => {
    await h.close();
  });

  /** ACCOUNT_MAX failures, two from each of ACCOUNT_MAX / 2 addresses: no address reaches LOGIN_MAX_FAILURES. */
  async function distributedGuessing(email: string, failures = ACCOUNT_MAX): Promise<request.Response[]> {
    const responses: request.Response[] = [];
    for (let i = 0; i < failures; i += 1) responses.push(await login(h, email, WRONG_PASSWORD, address(Math.floor(i / 2))));
    return responses;
  }

  it(`when ${ACCOUNT_MAX} failures come from many addresses within LOCKOUT_DURATION, then the email is locked for every address`, async () => {
    const user = await registerUser(h.app);
    const responses = await distributedGuessing(user.email);
    for (const res of responses.slice(0, -1)) expectProblem(res, 401, 'INVALID_CREDENTIALS');
    expectProblem(responses.at(-1)!, 423, 'ACCOUNT_LOCKED');

    h.clock.advance(10);
    const owner = await login(h, user.email, user.password, OWNER);
    expectProblem(owner, 423, 'ACCOUNT_LOCKED');
    expect(Number(owner.headers['retry-after'])).toBe(LOCKOUT - 10);
    const lockedUntil = new Date(h.clock.now().getTime() + (LOCKOUT - 10) * 1000).toISOString();
    expect(await lockEvents(h, user.id)).toEqual([
      { user_id: user.id, ip: address(3), data: { scope: 'account', failures: ACCOUNT_MAX, lockedUntil } },
    ]);
  });

  it('when the account-wide lock has run out, then the owner logs in', async () => {
    const user = await registerUser(h.app);
    await distributedGuessing(user.email);
    h.clock.advance(LOCKOUT + 1);
    expect((await login(h, user.email, user.password, OWNER)).status).toBe(200);
  });

  it('when the failures are spread over more than LOCKOUT_DURATION, then they do not add up to an account-wide lock', async () => {
    const user = await registerUser(h.app);
    await distributedGuessing(user.email, ACCOUNT_MAX - 1);
    h.clock.advance(LOCKOUT + 1);
    expectProblem(await login(h, user.email, WRONG_PASSWORD, address(0)), 401, 'INVALID_CREDENTIALS');
    expect((await login(h, user.email, user.password, OWNER)).status).toBe(200);
  });

  it('when an unknown email gets as many failures, then it is locked for every address as well', async () => {
    const nobody = uniqueEmail('nobody');
    const responses = await distributedGuessing(nobody);
    expectProblem(responses.at(-1)!, 423, 'ACCOUNT_LOCKED');
    expectProblem(await login(h, nobody, WRONG_PASSWORD, OWNER), 423, 'ACCOUNT_LOCKED');
  });
});

// Two instances over one database: the count lives there, so they lock exactly as one would.
// On PostgreSQL the two apps' requests really run at once, on separate connections.
describe.each(DATABASE_KINDS)('login lockout across two apps over one database (%s)', (kind) => {
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    a = await createHarness({ kind, env: ENV });
    b = await createHarness({ database: a.database, env: ENV });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  it('when 10 wrong passwords from one address arrive at each app at once, then the email locks exactly once, seen by both', async () => {
    const user = await registerUser(a.app);
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => login(i % 2 === 0 ? a : b, user.email, WRONG_PASSWORD)));
    expectRefusals(responses);
    expect(await lockEvents(a, user.id)).toHaveLength(1);
    expect((await counter(a, user.email))?.failures).toBe(MAX_FAILURES);
    expectProblem(await login(a, user.email, user.password), 423, 'ACCOUNT_LOCKED');
    expectProblem(await login(b, user.email, user.password), 423, 'ACCOUNT_LOCKED');
    expect((await login(b, user.email, user.password, OWNER)).status).toBe(200);
  });

  it('when failures on A and B from one address add up to LOGIN_MAX_FAILURES, then the email is locked on both', async () => {
    const user = await registerUser(a.app);
    for (const h of [a, b, a, b]) expectProblem(await login(h, user.email, WRONG_PASSWORD), 401, 'INVALID_CREDENTIALS');
    expectProblem(await login(a, user.email, WRONG_PASSWORD), 423, 'ACCOUNT_LOCKED');
    expectProblem(await login(b, user.email, user.password), 423, 'ACCOUNT_LOCKED');
  });
});
