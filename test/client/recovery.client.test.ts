import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient, type GatehouseError } from '../../src/client/client';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { messagesTo, tokenFromLatestMessage } from '../recovery/outbox';

// gatehouse/client's recovery calls against a real Gatehouse on a port of this process that
// requires signatures, over a database the test reads the outbox from (MAIL_DELIVERY=outbox).

const CLIENT_ID = 'recovery-app';
const SECRET = randomBytes(24).toString('base64url');
const NEW_PASSWORD = 'a brand new passphrase';

let h: Harness;
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  h = await createHarness({ env: { HMAC_MODE: 'required', HMAC_CLIENTS: `${CLIENT_ID}:${SECRET}`, REQUIRE_VERIFIED_EMAIL: 'true' } });
  server = h.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await h.close();
});

const newClient = () => createClient({ baseUrl, clientId: CLIENT_ID, secret: SECRET });

const errorOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as GatehouseError,
  );

describe('gatehouse/client: account recovery', () => {
  it('when a user registers, verifies with verifyEmail and logs in, then me() says emailVerified', async () => {
    const app = newClient();
    const email = uniqueEmail('client');
    const registered = await app.register({ email, password: GOOD_PASSWORD });
    expect(registered.user.emailVerified).toBe(false);

    await app.verifyEmail(await tokenFromLatestMessage(h.database.db, email, 'email_verification'));

    expect((await app.me()).emailVerified).toBe(true);
    expect((await newClient().login({ email, password: GOOD_PASSWORD })).user.emailVerified).toBe(true);
  });

  it('when an unverified user cannot log in, then resendEmailVerification sends a new link that verifies', async () => {
    const email = uniqueEmail('client');
    await newClient().register({ email, password: GOOD_PASSWORD });
    const app = newClient();
    expect((await errorOf(app.login({ email, password: GOOD_PASSWORD })))?.code).toBe('EMAIL_NOT_VERIFIED');

    h.clock.advance(1);
    await app.resendEmailVerification(email);
    // Its work is done after the answer.
    await h.settled();
    expect(await messagesTo(h.database.db, email, 'email_verification')).toHaveLength(2);
    await app.verifyEmail(await tokenFromLatestMessage(h.database.db, email, 'email_verification'));
    expect((await app.login({ email, password: GOOD_PASSWORD })).user.emailVerified).toBe(true);
  });

  it('when a signed-in user asks with requestEmailVerification, then a new link is written', async () => {
    const app = newClient();
    const email = uniqueEmail('client');
    await app.register({ email, password: GOOD_PASSWORD });
    await app.requestEmailVerification();
    expect(await messagesTo(h.database.db, email, 'email_verification')).toHaveLength(2);
  });

  it('when a user forgets the password, then forgotPassword and resetPassword set a new one that logs in, and the old session ends', async () => {
    const app = newClient();
    const email = uniqueEmail('client');
    await app.register({ email, password: GOOD_PASSWORD });

    await app.forgotPassword(email);
    await h.settled();
    await app.resetPassword(await tokenFromLatestMessage(h.database.db, email, 'password_reset'), NEW_PASSWORD);

    expect((await errorOf(app.me()))?.code).toBe('SIGNED_OUT');
    // The reset proved the address, so REQUIRE_VERIFIED_EMAIL lets the new password in.
    expect((await newClient().login({ email, password: NEW_PASSWORD })).user.email).toBe(email);
  });

  it('when forgotPassword is given an email without an account, then it resolves as for one with an account', async () => {
    await expect(newClient().forgotPassword(uniqueEmail('nobody'))).resolves.toBeUndefined();
  });

  it('when a token is wrong or the password weak, then the calls reject with Gatehouse’s code', async () => {
    const app = newClient();
    const email = uniqueEmail('client');
    await app.register({ email, password: GOOD_PASSWORD });
    await app.forgotPassword(email);
    await h.settled();
    const token = await tokenFromLatestMessage(h.database.db, email, 'password_reset');

    expect(await errorOf(app.resetPassword(token, 'short'))).toMatchObject({ code: 'WEAK_PASSWORD', status: 422 });
    expect(await errorOf(app.resetPassword('not-a-token', NEW_PASSWORD))).toMatchObject({ code: 'RESET_TOKEN_INVALID', status: 400 });
    expect(await errorOf(app.verifyEmail('not-a-token'))).toMatchObject({ code: 'VERIFY_TOKEN_INVALID', status: 400 });
    expect(await errorOf(app.forgotPassword('not an email'))).toMatchObject({ code: 'VALIDATION_FAILED', status: 422 });
  });

  it('when requestEmailVerification is called signed out, then it rejects with SIGNED_OUT without a request', async () => {
    expect(await errorOf(newClient().requestEmailVerification())).toMatchObject({ code: 'SIGNED_OUT', reason: 'NO_SESSION' });
  });
});
