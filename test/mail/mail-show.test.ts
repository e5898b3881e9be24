import { main } from '../../scripts/mail-show';
import type { ScriptIo } from '../../scripts/cli';
import { createMailDispatcher } from '../../src/mail/dispatcher';
import { createLogger } from '../../src/logger';
import type { MailTransport } from '../../src/mail/transport';
import { createTestClock } from '../helpers/clock';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { TEST_ENV } from '../helpers/harness';
import { queueMail } from './mail-helpers';

describe.each(DATABASE_KINDS)('npm run mail:show (%s)', (kind) => {
  let database: PrivateDatabase;
  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'mail_show');
  });
  afterAll(() => database.dispose());

  async function run(argv: string[]) {
    let stdout = '';
    let stderr = '';
    const io: ScriptIo = {
      env: { ...TEST_ENV },
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      // The suite's database, left open for the next run.
      openDatabase: () => Promise.resolve({ ...database.handle, close: () => Promise.resolve() }),
    };
    const code = await main(argv, io);
    return { code, stdout, stderr };
  }

  it('when messages wait in the outbox, then it prints the latest, newest first, with their links; a sent one shows no link', async () => {
    const clock = createTestClock();
    const sent = await queueMail(database.handle.db, clock.now());
    // A transport that accepts anything, so the first message is sent and its link cleared.
    const accepting: MailTransport = { name: 'test', send: () => Promise.resolve(), close: () => Promise.resolve() };
    const dispatcher = createMailDispatcher({
      db: database.handle.db,
      transport: accepting,
      logger: createLogger('silent'),
      maxAttempts: 3,
      clock: clock.now,
    });
    await dispatcher.dispatchOnce();
    await dispatcher.stop();
    clock.advance(1);
    const older = await queueMail(database.handle.db, clock.now(), { kind: 'email_verification' });
    clock.advance(1);
    const newest = await queueMail(database.handle.db, clock.now());

    const { code, stdout, stderr } = await run(['--limit', '3']);

    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const ids = [...stdout.matchAll(/id {7}(\S+)/g)].map((m) => m[1]);
    expect(ids).toEqual([newest.id, older.id, sent.id]);
    expect(stdout).toContain(`link     ${newest.link}`);
    expect(stdout).toContain(`link     ${older.link}`);
    expect(stdout).not.toContain(sent.link);
    expect(stdout).toMatch(/state {4}sent /);
    expect(stdout).toContain(`email_verification  to ${older.to}`);

    const limited = await run(['--limit', '1']);
    expect([...limited.stdout.matchAll(/id {7}(\S+)/g)].map((m) => m[1])).toEqual([newest.id]);
  });

  it('when asked for help, then it says the links are printed on purpose; a bad --limit exits 1', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/prints the links ON PURPOSE/);

    const bad = await run(['--limit', '0']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^mail:show: --limit must be a whole number/);
  });
});
