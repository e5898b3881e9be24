import { randomUUID } from 'node:crypto';
import type { DatabaseHandle } from '../../src/db/database';
import type { Redis } from '../../src/redis';
import { openTestDatabase } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { connectedRedis } from '../helpers/redis-server';
import { expectProblem, GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { newNonce, signedAs, testClients } from '../helpers/signing';

// Two instances act as one only through shared stores: PostgreSQL and Redis (as in CI).
const describeIfShared = process.env.DATABASE_URL && process.env.REDIS_URL ? describe : describe.skip;

const WRONG_PASSWORD = 'not the right password';

describeIfShared('two instances sharing PostgreSQL and Redis', () => {
  const { ios, hmacClients } = testClients();
  let database: DatabaseHandle;
  const clients: Redis[] = [];

  beforeAll(async () => {
    database = await openTestDatabase('postgres');
  });
  afterAll(async () => {
    await Promise.all(clients.map((redis) => redis.quit()));
    await database.close();
  });

  /**
   * Two apps, each with its own Redis connection, under one fresh prefix: what two
   * instances of one deployment look like. Each test gets its own prefix, so its counters
   * and nonces are its own.
   */
  async function twoInstances(env: Record<string, string> = {}): Promise<[Harness, Harness]> {
    const shared = { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients, REDIS_PREFIX: `test:${randomUUID()}:`, ...env };
    const [redisA, redisB] = await Promise.all([connectedRedis(), connectedRedis()]);
    clients.push(redisA, redisB);
    const a = await createHarness({ database, env: shared, redis: redisA });
    const b = await createHarness({ database, env: shared, redis: redisB });
    return [a, b];
  }

  const login = (h: Harness, email: string, password: string) => signedAs(h, ios)('POST', '/auth/login', { body: { email, password } });

  async function register(h: Harness): Promise<{ id: string; email: string }> {
    const email = uniqueEmail();
    const res = await signedAs(h, ios)('POST', '/auth/register', { body: { email, password: GOOD_PASSWORD } });
    if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { id: res.body.user.id, email };
  }

  it('when a nonce was used on A, then B refuses it with SIGNATURE_REPLAYED', async () => {
    const [a, b] = await twoInstances();
    const request = { body: { email: uniqueEmail('nobody'), password: GOOD_PASSWORD }, nonce: newNonce() };
    expectProblem(await signedAs(a, ios)('POST', '/auth/login', request), 401, 'INVALID_CREDENTIALS');
    expectProblem(await signedAs(b, ios)('POST', '/auth/login', request), 401, 'SIGNATURE_REPLAYED');
  });

  it('when nonces differ, then both instances serve the same client', async () => {
    const [a, b] = await twoInstances();
    const user = await register(a);
    expect((await login(b, user.email, GOOD_PASSWORD)).status).toBe(200);
  });

  it('when 2 logins went to A and 2 to B, then the 5th on either answers 429 (AUTH_RATE_LIMIT_MAX 4)', async () => {
    const [a, b] = await twoInstances({ AUTH_RATE_LIMIT_MAX: '4' });
    const attempt = (h: Harness) => login(h, uniqueEmail('nobody'), GOOD_PASSWORD);
    for (const h of [a, a, b, b]) expectProblem(await attempt(h), 401, 'INVALID_CREDENTIALS');
    expectProblem(await attempt(a), 429, 'RATE_LIMITED');
    expectProblem(await attempt(b), 429, 'RATE_LIMITED');
  });

  it('when failures on A and B add up to LOGIN_MAX_FAILURES, then the account is locked on both', async () => {
    const [a, b] = await twoInstances({ LOGIN_MAX_FAILURES: '4' });
    const user = await register(a);
    for (const h of [a, b, a]) expectProblem(await login(h, user.email, WRONG_PASSWORD), 401, 'INVALID_CREDENTIALS');
    expectProblem(await login(b, user.email, WRONG_PASSWORD), 423, 'ACCOUNT_LOCKED');
    expectProblem(await login(a, user.email, GOOD_PASSWORD), 423, 'ACCOUNT_LOCKED');
    expectProblem(await login(b, user.email, GOOD_PASSWORD), 423, 'ACCOUNT_LOCKED');
    const row = await database.db.selectFrom('login_failures').select('failures').where('email', '=', user.email).executeTakeFirstOrThrow();
    expect(row.failures).toBe(4);
  });
});
