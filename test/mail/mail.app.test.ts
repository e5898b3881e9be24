import request from 'supertest';
import { createApp } from '../../src/app';
import { createLogger } from '../../src/logger';
import { createMailDelivery } from '../../src/mail/delivery';
import type { MailDispatcher } from '../../src/mail/dispatcher';
import { createTestClock } from '../helpers/clock';
import { DATABASE_KINDS, openPrivateDatabase } from '../helpers/databases';
import { testConfig } from '../helpers/harness';
import { testKeyStore } from '../helpers/keys';
import { closedPort, queueMail } from './mail-helpers';

/** One sample of the Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line?.slice(series.length + 1);
}

describe.each(DATABASE_KINDS)('mail delivery in the app (%s)', (kind) => {
  it('when the SMTP server is down, then /readyz still answers 200, the attempts are counted, and /metrics shows the age of the oldest unsent message', async () => {
    const database = await openPrivateDatabase(kind, 'mail_app');
    let mail: MailDispatcher | undefined;
    let disposed = false;
    try {
      const clock = createTestClock();
      const config = testConfig({ MAIL_DELIVERY: 'smtp', SMTP_URL: `smtp://127.0.0.1:${await closedPort()}` });
      mail = await createMailDelivery({ config, db: database.handle.db, logger: createLogger('silent'), clock: clock.now });
      expect(mail).toBeDefined();
      const app = createApp({
        config,
        db: database.handle.db,
        keys: testKeyStore().store,
        logger: createLogger('silent'),
        clock: clock.now,
        mailDispatcher: mail!,
        onMailQueued: () => mail!.wake(),
      });
      const scrape = async () => (await request(app).get('/metrics').expect(200)).text;
      expect(sample(await scrape(), 'gatehouse_mail_outbox_oldest_unsent_age_seconds')).toBe('0');

      await queueMail(database.handle.db, clock.now());
      expect(await mail!.dispatchOnce()).toEqual({ sent: 0, retried: 1, failed: 0 });
      clock.advance(42);

      await request(app).get('/readyz').expect(200);
      const text = await scrape();
      expect(sample(text, 'gatehouse_mail_messages_retried_total{kind="password_reset"}')).toBe('1');
      expect(sample(text, 'gatehouse_mail_messages_sent_total{kind="password_reset"}')).toBeUndefined();
      expect(sample(text, 'gatehouse_mail_outbox_oldest_unsent_age_seconds')).toBe('42');

      // The database gone: the scrape still answers, the age reads NaN rather than a reassuring 0
      // (prom-client writes "Nan"; Prometheus parses it case-insensitively).
      await mail!.stop();
      mail = undefined;
      // dispose() closes the pool (and drops a scratch database); once only, or the drop is skipped.
      disposed = true;
      await database.dispose();
      expect(sample(await scrape(), 'gatehouse_mail_outbox_oldest_unsent_age_seconds')).toMatch(/^nan$/i);
    } finally {
      await mail?.stop();
      if (!disposed) await database.dispose();
    }
  });

  it('when MAIL_DELIVERY is outbox, then there is no dispatcher: messages stay in the outbox', async () => {
    const database = await openPrivateDatabase(kind, 'mail_outbox');
    try {
      expect(await createMailDelivery({ config: testConfig(), db: database.handle.db, logger: createLogger('silent') })).toBeUndefined();
    } finally {
      await database.dispose();
    }
  });
});
