import request from 'supertest';
import { createApp } from '../../src/app';
import { createRecoveryQueue } from '../../src/recovery/recovery.queue';
import { createLogger } from '../../src/logger';
import { createTestClock } from '../helpers/clock';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { testConfig } from '../helpers/harness';
import { testKeyStore } from '../helpers/keys';

/** One sample of the Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line?.slice(series.length + 1);
}

/*
 * gatehouse_mail_messages_queued_total counts messages as they are queued (committed to the
 * outbox), by kind, whatever MAIL_DELIVERY does with them: with `outbox` nothing is ever
 * claimed, and the counter must still say what was asked for.
 */
describe.each(DATABASE_KINDS)('the queued-messages counter (%s)', (kind) => {
  let database: PrivateDatabase;
  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'mail_queued');
  });
  afterAll(async () => {
    await database.dispose();
  });

  it('when messages are queued with MAIL_DELIVERY=outbox, then /metrics counts them by kind once committed, and requests that queue nothing do not count', async () => {
    const recoveryQueue = createRecoveryQueue({ logger: createLogger('silent') });
    const app = createApp({
      config: testConfig({ RESET_MAX_PER_HOUR: '1' }),
      db: database.handle.db,
      keys: testKeyStore().store,
      logger: createLogger('silent'),
      clock: createTestClock().now,
      recoveryQueue,
    });
    const email = uniqueEmail('queued');
    const registered = await request(app).post('/auth/register').send({ email, password: GOOD_PASSWORD });
    expect(registered.status).toBe(201);
    for (let i = 0; i < 3; i++) expect((await request(app).post('/auth/password/forgot').send({ email })).status).toBe(202);
    // No account, and over the cap: answered alike, and nothing queued.
    expect(
      (
        await request(app)
          .post('/auth/password/forgot')
          .send({ email: uniqueEmail('nobody') })
      ).status,
    ).toBe(202);
    expect((await request(app).post('/auth/email/verification').send({ email })).status).toBe(202);
    // The requests by email are done after their answers.
    await recoveryQueue.settled();

    const text = (await request(app).get('/metrics').expect(200)).text;
    expect(sample(text, 'gatehouse_mail_messages_queued_total{kind="password_reset"}')).toBe('1');
    expect(sample(text, 'gatehouse_mail_messages_queued_total{kind="email_verification"}')).toBe('1');
    // Each of the five requests by email ran to its end, queuing a message or not.
    expect(sample(text, 'gatehouse_recovery_requests_total{outcome="done"}')).toBe('5');
  });
});
