import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { DATABASE_KINDS } from '../helpers/databases';
import { expectProblem, registerUser } from '../helpers/factories';

const MAX_FAILURES = 5;
const LOCKOUT = 900;
const WRONG_PASSWORD = 'not the right password';
const ENV = { LOGIN_MAX_FAILURES: String(MAX_FAILURES), LOCKOUT_DURATION: String(LOCKOUT), HMAC_MODE: 'off' };

const login = (h: Harness, email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });

async function failTimes(h: Harness, email: string, times: number): Promise<request.Response[]> {
  const responses: request.Response[] = [];
  for (let i = 0; i < times; i += 1) responses.push(await login(h, email, WRONG_PASSWORD));
  return responses;
}

const userRow = (h: Harness, id: string) =>
  h.database.db.selectFrom('users').select(['failed_login_count', 'locked_until']).where('id', '=', id).executeTakeFirstOrThrow();

const eventCount = async (h: Harness, userId: string, type: string) =>
  (await h.database.db.selectFrom('audit_events').select('id').where('user_id', '=', userId).where('type', '=', type).execute()).length;

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

describe.each(DATABASE_KINDS)('login lockout (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: ENV });
  });
  afterAll(async () => {
    await h.close();
  });

  it(`when ${MAX_FAILURES} wrong passwords come in a row, then the last answers 423 ACCOUNT_LOCKED with Retry-After of LOCKOUT_DURATION`, async () => {
    const user = await registerUser(h.app);
    const responses = await failTimes(h, user.email, MAX_FAILURES);
    for (const res of responses.slice(0, -1)) expectProblem(res, 401, 'INVALID_CREDENTIALS');
    const locked = responses.at(-1)!;
    expectProblem(locked, 423, 'ACCOUNT_LOCKED');
    expect(Number(locked.headers['retry-after'])).toBe(LOCKOUT);
  });

  it('when the account is locked, then the right password also answers 423 with the time left', async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES);
    h.clock.advance(60);
    const res = await login(h, user.email, user.password);
    expectProblem(res, 423, 'ACCOUNT_LOCKED');
    expect(Number(res.headers['retry-after'])).toBe(LOCKOUT - 60);
    expect(res.body).not.toHaveProperty('accessToken');
  });

  it('when LOCKOUT_DURATION + 1 seconds have passed, then the right password works', async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES);
    h.clock.advance(LOCKOUT - 1);
    expectProblem(await login(h, user.email, user.password), 423, 'ACCOUNT_LOCKED');
    h.clock.advance(2);
    const res = await login(h, user.email, user.password);
    expect(res.status).toBe(200);
    expect(await userRow(h, user.id)).toEqual({ failed_login_count: 0, locked_until: null });
  });

  it(`when ${MAX_FAILURES - 1} failures, a success, then ${MAX_FAILURES - 1} failures come, then the account is not locked`, async () => {
    const user = await registerUser(h.app);
    await failTimes(h, user.email, MAX_FAILURES - 1);
    expect((await login(h, user.email, user.password)).status).toBe(200);
    const again = await failTimes(h, user.email, MAX_FAILURES - 1);
    for (const res of again) expectProblem(res, 401, 'INVALID_CREDENTIALS');
    expect(await userRow(h, user.id)).toEqual({ failed_login_count: MAX_FAILURES - 1, locked_until: null });
    expect((await login(h, user.email, user.password)).status).toBe(200);
  });

  it(`when 20 wrong passwords arrive at once, then the account locks exactly once at ${MAX_FAILURES} failures`, async () => {
    const user = await registerUser(h.app);
    const responses = await Promise.all(Array.from({ length: 20 }, () => login(h, user.email, WRONG_PASSWORD)));
    expectRefusals(responses);
    expect(await eventCount(h, user.id, 'user.locked')).toBe(1);
    expect((await userRow(h, user.id)).failed_login_count).toBe(MAX_FAILURES);
    expectProblem(await login(h, user.email, user.password), 423, 'ACCOUNT_LOCKED');
  });
});

// Two instances over one PostgreSQL (where DATABASE_URL is set, as in CI): the count lives
// in the database, so they agree.
const describeIfPostgres = process.env.DATABASE_URL ? describe : describe.skip;

describeIfPostgres('login lockout across two apps (postgres)', () => {
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    a = await createHarness({ kind: 'postgres', env: ENV });
    b = await createHarness({ database: a.database, env: ENV });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  it('when 10 wrong passwords arrive at each app at once, then the account locks exactly once, seen by both', async () => {
    const user = await registerUser(a.app);
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => login(i % 2 === 0 ? a : b, user.email, WRONG_PASSWORD)),
    );
    expectRefusals(responses);
    expect(await eventCount(a, user.id, 'user.locked')).toBe(1);
    expect((await userRow(a, user.id)).failed_login_count).toBe(MAX_FAILURES);
    expectProblem(await login(a, user.email, user.password), 423, 'ACCOUNT_LOCKED');
    expectProblem(await login(b, user.email, user.password), 423, 'ACCOUNT_LOCKED');
  });
});
