import { randomBytes } from 'node:crypto';
import { createMailDispatcher, type MailEvents } from '../../src/mail/dispatcher';
import { createLogger } from '../../src/logger';
import { createWebhookTransport } from '../../src/mail/webhook';
import { createTestClock, type TestClock } from '../helpers/clock';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { capturedLogger, outboxRow, queueMail, settleOutbox, startWebhookReceiver, type WebhookReceiver } from './mail-helpers';

describe.each(DATABASE_KINDS)('webhook delivery (%s)', (kind) => {
  const secret = randomBytes(32).toString('base64url');
  let database: PrivateDatabase;
  let receiver: WebhookReceiver;
  let clock: TestClock;

  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'mail_webhook');
    receiver = await startWebhookReceiver(secret);
  });
  afterAll(async () => {
    await receiver.close();
    await database.dispose();
  });
  beforeEach(() => {
    clock = createTestClock();
    receiver.deliveries.length = 0;
    receiver.handledIds.clear();
    receiver.answerNext(0, 200);
  });
  afterEach(() => settleOutbox(database.handle.db));

  function counting(): { events: MailEvents; counted: string[] } {
    const counted: string[] = [];
    const count = (what: string) => (k: string) => void counted.push(`${what} ${k}`);
    return { counted, events: { sent: count('sent'), retried: count('retried'), failed: count('failed') } };
  }

  function dispatcher(
    options: { secret?: string; maxAttempts?: number; events?: MailEvents; logger?: ReturnType<typeof createLogger> } = {},
  ) {
    return createMailDispatcher({
      db: database.handle.db,
      transport: createWebhookTransport({ url: receiver.url, secret: options.secret ?? secret, productName: 'Acme', timeoutMs: 5000 }),
      logger: options.logger ?? createLogger('silent'),
      maxAttempts: options.maxAttempts ?? 8,
      clock: clock.now,
      random: () => 0,
      retryBaseSeconds: 10,
      ...(options.events ? { events: options.events } : {}),
    });
  }

  it('when a message is delivered, then the receiver gets a signed JSON event it verifies with gatehouse/signer', async () => {
    const mail = await queueMail(database.handle.db, clock.now(), { kind: 'email_verification', ttlSeconds: 86_400 });
    const mailer = dispatcher();

    expect(await mailer.dispatchOnce()).toEqual({ sent: 1, retried: 0, failed: 0 });
    await mailer.stop();

    expect(receiver.deliveries).toHaveLength(1);
    const [delivery] = receiver.deliveries;
    expect(delivery!.signatureValid).toBe(true);
    expect(delivery!.headers).toEqual(
      expect.objectContaining({
        'content-type': 'application/json',
        'x-client-id': 'gatehouse',
        'x-gatehouse-event': 'email_verification',
        'x-gatehouse-event-id': mail.id,
        'x-signature': expect.stringMatching(/^sha256=[0-9a-f]{64}$/),
        'x-nonce': expect.stringMatching(/^[A-Za-z0-9_-]{16,64}$/),
      }),
    );
    expect(delivery!.body).toEqual({
      type: 'email_verification',
      id: mail.id,
      to: mail.to,
      link: mail.link,
      expiresAt: new Date(clock.now().getTime() + 86_400_000).toISOString(),
      createdAt: clock.now().toISOString(),
      productName: 'Acme',
      attempt: 1,
    });
    expect(await outboxRow(database.handle.db, mail.id)).toEqual(expect.objectContaining({ link: null, attempts: 1 }));
  });

  it('when the receiver answers 500 three times, then the event is retried with backoff under the same id, each attempt signed, and handled once', async () => {
    const { events, counted } = counting();
    const mail = await queueMail(database.handle.db, clock.now());
    const mailer = dispatcher({ events });
    receiver.answerNext(3, 500);

    const results = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      results.push(await mailer.dispatchOnce());
      // Nothing is due before its backoff has passed (random() = 0: half of 10 × 2^(n−1) s).
      expect(await mailer.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 0 });
      clock.advance(5 * 2 ** (attempt - 1));
    }
    await mailer.stop();

    expect(results).toEqual([
      { sent: 0, retried: 1, failed: 0 },
      { sent: 0, retried: 1, failed: 0 },
      { sent: 0, retried: 1, failed: 0 },
      { sent: 1, retried: 0, failed: 0 },
    ]);
    expect(receiver.deliveries.map((d) => [d.status, d.signatureValid, d.body.id, d.body.attempt])).toEqual([
      [500, true, mail.id, 1],
      [500, true, mail.id, 2],
      [500, true, mail.id, 3],
      [200, true, mail.id, 4],
    ]);
    expect([...receiver.handledIds]).toEqual([mail.id]);
    expect(counted).toEqual(['retried password_reset', 'retried password_reset', 'retried password_reset', 'sent password_reset']);
  });

  it('when the same event arrives twice (a sender died after sending, before recording it), then the receiver drops the duplicate by id', async () => {
    const mail = await queueMail(database.handle.db, clock.now());
    const first = dispatcher();
    await first.dispatchOnce();
    await first.stop();
    // The row as a dead sender would have left it: sent, but not recorded.
    await database.handle.db
      .updateTable('mail_outbox')
      .set({ sent_at: null, link: mail.link, next_attempt_at: clock.now() })
      .where('id', '=', mail.id)
      .execute();

    const second = dispatcher();
    await second.dispatchOnce();
    await second.stop();

    expect(receiver.deliveries.map((d) => [d.status, d.body.id])).toEqual([
      [200, mail.id],
      [200, mail.id],
    ]);
    expect([...receiver.handledIds]).toEqual([mail.id]);
  });

  it('when every attempt fails up to MAIL_MAX_ATTEMPTS, then the message is failed, counted and logged without its link, and its link is cleared', async () => {
    const { events, counted } = counting();
    const { logger, lines } = capturedLogger();
    const mail = await queueMail(database.handle.db, clock.now(), { ttlSeconds: 86_400 });
    const mailer = dispatcher({ maxAttempts: 2, events, logger });
    receiver.answerNext(10, 503);

    await mailer.dispatchOnce();
    clock.advance(600);
    await mailer.dispatchOnce();
    clock.advance(600);
    expect(await mailer.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 0 });
    await mailer.stop();

    expect(receiver.deliveries.map((d) => d.status)).toEqual([503, 503]);
    expect(counted).toEqual(['retried password_reset', 'failed password_reset']);
    const row = await outboxRow(database.handle.db, mail.id);
    expect(row).toEqual(
      expect.objectContaining({ link: null, sent_at: null, attempts: 2, last_error: 'webhook: HTTP 503 (after 2 attempts)' }),
    );
    const failure = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((l) => l.msg === 'mail delivery failed for good');
    expect(failure).toEqual(expect.objectContaining({ mailId: mail.id, kind: 'password_reset', attempt: 2, level: 50 }));
    for (const line of lines) {
      expect(line).not.toContain(mail.link);
      expect(line).not.toContain(mail.token);
    }
  });

  it('when the receiver refuses an event (4xx other than 408 and 429), then it is failed at once; a bad signature (wrong secret) is such a refusal', async () => {
    const { events, counted } = counting();
    const refused = await queueMail(database.handle.db, clock.now());
    const mailer = dispatcher({ events });
    receiver.answerNext(1, 422);
    expect(await mailer.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 1 });

    const throttled = await queueMail(database.handle.db, clock.now());
    receiver.answerNext(1, 429);
    expect(await mailer.dispatchOnce()).toEqual({ sent: 0, retried: 1, failed: 0 });
    await mailer.stop();

    const forged = await queueMail(database.handle.db, clock.now());
    await settleOutboxExcept(forged.id);
    const wrongSecret = dispatcher({ secret: randomBytes(32).toString('base64url'), events });
    expect(await wrongSecret.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 1 });
    await wrongSecret.stop();

    expect(receiver.deliveries.map((d) => [d.body.id, d.status, d.signatureValid])).toEqual([
      [refused.id, 422, true],
      [throttled.id, 429, true],
      [forged.id, 401, false],
    ]);
    expect((await outboxRow(database.handle.db, refused.id)).last_error).toBe('webhook: HTTP 422 (refused)');
    expect(counted.filter((c) => c.startsWith('failed'))).toHaveLength(2);
  });

  it('when a message is due only after its link has expired, then it is failed without being sent', async () => {
    const { events, counted } = counting();
    const mail = await queueMail(database.handle.db, clock.now(), { ttlSeconds: 60 });
    clock.advance(60);
    const mailer = dispatcher({ events });

    expect(await mailer.dispatchOnce()).toEqual({ sent: 0, retried: 0, failed: 1 });
    await mailer.stop();

    expect(receiver.deliveries).toHaveLength(0);
    expect(counted).toEqual(['failed password_reset']);
    expect(await outboxRow(database.handle.db, mail.id)).toEqual(
      expect.objectContaining({ link: null, last_error: 'expired before delivery' }),
    );
  });

  /** Leaves only `id` pending. */
  async function settleOutboxExcept(id: string) {
    await database.handle.db
      .updateTable('mail_outbox')
      .set({ failed_at: new Date(), link: null, last_error: 'test cleanup' })
      .where('sent_at', 'is', null)
      .where('failed_at', 'is', null)
      .where('id', '!=', id)
      .execute();
  }
});
