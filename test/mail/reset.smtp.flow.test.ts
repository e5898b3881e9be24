import request from 'supertest';
import { createApp } from '../../src/app';
import { createRecoveryQueue } from '../../src/recovery/recovery.queue';
import { createMailDelivery } from '../../src/mail/delivery';
import type { MailDispatcher } from '../../src/mail/dispatcher';
import { createTestClock } from '../helpers/clock';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { registerUser } from '../helpers/factories';
import { testConfig } from '../helpers/harness';
import { testKeyStore } from '../helpers/keys';
import { capturedLogger, type SmtpReceiver, startSmtpReceiver } from './mail-helpers';

describe.each(DATABASE_KINDS)('password reset by SMTP, end to end (%s)', (kind) => {
  let database: PrivateDatabase;
  let smtp: SmtpReceiver;
  let mail: MailDispatcher;

  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'mail_flow');
    smtp = await startSmtpReceiver();
  });
  afterAll(async () => {
    await mail?.stop();
    await smtp.close();
    await database.dispose();
  });

  it('when a user asks for a reset, then the message reaches the SMTP server after the commit, and its link resets the password', async () => {
    const clock = createTestClock();
    const { logger, lines } = capturedLogger();
    const config = testConfig({
      MAIL_DELIVERY: 'smtp',
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Acme <no-reply@acme.test>',
      MAIL_PRODUCT_NAME: 'Acme',
      PASSWORD_RESET_URL: 'https://acme.test/reset?token={token}',
      LOG_LEVEL: 'debug',
    });
    mail = (await createMailDelivery({ config, db: database.handle.db, logger, clock: clock.now }))!;
    let wakes = 0;
    const recoveryQueue = createRecoveryQueue({ logger });
    const app = createApp({
      config,
      db: database.handle.db,
      keys: testKeyStore().store,
      logger,
      clock: clock.now,
      mailDispatcher: mail,
      // The server wakes the dispatcher here; the test runs the pass itself, explicitly.
      onMailQueued: () => void wakes++,
      recoveryQueue,
    });
    const user = await registerUser(app);
    await mail.dispatchOnce();
    smtp.received.length = 0;

    await request(app).post('/auth/password/forgot').send({ email: user.email }).expect(202);
    await recoveryQueue.settled();
    expect(wakes).toBeGreaterThanOrEqual(1);
    expect(smtp.received).toHaveLength(0);
    expect(await mail.dispatchOnce()).toEqual({ sent: 1, retried: 0, failed: 0 });

    expect(smtp.received).toHaveLength(1);
    const { parsed, envelopeTo } = smtp.received[0]!;
    expect(envelopeTo).toEqual([user.email]);
    expect(parsed.subject).toBe('Reset your Acme password');
    const link = /https:\/\/acme\.test\/reset\?token=([A-Za-z0-9_-]+)/.exec(parsed.text ?? '');
    expect(link).not.toBeNull();
    const token = link![1]!;
    expect(parsed.html).toContain(`href="${link![0]}"`);

    await request(app).post('/auth/password/reset').send({ token, newPassword: 'a brand new passphrase 42' }).expect(204);
    await request(app).post('/auth/login').send({ email: user.email, password: 'a brand new passphrase 42' }).expect(200);
    expect(lines.some((line) => line.includes('"msg":"mail sent"'))).toBe(true);
    for (const line of lines) expect(line).not.toContain(token);
  });
});
