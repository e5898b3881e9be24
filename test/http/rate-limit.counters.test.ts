import express, { type Express } from 'express';
import request from 'supertest';
import { errorHandler } from '../../src/http/error-handler';
import { rateLimits } from '../../src/http/rate-limit';
import { requestId } from '../../src/http/request-id';
import { createLogger } from '../../src/logger';
import type { Redis } from '../../src/redis';
import { expectProblem } from '../helpers/factories';

/*
 * The limiter alone, on a clock the test moves: the window resets, the headers count down,
 * two limits on one response, the client key, and a failing Redis store (fail open, counted,
 * logged, recovering). test/http/rate-limit.test.ts checks the limits through the whole app.
 */

const WINDOW_SECONDS = 60;
const LIMIT = 2;
const AUTH_LIMIT = 1;

interface Setup {
  app: Express;
  advance: (ms: number) => void;
  storeErrors: () => number;
  errorLines: Array<{ msg?: string; err?: { message?: string } }>;
}

function limitedApp(options: { trustProxy?: false | number; redis?: Redis } = {}): Setup {
  let now = 1_700_000_000_000;
  let storeErrors = 0;
  const errorLines: Setup['errorLines'] = [];
  const logger = createLogger('error', { write: (line: string) => void errorLines.push(JSON.parse(line) as Setup['errorLines'][number]) });
  const limits = rateLimits({
    config: {
      rateLimitWindow: WINDOW_SECONDS,
      rateLimitMax: LIMIT,
      authRateLimitMax: AUTH_LIMIT,
      redisPrefix: 'test:',
      trustProxy: options.trustProxy ?? false,
    },
    redis: options.redis,
    logger,
    // Redis says how long a window has left; the limiter then reads the real clock, as in production.
    ...(options.redis ? {} : { now: () => now }),
    onStoreError: () => {
      storeErrors += 1;
    },
  });
  const app = express();
  app.set('trust proxy', options.trustProxy ?? false);
  app.use(requestId());
  app.use(limits.global);
  app.get('/open', (_req, res) => void res.json({ ok: true }));
  app.post('/login', limits.auth, (_req, res) => void res.json({ ok: true }));
  app.use(errorHandler({ exposeDetails: false }));
  return {
    app,
    advance: (ms) => {
      now += ms;
    },
    storeErrors: () => storeErrors,
    errorLines,
  };
}

/** Sends `count` requests one after the other and returns their statuses. */
async function statuses(count: number, send: () => request.Test): Promise<number[]> {
  const result: number[] = [];
  for (let i = 0; i < count; i += 1) result.push((await send()).status);
  return result;
}

/**
 * A Redis that answers rate-limit-redis's two commands (SCRIPT LOAD, EVALSHA of its increment
 * script) from a map, or fails every command while `down`.
 */
function fakeRedis(): { redis: Redis; setDown: (down: boolean) => void; calls: string[] } {
  let down = false;
  const calls: string[] = [];
  const hits = new Map<string, number>();
  const call = async (command: string, ...args: string[]): Promise<unknown> => {
    calls.push(command);
    if (down) throw new Error('Connection is closed.');
    if (command === 'SCRIPT') return 'fake-sha';
    if (command === 'EVALSHA') {
      const key = args[2]!;
      const count = (hits.get(key) ?? 0) + 1;
      hits.set(key, count);
      return [count, Number(args[3])];
    }
    throw new Error(`unexpected command ${command}`);
  };
  return {
    redis: { call } as unknown as Redis,
    setDown: (value) => {
      down = value;
    },
    calls,
  };
}

