import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { AppError } from '../../src/http/problem';
import type { Redis } from '../../src/redis';
import { MemoryNonceStore, nonceShareOf, RedisNonceStore } from '../../src/signature/nonce-store';
import { createTestClock } from '../helpers/clock';
import { createHarness, type Harness } from '../helpers/harness';
import { connectedRedis } from '../helpers/redis-server';
import { expectProblem, GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { newNonce, signedAs, testClients } from '../helpers/signing';

// The one allowed conditional skip: Redis-backed suites run where REDIS_URL is set (as in CI).
const describeIfRedis = process.env.REDIS_URL ? describe : describe.skip;

/** Resolves to the AppError code a promise rejects with. */
async function rejectionCode(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(AppError);
  return (error as AppError).code;
}

describe('MemoryNonceStore', () => {
  it('when a nonce is new, then it is remembered; when it comes again, then it is refused', async () => {
    const store = new MemoryNonceStore(createTestClock().now);
    await expect(store.remember('ios', 'nonce-aaaaaaaaaaaa', 600)).resolves.toBe(true);
    await expect(store.remember('ios', 'nonce-aaaaaaaaaaaa', 600)).resolves.toBe(false);
  });

  it('when two clients use the same nonce, then each is new for its client', async () => {
    const store = new MemoryNonceStore(createTestClock().now);
    await expect(store.remember('ios', 'nonce-bbbbbbbbbbbb', 600)).resolves.toBe(true);
    await expect(store.remember('android', 'nonce-bbbbbbbbbbbb', 600)).resolves.toBe(true);
  });

  it('when the ttl has not quite passed, then the nonce is still refused', async () => {
    const clock = createTestClock();
    const store = new MemoryNonceStore(clock.now);
    await store.remember('ios', 'nonce-cccccccccccc', 600);
    clock.advance(599);
    await expect(store.remember('ios', 'nonce-cccccccccccc', 600)).resolves.toBe(false);
  });

  it('when the ttl has passed, then the nonce is forgotten and new again', async () => {
    const clock = createTestClock();
    const store = new MemoryNonceStore(clock.now);
    await store.remember('ios', 'nonce-dddddddddddd', 600);
    clock.advance(600);
    await expect(store.remember('ios', 'nonce-dddddddddddd', 600)).resolves.toBe(true);
  });

  it('when entries expire, then they are pruned and the store shrinks', async () => {
    const clock = createTestClock();
    const store = new MemoryNonceStore(clock.now);
    for (let i = 0; i < 10; i += 1) await store.remember('ios', `old-nonce-${String(i).padStart(8, '0')}`, 60);
    expect(store.size).toBe(10);
    clock.advance(61);
    await store.remember('ios', 'new-nonce-00000000', 60);
    expect(store.size).toBe(1);
  });

  it('when it is full of live nonces, then it refuses with UNAVAILABLE rather than forget one', async () => {
    const clock = createTestClock();
    // One client may fill it all here (quota = cap): this is the global bound.
    const store = new MemoryNonceStore(clock.now, 3, 3);
    for (const nonce of ['nonce-1111111111111', 'nonce-2222222222222', 'nonce-3333333333333']) {
      await expect(store.remember('ios', nonce, 60)).resolves.toBe(true);
    }
    expect(await rejectionCode(store.remember('ios', 'nonce-4444444444444', 60))).toBe('UNAVAILABLE');
    // The live ones are all still known: none was dropped to make room.
    await expect(store.remember('ios', 'nonce-1111111111111', 60)).resolves.toBe(false);
    // Once they expire there is room again.
    clock.advance(61);
    await expect(store.remember('ios', 'nonce-4444444444444', 60)).resolves.toBe(true);
  });
});

/** Resolves to the AppError a promise rejects with. */
async function rejection(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

const nonceNo = (i: number) => `nonce-${String(i).padStart(12, '0')}`;

// One client's secret pulled out of an app must not let it fill the store and stop every client.
describe('MemoryNonceStore, per-client quota', () => {
  it('when one client has used its quota, then it gets UNAVAILABLE with a retryAfter, and another client is still served', async () => {
    const store = new MemoryNonceStore(createTestClock().now, 10, 3);
    for (let i = 0; i < 3; i += 1) await expect(store.remember('leaked', nonceNo(i), 60)).resolves.toBe(true);

    const refused = await rejection(store.remember('leaked', nonceNo(3), 60));

    expect(refused.code).toBe('UNAVAILABLE');
    expect(refused.retryAfter).toBeGreaterThan(0);
    for (let i = 0; i < 3; i += 1) await expect(store.remember('ios', nonceNo(i), 60)).resolves.toBe(true);
  });

  it('when a client over its quota replays a nonce it used, then it is told it is a replay, not to retry', async () => {
    const store = new MemoryNonceStore(createTestClock().now, 10, 2);
    await store.remember('leaked', nonceNo(0), 60);
    await store.remember('leaked', nonceNo(1), 60);

    await expect(store.remember('leaked', nonceNo(0), 60)).resolves.toBe(false);
  });

  it("when the client's nonces expire, then it has its quota back", async () => {
    const clock = createTestClock();
    const store = new MemoryNonceStore(clock.now, 10, 2);
    await store.remember('leaked', nonceNo(0), 60);
    await store.remember('leaked', nonceNo(1), 60);
    expect((await rejection(store.remember('leaked', nonceNo(2), 60))).code).toBe('UNAVAILABLE');

    clock.advance(60);

    await expect(store.remember('leaked', nonceNo(2), 60)).resolves.toBe(true);
    await expect(store.remember('leaked', nonceNo(3), 60)).resolves.toBe(true);
    expect(store.size).toBe(2);
  });

  it('when every client is within its quota but together they reach the cap, then the global cap still holds', async () => {
    const store = new MemoryNonceStore(createTestClock().now, 4, 2);
    for (const client of ['ios', 'android']) for (let i = 0; i < 2; i += 1) await store.remember(client, nonceNo(i), 60);

    expect((await rejection(store.remember('web', nonceNo(0), 60))).code).toBe('UNAVAILABLE');
  });

  it('when no quota is given, then one client may hold a quarter of the cap', async () => {
    const store = new MemoryNonceStore(createTestClock().now, 8);
    await store.remember('leaked', nonceNo(0), 60);
    await store.remember('leaked', nonceNo(1), 60);

    expect((await rejection(store.remember('leaked', nonceNo(2), 60))).code).toBe('UNAVAILABLE');
    for (let i = 0; i < 2; i += 1) await expect(store.remember('ios', nonceNo(i), 60)).resolves.toBe(true);
  });

  it.each([
    ['a quota of 0', 10, 0],
    ['a quota over the cap', 10, 11],
    ['a cap of 0', 0, undefined],
    ['a fractional quota', 10, 2.5],
  ])('when it is built with %s, then it is a TypeError (a caller bug, at start-up)', (_name, maxEntries, maxPerClient) => {
    expect(() => new MemoryNonceStore(createTestClock().now, maxEntries, maxPerClient)).toThrow(TypeError);
  });

  describe('through the app (createApp with a small store injected)', () => {
    const { ios, android, hmacClients } = testClients();
    let h: Harness;
    beforeAll(async () => {
      h = await createHarness({
        env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients },
        nonces: (clock) => new MemoryNonceStore(clock, 100, 2),
      });
    });
    afterAll(async () => {
      await h.close();
    });

    const login = () => ({ body: { email: uniqueEmail('nobody'), password: GOOD_PASSWORD } });

    it('when one client has spent its quota, then its next signed request answers 503 UNAVAILABLE with Retry-After, and the other client is served', async () => {
      for (let i = 0; i < 2; i += 1) expectProblem(await signedAs(h, ios)('POST', '/auth/login', login()), 401, 'INVALID_CREDENTIALS');

      const refused = await signedAs(h, ios)('POST', '/auth/login', login());

      expectProblem(refused, 503, 'UNAVAILABLE');
      expect(refused.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      expectProblem(await signedAs(h, android)('POST', '/auth/login', login()), 401, 'INVALID_CREDENTIALS');
    });
  });
});

describeIfRedis('RedisNonceStore', () => {
  let redis: Redis;
  let prefix: string;
  beforeAll(async () => {
    redis = await connectedRedis();
  });
  beforeEach(() => {
    prefix = `test:${randomUUID()}:nonce:`;
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('when a nonce is new, then it is remembered; when it comes again, then it is refused', async () => {
    const store = new RedisNonceStore(redis, prefix);
    await expect(store.remember('ios', 'nonce-aaaaaaaaaaaa', 600)).resolves.toBe(true);
    await expect(store.remember('ios', 'nonce-aaaaaaaaaaaa', 600)).resolves.toBe(false);
  });

  it('when two clients use the same nonce, then each is new for its client', async () => {
    const store = new RedisNonceStore(redis, prefix);
    await expect(store.remember('ios', 'nonce-bbbbbbbbbbbb', 600)).resolves.toBe(true);
    await expect(store.remember('android', 'nonce-bbbbbbbbbbbb', 600)).resolves.toBe(true);
  });

  it('when two stores share a prefix, then a nonce seen by one is refused by the other', async () => {
    const other = await connectedRedis();
    try {
      await expect(new RedisNonceStore(redis, prefix).remember('ios', 'nonce-shared000000', 600)).resolves.toBe(true);
      await expect(new RedisNonceStore(other, prefix).remember('ios', 'nonce-shared000000', 600)).resolves.toBe(false);
    } finally {
      await other.quit();
    }
  });

  it('when a nonce is remembered, then its key expires after the ttl', async () => {
    const store = new RedisNonceStore(redis, prefix);
    await store.remember('ios', 'nonce-eeeeeeeeeeee', 600);
    const keys = await redis.keys(`${prefix}*`);
    expect(keys).toHaveLength(1);
    const ttl = await redis.ttl(keys[0]!);
    expect(ttl).toBeGreaterThan(590);
    expect(ttl).toBeLessThanOrEqual(600);
  });

  it('when the client is disconnected, then it throws AppError UNAVAILABLE', async () => {
    const lost = await connectedRedis();
    lost.disconnect();
    const store = new RedisNonceStore(lost, prefix);
    expect(await rejectionCode(store.remember('ios', 'nonce-ffffffffffff', 600))).toBe('UNAVAILABLE');
  });

  describe('through the app, with Redis answering', () => {
    const { ios, hmacClients } = testClients();
    let h: Harness;
    let live: Redis;
    beforeAll(async () => {
      live = await connectedRedis();
      h = await createHarness({
        env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients, REDIS_PREFIX: `test:${randomUUID()}:` },
        redis: live,
      });
    });
    afterAll(async () => {
      await h.close();
      await live.quit();
    });

    it('when a signed login comes twice with one nonce, then the first is served and the second answers SIGNATURE_REPLAYED', async () => {
      const options = { body: { email: uniqueEmail(), password: GOOD_PASSWORD }, nonce: newNonce() };
      expectProblem(await signedAs(h, ios)('POST', '/auth/login', options), 401, 'INVALID_CREDENTIALS');
      expectProblem(await signedAs(h, ios)('POST', '/auth/login', options), 401, 'SIGNATURE_REPLAYED');
    });

    it('when a signed request is served, then its nonce is kept in Redis for longer than 2 × HMAC_MAX_SKEW', async () => {
      // A timestamp may be HMAC_MAX_SKEW ahead and then pass for 2 × HMAC_MAX_SKEW (the window is inclusive).
      const nonce = newNonce();
      expectProblem(
        await signedAs(h, ios)('POST', '/auth/login', { body: { email: uniqueEmail(), password: GOOD_PASSWORD }, nonce }),
        401,
        'INVALID_CREDENTIALS',
      );
      const keys = await live.keys(`${h.config.redisPrefix}*${nonce}`);
      expect(keys).toHaveLength(1);
      expect(await live.ttl(keys[0]!)).toBeGreaterThan(2 * h.config.hmacMaxSkew);
    });

    it('when GET /readyz is asked, then it answers 200', async () => {
      const res = await request(h.app).get('/readyz');
      expect(res.status).toBe(200);
    });
  });

  describe('through the app, with the Redis client disconnected', () => {
    const { ios, hmacClients } = testClients();
    let h: Harness;
    let lost: Redis;
    beforeAll(async () => {
      lost = await connectedRedis();
      h = await createHarness({
        env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients, REDIS_PREFIX: `test:${randomUUID()}:` },
        redis: lost,
      });
      lost.disconnect();
    });
    afterAll(async () => {
      await h.close();
    });

    it.each([
      ['POST', '/auth/login', { email: uniqueEmail(), password: GOOD_PASSWORD }],
      ['POST', '/auth/register', { email: uniqueEmail(), password: GOOD_PASSWORD }],
      ['GET', '/users/me', undefined],
    ])('when %s %s is signed correctly, then it answers 503 UNAVAILABLE with Retry-After', async (method, path, body) => {
      const res = await signedAs(h, ios)(method, path, { body, nonce: newNonce() });
      expectProblem(res, 503, 'UNAVAILABLE');
      expect(res.headers['retry-after']).toMatch(/^\d+$/);
    });

    it('when a signature is wrong, then it is still refused as SIGNATURE_INVALID (no store needed)', async () => {
      const res = await signedAs(h, ios)('POST', '/auth/login', {
        body: { email: uniqueEmail(), password: GOOD_PASSWORD },
        signature: `sha256=${'0'.repeat(64)}`,
      });
      expectProblem(res, 401, 'SIGNATURE_INVALID');
    });

    it('when GET /readyz is asked, then it answers 503 UNAVAILABLE', async () => {
      const res = await request(h.app).get('/readyz');
      expectProblem(res, 503, 'UNAVAILABLE');
    });

    it('when GET /healthz is asked, then it still answers 200', async () => {
      const res = await request(h.app).get('/healthz');
      expect(res.status).toBe(200);
    });
  });
});

describe('nonceShareOf', () => {
  it('when one client signs, then it may use the whole store; when several do, a quarter each', () => {
    expect(nonceShareOf(1, 1000)).toBe(1000);
    expect(nonceShareOf(0, 1000)).toBe(1000);
    expect(nonceShareOf(2, 1000)).toBe(250);
    expect(nonceShareOf(7, 3)).toBe(1);
  });

  it('when the store is built with the share of one client, then that client is refused only when the store is full', async () => {
    const store = new MemoryNonceStore(createTestClock().now, 8, nonceShareOf(1, 8));
    for (let i = 0; i < 8; i++) expect(await store.remember('only', `n${i}`, 60)).toBe(true);
    await expect(store.remember('only', 'n8', 60)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
