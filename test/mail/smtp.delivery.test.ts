import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../src/config';
import { type DispatcherOptions, createMailDispatcher } from '../../src/mail/dispatcher';
import { claimDueMail } from '../../src/mail/outbox.repository';
import { createSmtpTransport } from '../../src/mail/smtp';
import { BUILT_IN_TEMPLATES, loadMailTemplates, type MailTemplates } from '../../src/mail/templates';
import { createTestClock, type TestClock } from '../helpers/clock';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { createLogger } from '../../src/logger';
import { capturedLogger, closedPort, outboxRow, queueMail, settleOutbox, type SmtpReceiver, startSmtpReceiver } from './mail-helpers';

describe.each(DATABASE_KINDS)('SMTP delivery (%s)', (kind) => {
  let database: PrivateDatabase;
  let smtp: SmtpReceiver;
  let clock: TestClock;

  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'mail_smtp');
    smtp = await startSmtpReceiver();
  });
  afterAll(async () => {
    await smtp.close();
    await database.dispose();
  });
  beforeEach(() => {
    clock = createTestClock();
    smtp.received.length = 0;
    smtp.refuseNext(0, 0);
  });
  afterEach(() => settleOutbox(database.handle.db));

  function dispatcher(overrides: Partial<DispatcherOptions> & { smtpUrl?: string; templates?: MailTemplates; productName?: string } = {}) {
    const { smtpUrl, templates, productName, ...rest } = overrides;
    return createMailDispatcher({
      db: database.handle.db,
      transport: createSmtpTransport({
        smtpUrl: smtpUrl ?? smtp.url,
        from: 'Acme Accounts <accounts@acme.test>',
        productName: productName ?? 'Acme',
        templates: templates ?? BUILT_IN_TEMPLATES,
        timeoutMs: 5000,
      }),
      logger: createLogger('silent'),
      maxAttempts: 3,
      clock: clock.now,
      random: () => 0.5,
      ...rest,
    });
  }

  it('when a committed message is dispatched, then the SMTP server receives it with the link in both bodies, and the row is sent with its link cleared', async () => {
    const mail = await queueMail(database.handle.db, clock.now(), { ttlSeconds: 1800 });
    const mailer = dispatcher();

    const result = await mailer.dispatchOnce();
    await mailer.stop();

    expect(result).toEqual({ sent: 1, retried: 0, failed: 0 });
    expect(smtp.received).toHaveLength(1);
    const [message] = smtp.received;
    expect(message!.envelopeTo).toEqual([mail.to]);
    expect(message!.parsed.from?.value[0]?.address).toBe('accounts@acme.test');
    expect(message!.parsed.subject).toBe('Reset your Acme password');
    expect(message!.parsed.text).toContain(mail.link);
    expect(message!.parsed.text).toContain('30 minutes');
    expect(message!.parsed.html).toContain(`href="${mail.link}"`);
    expect(message!.parsed.headers.get('x-gatehouse-message-id')).toBe(mail.id);
    const row = await outboxRow(database.handle.db, mail.id);
    expect(row).toEqual(expect.objectContaining({ link: null, attempts: 1, failed_at: null }));
    expect(row.sent_at).toEqual(clock.now());
  });

  it('when MAIL_TEMPLATES_DIR replaces the templates, then the message uses them and the HTML escapes what it inserts', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-templates-'));
    try {
      await writeFile(path.join(dir, 'email_verification.subject.txt'), '{{productName}}: confirm {{to}}\n');
      await writeFile(path.join(dir, 'email_verification.txt'), 'Operator text for {{productName}}: {{link}} (until {{expiresAt}})\n');
      await writeFile(path.join(dir, 'email_verification.html'), '<p class="op">{{productName}} <a href="{{link}}">go</a></p>\n');
      const templates = await loadMailTemplates(dir);
      // Parts the folder lacks stay built in.
      expect(templates.password_reset).toEqual(BUILT_IN_TEMPLATES.password_reset);
      const mail = await queueMail(database.handle.db, clock.now(), { kind: 'email_verification' });
      const mailer = dispatcher({ templates, productName: 'Bits & <Bobs>' });

      await mailer.dispatchOnce();
      await mailer.stop();

      expect(smtp.received).toHaveLength(1);
      const { parsed } = smtp.received[0]!;
      expect(parsed.subject).toBe(`Bits & <Bobs>: confirm ${mail.to}`);
      expect(parsed.text).toBe(
        `Operator text for Bits & <Bobs>: ${mail.link} (until ${new Date(clock.now().getTime() + 1800_000).toISOString()})\n`,
      );
      expect(parsed.html).toContain('<p class="op">Bits &amp; &lt;Bobs&gt; <a href="');
      expect(parsed.html).toContain(mail.link.replace(/&/g, '&amp;'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('when an operator template names an unknown placeholder, then loading the templates is a ConfigError', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-templates-'));
    try {
      await writeFile(path.join(dir, 'password_reset.txt'), 'Hello {{userName}}: {{link}}');
      await expect(loadMailTemplates(dir)).rejects.toThrow(ConfigError);
      await expect(loadMailTemplates(dir)).rejects.toThrow(/\{\{userName\}\}/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('when the SMTP server is down, then the attempt is retried with backoff and the message goes out once it is back', async () => {
    const mail = await queueMail(database.handle.db, clock.now());
    const down = dispatcher({ smtpUrl: `smtp://127.0.0.1:${await closedPort()}`, retryBaseSeconds: 30 });

    expect(await down.dispatchOnce()).toEqual({ sent: 0, retried: 1, failed: 0 });
    await down.stop();
    const retrying = await outboxRow(database.handle.db, mail.id);
    expect(retrying).toEqual(expect.objectContaining({ attempts: 1, link: mail.link, sent_at: null, failed_at: null }));
    expect(retrying.last_error).toMatch(/^smtp: /);
    // Equal jitter with random() = 0.5: 30 × (1/2 + 1/4) s after the attempt.
    expect(retrying.next_attempt_at).toEqual(new Date(clock.now().getTime() + 23_000));

    const up = dispatcher();
    expect(await up.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 0 });
    clock.advance(23);
    expect(await up.dispatchOnce()).toEqual({ sent: 1, retried: 0, failed: 0 });
    await up.stop();
    expect(smtp.received.map((m) => m.parsed.text?.includes(mail.link))).toEqual([true]);
  });

  it('when the SMTP server answers 4xx, then it is retried; when it refuses the message with 5xx, then it is failed at once and its link cleared', async () => {
    const mail = await queueMail(database.handle.db, clock.now());
    const mailer = dispatcher();

    smtp.refuseNext(1, 451);
    expect(await mailer.dispatchOnce()).toEqual({ sent: 0, retried: 1, failed: 0 });
    clock.advance(60);
    smtp.refuseNext(1, 550);
    expect(await mailer.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 1 });
    await mailer.stop();

    const row = await outboxRow(database.handle.db, mail.id);
    expect(row).toEqual(expect.objectContaining({ attempts: 2, link: null, sent_at: null }));
    expect(row.failed_at).toEqual(clock.now());
    expect(row.last_error).toBe('smtp: EMESSAGE 550 (refused)');
    expect(smtp.received).toHaveLength(0);
  });

  it('when the process stops between the commit and the send, then a new dispatcher delivers the message after the restart', async () => {
    // The commit happened; the instance that made it died before any dispatch (no dispatcher ran).
    const mail = await queueMail(database.handle.db, clock.now());

    const restarted = dispatcher();
    expect(await restarted.dispatchOnce()).toEqual({ sent: 1, retried: 0, failed: 0 });
    await restarted.stop();

    expect(smtp.received.map((m) => m.envelopeTo)).toEqual([[mail.to]]);
  });

  it('when a sender claims a message and dies before sending, then no one else takes it until its lease runs out, and then it is delivered', async () => {
    const mail = await queueMail(database.handle.db, clock.now());
    // The dying sender: its claim (attempt 1, lease of 120 s) committed, then nothing more.
    const claimed = await claimDueMail(database.handle.db, clock.now(), new Date(clock.now().getTime() + 120_000), 10);
    expect(claimed.map((m) => m.id)).toEqual([mail.id]);

    const other = dispatcher({ leaseSeconds: 120 });
    expect(await other.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 0 });
    clock.advance(119);
    expect(await other.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 0 });
    clock.advance(1);
    expect(await other.dispatchOnce()).toEqual({ sent: 1, retried: 0, failed: 0 });
    await other.stop();

    expect(smtp.received).toHaveLength(1);
    expect(await outboxRow(database.handle.db, mail.id)).toEqual(expect.objectContaining({ attempts: 2, link: null }));
  });

  it('when every attempt fails up to MAIL_MAX_ATTEMPTS, then the message is failed and counted, its link cleared, and no log line carries the link or token', async () => {
    const { logger, lines } = capturedLogger();
    const counted: string[] = [];
    const events = {
      sent: (k: string) => counted.push(`sent ${k}`),
      retried: (k: string) => counted.push(`retried ${k}`),
      failed: (k: string) => counted.push(`failed ${k}`),
    };
    const mail = await queueMail(database.handle.db, clock.now(), { ttlSeconds: 86_400 });
    const down = dispatcher({ logger, events, maxAttempts: 3, smtpUrl: `smtp://127.0.0.1:${await closedPort()}` });

    for (let attempt = 1; attempt <= 3; attempt++) {
      await down.dispatchOnce();
      clock.advance(3600);
    }
    await down.stop();
    // And one that goes out, logged on the same logger.
    const other = await queueMail(database.handle.db, clock.now(), { kind: 'email_verification' });
    const up = dispatcher({ logger, events });
    await up.dispatchOnce();
    await up.stop();

    expect(counted).toEqual(['retried password_reset', 'retried password_reset', 'failed password_reset', 'sent email_verification']);
    const row = await outboxRow(database.handle.db, mail.id);
    expect(row).toEqual(expect.objectContaining({ attempts: 3, link: null, sent_at: null }));
    expect(row.last_error).toMatch(/^smtp: .* \(after 3 attempts\)$/);
    expect(smtp.received.map((m) => m.envelopeTo)).toEqual([[other.to]]);
    expect(lines.filter((line) => line.includes(mail.id)).map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual([
      'mail delivery failed; will retry',
      'mail delivery failed; will retry',
      'mail delivery failed for good',
    ]);
    expect(lines.some((line) => line.includes(other.id) && line.includes('mail sent'))).toBe(true);
    for (const line of lines) {
      for (const secret of [mail.link, mail.token, other.link, other.token]) expect(line).not.toContain(secret);
    }
  });
});
