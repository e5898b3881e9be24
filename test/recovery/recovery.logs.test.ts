import request from 'supertest';
import { createLogger } from '../../src/logger';
import { DATABASE_KINDS } from '../helpers/databases';
import { registerUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { messagesTo, tokenFromLatestMessage } from './outbox';

const NEW_PASSWORD = 'a brand new passphrase';

describe.each(DATABASE_KINDS)('recovery and the logs (%s)', (kind) => {
  let h: Harness;
  const lines: string[] = [];
  beforeAll(async () => {
    h = await createHarness({ kind, logger: createLogger('trace', { write: (line: string) => void lines.push(line) }) });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when every recovery flow runs, refused and accepted, then no log line holds a token, a link or a password', async () => {
    const user = await registerUser(h.app);
    const verification = await tokenFromLatestMessage(h.database.db, user.email, 'email_verification');
    await request(h.app).post('/auth/password/forgot').send({ email: user.email }).expect(202);
    await h.settled();
    const reset = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');
    const links = (await messagesTo(h.database.db, user.email)).map((message) => message.link!);

    await request(h.app).post('/auth/password/reset').send({ token: reset, newPassword: 'short' }).expect(422);
    await request(h.app).post('/auth/password/reset').send({ token: reset, newPassword: NEW_PASSWORD }).expect(204);
    await request(h.app).post('/auth/password/reset').send({ token: reset, newPassword: NEW_PASSWORD }).expect(400);
    await request(h.app).post('/auth/email/verify').send({ token: verification }).expect(204);
    await request(h.app).post('/auth/email/verify').send({ token: verification }).expect(400);
    await request(h.app)
      .post('/auth/email/verify?token=' + verification)
      .send({ token: 42 })
      .expect(422);
    h.clock.advance(1);
    await request(h.app).post('/auth/email/verification').send({ email: user.email }).expect(202);
    await h.settled();

    expect(lines.length).toBeGreaterThan(5);
    const logged = lines.join('\n');
    for (const secret of [verification, reset, NEW_PASSWORD, ...links]) expect(logged).not.toContain(secret);
  });
});
