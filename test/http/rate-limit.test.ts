import { randomUUID } from 'node:crypto';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db/database';
import type { Redis } from '../../src/redis';
import { openTestDatabase } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { connectedRedis } from '../helpers/redis-server';
import { expectProblem, GOOD_PASSWORD, registerUser, uniqueEmail } from '../helpers/factories';

// The one allowed conditional skip: Redis-backed suites run where REDIS_URL is set (as in CI).
const describeIfRedis = process.env.REDIS_URL ? describe : describe.skip;

const LIMIT = 5;
const AUTH_LIMIT = 3;

/** Sends `count` requests one after the other and returns their statuses. */
async function statuses(count: number, send: (i: number) => request.Test): Promise<number[]> {
  const result: number[] = [];
  for (let i = 0; i < count; i += 1) result.push((await send(i)).status);
  return result;
}

/**
 * The parameters of a draft-8 RateLimit or RateLimit-Policy header (an RFC 8941 list item,
 * `"name"; q=5; w=60`), with the quoted policy name under `name`.
 */
function parameters(header: string | undefined): Record<string, string> {
  expect(header).toEqual(expect.any(String));
  const [name, ...params] = header!.split(';').map((part) => part.trim());
  expect(name).toMatch(/^"[^"]+"$/);
  return Object.fromEntries([['name', name!], ...params.map((param) => param.split('=', 2) as [string, string])]);
}

const jwks = (h: Harness) => request(h.app).get('/.well-known/jwks.json');
const unknownLogin = (h: Harness) =>
  request(h.app)
    .post('/auth/login')
    .send({ email: uniqueEmail('nobody'), password: GOOD_PASSWORD });

