import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { createLogger } from '../../src/logger';
import { createMailDispatcher, type DispatchResult } from '../../src/mail/dispatcher';
import { createSmtpTransport } from '../../src/mail/smtp';
import { BUILT_IN_TEMPLATES } from '../../src/mail/templates';
import { createTestClock } from '../helpers/clock';
import { createScratchDatabase, type DatabaseKind, DATABASE_KINDS, openTestDatabase, type ScratchDatabase } from '../helpers/databases';
import { insertRecipient, queueMail, type SmtpReceiver, startSmtpReceiver } from './mail-helpers';

const MESSAGES = 50;

/**
 * Two instances: on PostgreSQL, two pools over one database (as two servers); the embedded
 * database belongs to one process, so there both dispatchers share its handle.
 */
async function openTwo(kind: DatabaseKind): Promise<{ first: DatabaseHandle; second: DatabaseHandle; dispose(): Promise<void> }> {
  if (kind === 'pglite') {
    const handle = await openTestDatabase('pglite');
    return { first: handle, second: handle, dispose: () => handle.close() };
  }
  const scratch: ScratchDatabase = await createScratchDatabase('mail_two');
  const first = await openDatabase({ databaseUrl: scratch.url });
  await migrateToLatest(first.db);
  const second = await openDatabase({ databaseUrl: scratch.url });
  return {
    first,
    second,
    dispose: async () => {
      await first.close();
      await second.close();
      await scratch.drop();
    },
  };
}

describe.each(DATABASE_KINDS)('two instances delivering one outbox (%s)', (kind) => {
  let smtp: SmtpReceiver;
  beforeAll(async () => {
    smtp = await startSmtpReceiver();
  });
  afterAll(() => smtp.close());

  it(`when two dispatchers work through ${MESSAGES} messages at the same time, then the SMTP server receives each exactly once`, async () => {
    const databases = await openTwo(kind);
    try {
      const clock = createTestClock();
      const recipient = await insertRecipient(databases.first.db, clock.now());
      const queued = [];
      for (let i = 0; i < MESSAGES; i++) queued.push(await queueMail(databases.first.db, clock.now(), { to: recipient }));
      // Small batches, so the two claim many times each and their claims interleave.
      const instance = (handle: DatabaseHandle) =>
        createMailDispatcher({
          db: handle.db,
          transport: createSmtpTransport({
            smtpUrl: smtp.url,
            from: 'a@b.test',
            productName: 'Acme',
            templates: BUILT_IN_TEMPLATES,
            timeoutMs: 10_000,
          }),
          logger: createLogger('silent'),
          maxAttempts: 3,
          clock: clock.now,
          batchSize: 3,
          concurrency: 2,
        });
      const a = instance(databases.first);
      const b = instance(databases.second);

      const results: DispatchResult[] = await Promise.all([a.dispatchOnce(), b.dispatchOnce(), a.dispatchOnce(), b.dispatchOnce()]);
      await Promise.all([a.stop(), b.stop()]);

      const ids = smtp.received.map((m) => m.parsed.headers.get('x-gatehouse-message-id') as string);
      expect(ids.sort()).toEqual(queued.map((q) => q.id).sort());
      expect(results.reduce((sum, r) => sum + r.sent, 0)).toBe(MESSAGES);
      // Both took part (on PostgreSQL each pool claims on its own connection).
      expect(results[0]!.sent + results[2]!.sent).toBeGreaterThan(0);
      expect(results[1]!.sent + results[3]!.sent).toBeGreaterThan(0);
      const pending = await databases.first.db
        .selectFrom('mail_outbox')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .where('sent_at', 'is', null)
        .executeTakeFirstOrThrow();
      expect(Number(pending.count)).toBe(0);
    } finally {
      await databases.dispose();
    }
  });
});
