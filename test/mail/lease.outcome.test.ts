import { createMailDispatcher, DISPATCHER_DEFAULTS } from '../../src/mail/dispatcher';
import { createLogger } from '../../src/logger';
import { MailSendError, type MailTransport, type OutgoingMail } from '../../src/mail/transport';
import { createTestClock, type TestClock } from '../helpers/clock';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { outboxRow, queueMail, settleOutbox } from './mail-helpers';

/*
 * A sender whose lease ran out while it was still sending (a slow receiver) and another that
 * claimed the message meanwhile: both send (at least once), and whatever order their outcomes
 * arrive in, the row must end as what happened: delivered if either delivered, and only the
 * current claim's holder may give it up or schedule it again.
 */

/** A transport whose sends each wait for the test to settle them. */
function heldTransport() {
  const waiting: Array<{ mail: OutgoingMail; settle: (error?: Error) => void }> = [];
  let arrived: (() => void) | undefined;
  const transport: MailTransport = {
    name: 'held',
    send: (mail) =>
      new Promise<void>((resolve, reject) => {
        waiting.push({ mail, settle: (error) => (error ? reject(error) : resolve()) });
        arrived?.();
      }),
    close: () => Promise.resolve(),
  };
  /** Resolves with the next send once it has started. */
  async function nextSend() {
    while (waiting.length === 0) await new Promise<void>((resolve) => (arrived = resolve));
    return waiting.shift()!;
  }
  return { transport, nextSend };
}

describe.each(DATABASE_KINDS)('mail outcomes after a lease ran out (%s)', (kind) => {
  let database: PrivateDatabase;
  let clock: TestClock;

  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'mail_lease');
  });
  afterAll(async () => {
    await database.dispose();
  });
  beforeEach(() => {
    clock = createTestClock();
  });
  afterEach(() => settleOutbox(database.handle.db));

  function sender() {
    const held = heldTransport();
    const dispatcher = createMailDispatcher({
      db: database.handle.db,
      transport: held.transport,
      logger: createLogger('silent'),
      maxAttempts: 8,
      clock: clock.now,
      random: () => 0,
    });
    return { dispatcher, nextSend: held.nextSend };
  }

  /** A claims the message and starts sending; its lease runs out; B claims it and starts sending too. */
  async function twoSenders() {
    const mail = await queueMail(database.handle.db, clock.now(), { ttlSeconds: 86_400 });
    const a = sender();
    const b = sender();
    const passA = a.dispatcher.dispatchOnce();
    const sendA = await a.nextSend();
    clock.advance(DISPATCHER_DEFAULTS.leaseSeconds + 1);
    const passB = b.dispatcher.dispatchOnce();
    const sendB = await b.nextSend();
    expect([sendA.mail.attempt, sendB.mail.attempt]).toEqual([1, 2]);
    return { mail, passA, sendA, passB, sendB };
  }

  it('when the stale sender is refused for good while the current one delivers, then the message is sent, not failed', async () => {
    const { mail, passA, sendA, passB, sendB } = await twoSenders();

    sendA.settle(new MailSendError('webhook: HTTP 400', true));
    await passA;
    sendB.settle();
    await passB;

    const row = await outboxRow(database.handle.db, mail.id);
    expect({ sent: row.sent_at !== null, failed: row.failed_at !== null, link: row.link }).toEqual({
      sent: true,
      failed: false,
      link: null,
    });
  });

  it('when the stale sender delivers after the current one was refused, then the message is recorded sent', async () => {
    const { mail, passA, sendA, passB, sendB } = await twoSenders();

    sendB.settle(new MailSendError('webhook: HTTP 400', true));
    await passB;
    sendA.settle();
    await passA;

    const row = await outboxRow(database.handle.db, mail.id);
    expect({ sent: row.sent_at !== null, failed: row.failed_at !== null, link: row.link }).toEqual({
      sent: true,
      failed: false,
      link: null,
    });
  });

  it('when the stale sender fails for good and the current one is still sending, then the row stays the current claim', async () => {
    const { mail, passA, sendA, passB, sendB } = await twoSenders();

    sendA.settle(new MailSendError('webhook: HTTP 400', true));
    await passA;
    const row = await outboxRow(database.handle.db, mail.id);
    expect({ failed: row.failed_at, attempts: row.attempts, hasLink: row.link !== null }).toEqual({
      failed: null,
      attempts: 2,
      hasLink: true,
    });

    sendB.settle();
    await passB;
  });

  it('when a send never ends (a server trickling its answer), then the attempt is abandoned at sendTimeoutSeconds, retried, and stop() returns', async () => {
    const mail = await queueMail(database.handle.db, clock.now(), { ttlSeconds: 86_400 });
    const never: MailTransport = { name: 'never', send: () => new Promise<void>(() => undefined), close: () => Promise.resolve() };
    const dispatcher = createMailDispatcher({
      db: database.handle.db,
      transport: never,
      logger: createLogger('silent'),
      maxAttempts: 8,
      clock: clock.now,
      random: () => 0,
      sendTimeoutSeconds: 0.2,
    });
    // Bounded here, so a hang fails with a message rather than a Jest timeout.
    const bound = new Promise<string>((resolve) => setTimeout(() => resolve('still sending after 5 s'), 5000).unref());

    const outcome = await Promise.race([dispatcher.dispatchOnce(), bound]);
    await Promise.race([dispatcher.stop(), bound]);

    expect(outcome).toEqual({ sent: 0, retried: 1, failed: 0 });
    expect(await outboxRow(database.handle.db, mail.id)).toEqual(
      expect.objectContaining({ attempts: 1, last_error: 'send timed out', sent_at: null }),
    );
  });
});
