import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createLogger } from '../../src/logger';
import { createRedis, type Redis } from '../../src/redis';
import { bearer, expectProblem, GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { type RedisServerProcess, startRedisServer } from '../helpers/redis-server';
import { newNonce, signedAs, testClients } from '../helpers/signing';
import { waitUntil } from '../helpers/wait';

// CONTRACT.md section 5 and the README: with REDIS_URL, nonces live in Redis and fail closed
// (a signed request that cannot be checked for replay is refused, 503), rate limits live there
// and fail open (the request passes, the failure logged and counted); both recover by
// themselves when Redis returns, and no request waits on a Redis that does not answer.
//
// The Redis here is a redis-server this suite starts on a free port, not REDIS_URL's, so
// stopping it disturbs nobody. Skipped when REDIS_URL is unset (CI sets it, and has redis-server).
const describeIfRedis = process.env.REDIS_URL ? describe : describe.skip;

/** A generous bound on each request (not a timing assertion): a hang fails here, with a message. */
const BOUND_MS = 15_000;

interface LogLine {
  level: number;
  msg: string;
}

interface App {
  h: Harness;
  errors: LogLine[];
}

describeIfRedis('Redis outages (a private redis-server, stopped, frozen and started again)', () => {
  const { ios, hmacClients } = testClients();
  let redisServer: RedisServerProcess;
  const clients: Redis[] = [];
  const harnesses: Harness[] = [];

  beforeAll(async () => {
    redisServer = await startRedisServer();
  });
  afterEach(async () => {
    redisServer.resume();
    await redisServer.start();
  });
  afterAll(async () => {
    for (const redis of clients) redis.disconnect();
    await Promise.all(harnesses.map((h) => h.close()));
    await redisServer?.dispose();
  });

  /** An app over its own embedded database, its stores in the private Redis under a prefix of its own, its error log kept. */
  async function app(env: Record<string, string> = {}): Promise<App> {
    const redis = createRedis(redisServer.url);
    redis.on('error', () => undefined);
    clients.push(redis);
    if (redis.status !== 'ready') await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    const errors: LogLine[] = [];
    const logger = createLogger('error', { write: (line: string) => void errors.push(JSON.parse(line) as LogLine) });
    const h = await createHarness({
      redis,
      logger,
      env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients, REDIS_PREFIX: `test:${randomUUID()}:`, ...env },
    });
    harnesses.push(h);
    return { h, errors };
  }

  const signed = (h: Harness, method: string, path: string, options: Parameters<ReturnType<typeof signedAs>>[2] = {}) =>
    signedAs(h, ios)(method, path, options).timeout(BOUND_MS);
  const me = (h: Harness, accessToken: string) => signed(h, 'GET', '/users/me', { headers: bearer(accessToken) });
  const login = (h: Harness, email: string) => signed(h, 'POST', '/auth/login', { body: { email, password: GOOD_PASSWORD } });
  const jwks = (h: Harness) => request(h.app).get('/.well-known/jwks.json').timeout(BOUND_MS);
  const probe = (h: Harness, path: '/healthz' | '/readyz') => request(h.app).get(path).timeout(BOUND_MS);
  const storeErrors = async (h: Harness) => {
    const text = (await request(h.app).get('/metrics').timeout(BOUND_MS)).text;
    return Number(/^gatehouse_rate_limit_store_errors_total (\d+)/m.exec(text)?.[1] ?? NaN);
  };

  async function register(h: Harness): Promise<{ email: string; accessToken: string }> {
    const email = uniqueEmail('redis');
    const res = await signed(h, 'POST', '/auth/register', { body: { email, password: GOOD_PASSWORD } });
    if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { email, accessToken: res.body.accessToken };
  }

  function expectUnavailable(res: request.Response): void {
    expectProblem(res, 503, 'UNAVAILABLE');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  }

  /** Once the app's client has reconnected: /readyz pings Redis. */
  const redisIsBack = (h: Harness) => waitUntil(async () => (await probe(h, '/readyz')).status === 200, 'the app reaches Redis again');

  /**
   * Requests in a loop, two at a time (a signed one and a rate-limited one), until stopped:
   * what each answered, and whether Redis was away, known to be, when it was sent.
   */
  function traffic(h: Harness, accessToken: string) {
    const seen: Array<{ kind: 'signed' | 'limited'; res: request.Response }> = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        const [signedRes, limitedRes] = await Promise.all([me(h, accessToken), jwks(h)]);
        seen.push({ kind: 'signed', res: signedRes }, { kind: 'limited', res: limitedRes });
      }
    })();
    return {
      seen,
      /** Resolves once `n` more rounds have been answered. */
      rounds: (n: number) => {
        const target = seen.length + 2 * n;
        return waitUntil(() => seen.length >= target, `${n} more rounds of traffic`);
      },
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  it('when Redis stops during traffic and starts again, then signed requests answer 503 with Retry-After while it is away and are served once it is back, rate-limited ones pass throughout, none hangs and none is a 500', async () => {
    const { h } = await app();
    const user = await register(h);
    const load = traffic(h, user.accessToken);
    await load.rounds(3);

    await redisServer.stop();
    // While it is away: replay protection cannot be checked, so signed requests are refused.
    expectUnavailable(await me(h, user.accessToken));
    expectUnavailable(await login(h, user.email));
    expect((await jwks(h)).status).toBe(200);
    expectUnavailable(await probe(h, '/readyz'));
    expect((await probe(h, '/healthz')).status).toBe(200);
    await load.rounds(3);

    await redisServer.start();
    await redisIsBack(h);
    expect((await me(h, user.accessToken)).status).toBe(200);
    expect((await login(h, user.email)).status).toBe(200);
    await load.rounds(3);
    await load.stop();

    const signedStatuses = load.seen.filter((r) => r.kind === 'signed').map((r) => r.res.status);
    for (const { kind, res } of load.seen) {
      if (kind === 'limited' || res.status === 200) expect(res.status).toBe(200);
      else expectUnavailable(res);
    }
    // The traffic saw the outage and the recovery.
    expect(signedStatuses).toContain(503);
    expect(signedStatuses.at(-1)).toBe(200);
  });

  it('when Redis is back after an outage, then a nonce is refused the second time again (replay protection recovered)', async () => {
    const { h } = await app();
    const user = await register(h);
    await redisServer.stop();
    const nonce = newNonce();
    expectUnavailable(await signed(h, 'GET', '/users/me', { headers: bearer(user.accessToken), nonce }));

    await redisServer.start();
    await redisIsBack(h);

    // The refused request was never remembered: its nonce is new to the store, once.
    expect((await signed(h, 'GET', '/users/me', { headers: bearer(user.accessToken), nonce })).status).toBe(200);
    expectProblem(await signed(h, 'GET', '/users/me', { headers: bearer(user.accessToken), nonce }), 401, 'SIGNATURE_REPLAYED');
  });

  it('when Redis is away, then rate limits let requests through, each logged and counted in gatehouse_rate_limit_store_errors_total; once it is back they count again', async () => {
    const { h, errors } = await app({ RATE_LIMIT_MAX: '3' });
    for (let i = 0; i < 3; i++) expect((await jwks(h)).status).toBe(200);
    expectProblem(await jwks(h), 429, 'RATE_LIMITED');

    await redisServer.stop();
    const countedBefore = await storeErrors(h);
    const loggedBefore = errors.length;
    const passed = await Promise.all(Array.from({ length: 6 }, () => jwks(h)));

    expect(passed.map((res) => res.status)).toEqual(Array(6).fill(200));
    expect((await storeErrors(h)) - countedBefore).toBe(6);
    const logged = errors.slice(loggedBefore);
    expect(logged).toHaveLength(6);
    for (const line of logged) expect(line.level).toBe(50);

    await redisServer.start();
    await redisIsBack(h);
    // The restarted Redis is empty: the count starts again, and reaches the limit again.
    const statuses: number[] = [];
    for (let i = 0; i < 10 && !statuses.includes(429); i++) statuses.push((await jwks(h)).status);
    expect(statuses).toContain(429);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(3);
  });

  it('when Redis freezes (its connections open, nothing answering), then signed requests answer 503 and rate-limited ones pass, none waiting on it; once it runs again both recover', async () => {
    const { h, errors } = await app({ RATE_LIMIT_MAX: '1000' });
    const user = await register(h);
    redisServer.pause();
    const countedBefore = await storeErrors(h);

    const [signedRes, limitedRes, readyz] = await Promise.all([me(h, user.accessToken), jwks(h), probe(h, '/readyz')]);

    expectUnavailable(signedRes);
    expect(limitedRes.status).toBe(200);
    expectUnavailable(readyz);
    expect((await storeErrors(h)) - countedBefore).toBeGreaterThan(0);
    expect(errors.length).toBeGreaterThan(0);

    redisServer.resume();
    await redisIsBack(h);
    expect((await me(h, user.accessToken)).status).toBe(200);
    const countedAfter = await storeErrors(h);
    expect((await jwks(h)).status).toBe(200);
    expect(await storeErrors(h)).toBe(countedAfter);
  });
});