// Every test builds its own app, so its counters start at zero; the apps share one database.
describe('rate limits', () => {
  let database: DatabaseHandle;
  beforeAll(async () => {
    database = await openTestDatabase('pglite');
  });
  afterAll(async () => {
    await database.close();
  });

  const harness = (env: Record<string, string> = {}) =>
    createHarness({ database, env: { HMAC_MODE: 'off', RATE_LIMIT_MAX: String(LIMIT), ...env } });

  describe('the global limit', () => {
    it(`when ${LIMIT} requests have been made, then the next answers 429 RATE_LIMITED with Retry-After`, async () => {
      const h = await harness();
      expect(await statuses(LIMIT, () => jwks(h))).toEqual(Array(LIMIT).fill(200));
      const res = await jwks(h);
      expectProblem(res, 429, 'RATE_LIMITED');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
    });

    it('when a request is counted, then it carries the IETF RateLimit-Policy and RateLimit headers (draft 8)', async () => {
      const h = await harness();
      const first = await jwks(h);
      expect(parameters(first.headers['ratelimit-policy'])).toEqual(expect.objectContaining({ q: String(LIMIT), w: '60' }));
      expect(parameters(first.headers['ratelimit'])).toEqual(
        expect.objectContaining({ r: String(LIMIT - 1), t: expect.stringMatching(/^\d+$/) }),
      );
      await statuses(LIMIT - 1, () => jwks(h));
      const limited = await jwks(h);
      expect(limited.status).toBe(429);
      expect(parameters(limited.headers['ratelimit'])).toEqual(expect.objectContaining({ r: '0' }));
      expect(parameters(limited.headers['ratelimit-policy'])).toEqual(expect.objectContaining({ q: String(LIMIT) }));
      // The legacy X-RateLimit-* headers are not sent.
      expect(limited.headers['x-ratelimit-limit']).toBeUndefined();
    });

    it('when the limit is reached on one route, then every limited route answers 429', async () => {
      const h = await harness();
      await statuses(LIMIT, () => jwks(h));
      expectProblem(await request(h.app).post('/auth/logout').send({}), 429, 'RATE_LIMITED');
      expectProblem(await unknownLogin(h), 429, 'RATE_LIMITED');
      expectProblem(await request(h.app).get('/no/such/route'), 429, 'RATE_LIMITED');
    });

    it('when a new app is built, then its counters start at zero', async () => {
      // Guards the suite's premise: each test's fresh app has fresh in-process counters.
      const spent = await harness();
      await statuses(LIMIT + 1, () => jwks(spent));
      const fresh = await harness();
      expect((await jwks(fresh)).status).toBe(200);
    });

    it.each(['/healthz', '/readyz'])('when %s is asked more often than the limit, then it is never limited', async (path) => {
      const h = await harness();
      expect(await statuses(LIMIT * 2, () => request(h.app).get(path))).toEqual(Array(LIMIT * 2).fill(200));
      // The probes were not counted either: the limited routes still have their whole budget.
      expect(await statuses(LIMIT, () => jwks(h))).toEqual(Array(LIMIT).fill(200));
    });

    it.each(['/healthz', '/readyz'])('when the limit is spent, then %s still answers 200', async (path) => {
      const h = await harness();
      await statuses(LIMIT + 1, () => jwks(h));
      expect((await request(h.app).get(path)).status).toBe(200);
    });

    it('when the limit is spent, then a malformed JSON body is refused 429 before it is parsed', async () => {
      const h = await harness();
      const malformed = () => request(h.app).post('/auth/logout').set('Content-Type', 'application/json').send('{"refreshToken": ');
      // While under the limit the same body is a parse error, which shows it would be read.
      expectProblem(await malformed(), 400, 'MALFORMED_BODY');
      await statuses(LIMIT - 1, () => jwks(h));
      expectProblem(await malformed(), 429, 'RATE_LIMITED');
    });

    it('when the limit is spent, then a body of the wrong type is refused 429, not 415', async () => {
      const h = await harness();
      await statuses(LIMIT, () => jwks(h));
      const res = await request(h.app).post('/auth/login').set('Content-Type', 'text/plain').send('hello');
      expectProblem(res, 429, 'RATE_LIMITED');
    });
  });

  describe('the register and login limit', () => {
    const authHarness = () => harness({ RATE_LIMIT_MAX: '1000000', AUTH_RATE_LIMIT_MAX: String(AUTH_LIMIT) });

    it(`when ${AUTH_LIMIT} registrations and logins have been made, then the next login answers 429`, async () => {
      const h = await authHarness();
      const user = await registerUser(h.app);
      await request(h.app).post('/auth/login').send({ email: user.email, password: user.password }).expect(200);
      await unknownLogin(h).expect(401);
      const res = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
      expectProblem(res, 429, 'RATE_LIMITED');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    });

    it(`when ${AUTH_LIMIT} logins have been made, then the next registration answers 429`, async () => {
      const h = await authHarness();
      await statuses(AUTH_LIMIT, () => unknownLogin(h));
      const res = await request(h.app).post('/auth/register').send({ email: uniqueEmail(), password: GOOD_PASSWORD });
      expectProblem(res, 429, 'RATE_LIMITED');
    });

    it('when the register and login limit is spent, then other routes still pass', async () => {
      const h = await authHarness();
      const user = await registerUser(h.app);
      await statuses(AUTH_LIMIT, () => unknownLogin(h));
      expectProblem(await unknownLogin(h), 429, 'RATE_LIMITED');
      expect((await jwks(h)).status).toBe(200);
      expect((await request(h.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`)).status).toBe(200);
      expect((await request(h.app).post('/auth/logout').send({ refreshToken: user.refreshToken })).status).toBe(204);
    });

    it('when the register and login limit is spent, then /auth/refresh is not limited by it', async () => {
      const h = await authHarness();
      const user = await registerUser(h.app);
      await statuses(AUTH_LIMIT, () => unknownLogin(h));
      const res = await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken });
      expect(res.status).toBe(200);
    });
  });

  describe('client address', () => {
    it('when TRUST_PROXY is off, then a different X-Forwarded-For on each request does not escape the limit', async () => {
      const h = await harness();
      const spoofed = (i: number) => jwks(h).set('X-Forwarded-For', `203.0.113.${i + 1}`);
      expect(await statuses(LIMIT, spoofed)).toEqual(Array(LIMIT).fill(200));
      expectProblem(await spoofed(LIMIT), 429, 'RATE_LIMITED');
    });

    it('when TRUST_PROXY is 1, then each X-Forwarded-For address is counted separately', async () => {
      const h = await harness({ TRUST_PROXY: '1' });
      const from = (address: string) => jwks(h).set('X-Forwarded-For', address);
      expect(await statuses(LIMIT, () => from('203.0.113.7'))).toEqual(Array(LIMIT).fill(200));
      expectProblem(await from('203.0.113.7'), 429, 'RATE_LIMITED');
      expect((await from('198.51.100.23')).status).toBe(200);
    });

    it('when TRUST_PROXY is 1, then only the address the proxy saw counts, not one the client prepended', async () => {
      const h = await harness({ TRUST_PROXY: '1' });
      // The proxy appends the real peer; the left-hand entries are whatever the client sent.
      const spoofed = (i: number) => jwks(h).set('X-Forwarded-For', `10.0.0.${i + 1}, 203.0.113.9`);
      expect(await statuses(LIMIT, spoofed)).toEqual(Array(LIMIT).fill(200));
      expectProblem(await spoofed(LIMIT), 429, 'RATE_LIMITED');
    });
  });

  describeIfRedis('with Redis', () => {
    const clients: Redis[] = [];
    const redisClient = async () => {
      const redis = await connectedRedis();
      clients.push(redis);
      return redis;
    };
    afterAll(async () => {
      await Promise.all(clients.filter((redis) => redis.status !== 'end').map((redis) => redis.quit()));
    });

    it('when two apps share Redis and a prefix, then they share the limit', async () => {
      const env = { REDIS_PREFIX: `test:${randomUUID()}:` };
      const a = await createHarness({
        database,
        env: { HMAC_MODE: 'off', RATE_LIMIT_MAX: String(LIMIT), ...env },
        redis: await redisClient(),
      });
      const b = await createHarness({
        database,
        env: { HMAC_MODE: 'off', RATE_LIMIT_MAX: String(LIMIT), ...env },
        redis: await redisClient(),
      });
      expect(await statuses(3, () => jwks(a))).toEqual([200, 200, 200]);
      expect(await statuses(3, () => jwks(b))).toEqual([200, 200, 429]);
      expectProblem(await jwks(a), 429, 'RATE_LIMITED');
    });

    it('when two apps share Redis but not the prefix, then their limits are apart', async () => {
      const redis = await redisClient();
      const a = await createHarness({
        database,
        env: { HMAC_MODE: 'off', RATE_LIMIT_MAX: String(LIMIT), REDIS_PREFIX: `test:${randomUUID()}:` },
        redis,
      });
      const b = await createHarness({
        database,
        env: { HMAC_MODE: 'off', RATE_LIMIT_MAX: String(LIMIT), REDIS_PREFIX: `test:${randomUUID()}:` },
        redis,
      });
      await statuses(LIMIT + 1, () => jwks(a));
      expect((await jwks(b)).status).toBe(200);
    });

    it('when the Redis client is disconnected, then limited routes fail open and logins work', async () => {
      const redis = await redisClient();
      const h = await createHarness({
        database,
        env: { HMAC_MODE: 'off', RATE_LIMIT_MAX: '2', AUTH_RATE_LIMIT_MAX: '2', REDIS_PREFIX: `test:${randomUUID()}:` },
        redis,
      });
      redis.disconnect();
      expect(await statuses(4, () => jwks(h))).toEqual([200, 200, 200, 200]);
      const user = await registerUser(h.app);
      for (let i = 0; i < 3; i += 1) {
        const res = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
        expect(res.status).toBe(200);
      }
    });
  });
});