describe('rate limit counters', () => {
  it(`when the window has passed, then the client has its whole limit again`, async () => {
    const { app, advance } = limitedApp();
    expect(await statuses(LIMIT + 1, () => request(app).get('/open'))).toEqual([200, 200, 429]);

    advance(WINDOW_SECONDS * 1000);
    const res = await request(app).get('/open');
    expect(res.status).toBe(200);
    expect(res.headers['ratelimit']).toBe(`"global"; r=${LIMIT - 1}; t=${WINDOW_SECONDS}`);
  });

  it('when time passes within the window, then t counts the whole seconds left, and a 429 says them in Retry-After', async () => {
    const { app, advance } = limitedApp();
    await request(app).get('/open');
    advance(20_500);
    const second = await request(app).get('/open');
    expect(second.headers['ratelimit']).toBe('"global"; r=0; t=40');

    advance(30_000);
    const limited = await request(app).get('/open');
    expectProblem(limited, 429, 'RATE_LIMITED');
    expect(limited.headers['retry-after']).toBe('10');
    expect(limited.headers['ratelimit']).toBe('"global"; r=0; t=10');
  });

  it('when the policy is sent, then it names the limit, the window and a partition key that is not the address', async () => {
    const { app } = limitedApp();
    const res = await request(app).get('/open');
    expect(res.headers['ratelimit-policy']).toMatch(new RegExp(`^"global"; q=${LIMIT}; w=${WINDOW_SECONDS}; pk=:[A-Za-z0-9+/]+=*:$`));
    expect(res.headers['ratelimit-policy']).not.toContain('127.0.0.1');
    // The same client keeps the same partition key.
    expect((await request(app).get('/open')).headers['ratelimit-policy']).toBe(res.headers['ratelimit-policy']);
  });

  it('when two limits apply to one request, then both are in RateLimit and RateLimit-Policy, global first', async () => {
    const { app } = limitedApp();
    const res = await request(app).post('/login');
    expect(res.status).toBe(200);
    expect(res.headers['ratelimit']).toBe(`"global"; r=${LIMIT - 1}; t=${WINDOW_SECONDS}, "auth"; r=0; t=${WINDOW_SECONDS}`);
    expect(res.headers['ratelimit-policy']).toMatch(/^"global"; q=2; w=60; pk=:[^:]+:, "auth"; q=1; w=60; pk=:[^:]+:$/);

    expectProblem(await request(app).post('/login'), 429, 'RATE_LIMITED');
  });

  describe('client key', () => {
    const from = (app: Express, address: string) => request(app).get('/open').set('X-Forwarded-For', address);

    it('when IPv6 clients share a /56, then they share a count; another /56 has its own', async () => {
      const { app } = limitedApp({ trustProxy: 1 });
      expect((await from(app, '2001:db8:0:1::1')).status).toBe(200);
      expect((await from(app, '2001:db8:0:2::99')).status).toBe(200);
      expectProblem(await from(app, '2001:db8:0:3::5'), 429, 'RATE_LIMITED');
      expect((await from(app, '2001:db8:0:100::1')).status).toBe(200);
    });

    it('when an IPv4 client is written as an IPv4-mapped IPv6 address, then it counts as the same client', async () => {
      const { app } = limitedApp({ trustProxy: 1 });
      await from(app, '203.0.113.9');
      await from(app, '::ffff:203.0.113.9');
      expectProblem(await from(app, '203.0.113.9'), 429, 'RATE_LIMITED');
    });

    it('when TRUST_PROXY is off, then X-Forwarded-For is not the key', async () => {
      const { app } = limitedApp();
      await from(app, '203.0.113.1');
      await from(app, '203.0.113.2');
      expectProblem(await from(app, '203.0.113.3'), 429, 'RATE_LIMITED');
    });
  });

  describe('with a Redis store', () => {
    it('when Redis answers, then the counts are its counts and the headers are the same', async () => {
      const fake = fakeRedis();
      const { app } = limitedApp({ redis: fake.redis });
      const first = await request(app).get('/open');
      expect(first.headers['ratelimit']).toBe(`"global"; r=${LIMIT - 1}; t=${WINDOW_SECONDS}`);
      expect(await statuses(2, () => request(app).get('/open'))).toEqual([200, 429]);
      expect(fake.calls).toContain('EVALSHA');
    });

    it('when Redis fails, then requests pass uncounted, each failure is counted and logged, and counting resumes when it is back', async () => {
      const fake = fakeRedis();
      const setup = limitedApp({ redis: fake.redis });
      await request(setup.app).get('/open').expect(200);
      fake.setDown(true);

      const during = await Promise.all([1, 2, 3, 4].map(() => request(setup.app).get('/open')));
      expect(during.map((res) => res.status)).toEqual([200, 200, 200, 200]);
      expect(during.map((res) => res.headers['ratelimit'])).toEqual([undefined, undefined, undefined, undefined]);
      expect(setup.storeErrors()).toBe(4);
      expect(setup.errorLines).toEqual(
        Array(4).fill(
          expect.objectContaining({
            msg: 'express-rate-limit: error from store, allowing request without rate-limiting.',
            err: expect.objectContaining({ message: 'Connection is closed.' }),
          }),
        ),
      );

      fake.setDown(false);
      // The first request after the outage finds the script load that failed during it, and
      // reloads it: it too passes uncounted. From the next one on, Redis counts again.
      const reloading = await request(setup.app).get('/open');
      expect({ status: reloading.status, header: reloading.headers['ratelimit'], errors: setup.storeErrors() }).toEqual({
        status: 200,
        header: undefined,
        errors: 5,
      });
      const after = await request(setup.app).get('/open');
      expect(after.headers['ratelimit']).toBe(`"global"; r=0; t=${WINDOW_SECONDS}`);
      expectProblem(await request(setup.app).get('/open'), 429, 'RATE_LIMITED');
    });

    it('when Redis is down as the limiter starts, then the failed script load is logged and counted, and later requests recover', async () => {
      const fake = fakeRedis();
      fake.setDown(true);
      const setup = limitedApp({ redis: fake.redis });
      await new Promise((resolve) => setImmediate(resolve));
      expect(setup.storeErrors()).toBe(2);
      expect(setup.errorLines.map((line) => line.msg)).toEqual([
        'express-rate-limit: async error during store initialization.',
        'express-rate-limit: async error during store initialization.',
      ]);

      fake.setDown(false);
      // The first request finds the failed load and reloads it; it passes uncounted.
      await request(setup.app).get('/open').expect(200);
      const res = await request(setup.app).get('/open');
      expect(res.headers['ratelimit']).toBe(`"global"; r=${LIMIT - 1}; t=${WINDOW_SECONDS}`);
    });
  });
});
