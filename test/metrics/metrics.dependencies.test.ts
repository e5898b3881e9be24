import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createMetrics } from '../../src/metrics/metrics';
import { MemoryNonceStore } from '../../src/signature/nonce-store';
import { openTestDatabase } from '../helpers/databases';
import { expectProblem } from '../helpers/factories';
import { createHarness } from '../helpers/harness';
import { connectedRedis, startRedisServer } from '../helpers/redis-server';
import { newNonce, sendSigned, signedAs, testClients } from '../helpers/signing';
import { waitUntil } from '../helpers/wait';

// The metrics the alert rules (ops/prometheus) read for the stores and readiness:
// gatehouse_nonce_store_errors_total and gatehouse_dependency_up.

/** Skipped when REDIS_URL is unset (CI sets it, and has redis-server); the Redis stopped is a private one. */
const describeIfRedis = process.env.REDIS_URL ? describe : describe.skip;
/** A generous bound on each request (not a timing assertion): a hang fails here, with a message. */
const BOUND_MS = 15_000;

/** The value of one sample line of the Prometheus text, undefined when absent. */
function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('gatehouse_nonce_store_errors_total', () => {
  it('when the nonce store cannot record a nonce, then the request is refused with 503 and counted; a replay is not', async () => {
    const { ios, hmacClients } = testClients();
    // Room for one live nonce: the second signed request finds the store full.
    const { app, clock, close } = await createHarness({
      env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients },
      nonces: (now) => new MemoryNonceStore(now, 1),
    });
    try {
      const scrape = async () => (await request(app).get('/metrics').expect(200)).text;
      expect(sample(await scrape(), 'gatehouse_nonce_store_errors_total')).toBe(0);

      const nonce = newNonce();
      expectProblem(await sendSigned(app, ios, 'get', '/users/me', { now: clock.now(), nonce }), 401, 'TOKEN_MISSING');
      expectProblem(await sendSigned(app, ios, 'get', '/users/me', { now: clock.now(), nonce }), 401, 'SIGNATURE_REPLAYED');
      expect(sample(await scrape(), 'gatehouse_nonce_store_errors_total')).toBe(0);

      expectProblem(await sendSigned(app, ios, 'get', '/users/me', { now: clock.now() }), 503, 'UNAVAILABLE');
      expectProblem(await sendSigned(app, ios, 'get', '/users/me', { now: clock.now() }), 503, 'UNAVAILABLE');
      expect(sample(await scrape(), 'gatehouse_nonce_store_errors_total')).toBe(2);
    } finally {
      await close();
    }
  });
});

describe('gatehouse_dependency_up', () => {
  it('when the database answers, then it is 1; when it stops, then it is 0 and /readyz answers 503 too', async () => {
    const database = await openTestDatabase('pglite');
    try {
      const h = await createHarness({ database });
      const scrape = async () => (await request(h.app).get('/metrics').expect(200)).text;
      const up = await scrape();
      expect(sample(up, 'gatehouse_dependency_up{dependency="database"}')).toBe(1);
      // Without REDIS_URL there is no Redis to report on: no series rather than a 0 that would alert.
      expect(up).not.toContain('dependency="redis"');

      await database.close();
      expect(sample(await scrape(), 'gatehouse_dependency_up{dependency="database"}')).toBe(0);
      expectProblem(await request(h.app).get('/readyz'), 503, 'UNAVAILABLE');
    } finally {
      await database.close();
    }
  });

  it('when each scrape asks the readiness checks, then every configured dependency has its own series, as they answer now', async () => {
    let answers: Record<string, boolean | undefined> = { database: true, redis: true };
    const metrics = createMetrics({ readiness: () => Promise.resolve(answers) });
    const first = await metrics.registry.metrics();
    expect(sample(first, 'gatehouse_dependency_up{dependency="database"}')).toBe(1);
    expect(sample(first, 'gatehouse_dependency_up{dependency="redis"}')).toBe(1);

    answers = { database: true, redis: false };
    const second = await metrics.registry.metrics();
    expect(sample(second, 'gatehouse_dependency_up{dependency="database"}')).toBe(1);
    expect(sample(second, 'gatehouse_dependency_up{dependency="redis"}')).toBe(0);
  });

  it('when no readiness checks are given, then the gauge is not exported', async () => {
    expect(await createMetrics().registry.metrics()).not.toContain('gatehouse_dependency_up');
  });
});

describeIfRedis('with Redis (a private redis-server, stopped and started again)', () => {
  it('when Redis stops, then signed requests are counted in gatehouse_nonce_store_errors_total and gatehouse_dependency_up{dependency="redis"} is 0; when it is back, 1', async () => {
    const server = await startRedisServer();
    const redis = await connectedRedis(server.url);
    try {
      const { ios, hmacClients } = testClients();
      const h = await createHarness({
        redis,
        env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients, REDIS_PREFIX: `test:${randomUUID()}:` },
      });
      try {
        const scrape = async () => (await request(h.app).get('/metrics').timeout(BOUND_MS).expect(200)).text;
        const signed = () => signedAs(h, ios)('GET', '/users/me').timeout(BOUND_MS);
        const up = await scrape();
        expect(sample(up, 'gatehouse_dependency_up{dependency="redis"}')).toBe(1);
        expect(sample(up, 'gatehouse_nonce_store_errors_total')).toBe(0);

        await server.stop();
        expectProblem(await signed(), 503, 'UNAVAILABLE');
        const down = await scrape();
        expect(sample(down, 'gatehouse_nonce_store_errors_total')).toBe(1);
        expect(sample(down, 'gatehouse_dependency_up{dependency="redis"}')).toBe(0);
        expect(sample(down, 'gatehouse_dependency_up{dependency="database"}')).toBe(1);

        await server.start();
        await waitUntil(
          async () => sample(await scrape(), 'gatehouse_dependency_up{dependency="redis"}') === 1,
          'the app reaches Redis again',
        );
        expectProblem(await signed(), 401, 'TOKEN_MISSING');
        expect(sample(await scrape(), 'gatehouse_nonce_store_errors_total')).toBe(1);
      } finally {
        await h.close();
      }
    } finally {
      redis.disconnect();
      await server.dispose();
    }
  });
});
