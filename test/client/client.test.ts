import { randomBytes } from 'node:crypto';
import { createClient, type GatehouseError, memoryStorage, type Tokens, type TokenStorage } from '../../src/client/client';
import { type AppServer, startAppServer } from '../helpers/app-server';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';

// gatehouse/client against a real Gatehouse listening on a port (in this process) that
// requires signatures: every call below succeeding is proof it was signed.

const CLIENT_ID = 'test-app';
const SECRET = randomBytes(24).toString('base64url');
/** As the issue asks; Gatehouse's own routes still accept a token 30 s past its exp (CONTRACT.md section 4). */
const ACCESS_TOKEN_TTL = 2;
const SERVER_LEEWAY_SECONDS = 30;

let gatehouse: AppServer;
/** The sessions of the "after expiry" tests, begun first so that their wait overlaps the other tests. */
let expiring: Promise<ExpiringSessions>;

beforeAll(async () => {
  gatehouse = await startAppServer({
    HMAC_MODE: 'required',
    HMAC_CLIENTS: `${CLIENT_ID}:${SECRET}`,
    ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
  });
  expiring = beginExpiringSessions();
  // Its failure is reported by the tests that await it.
  expiring.catch(() => undefined);
}, 60_000);

afterAll(async () => {
  await gatehouse?.dispose();
});

/** The global fetch, counting requests by `METHOD /path`: how the tests see how often the client refreshed. */
function countingFetch() {
  const calls: string[] = [];
  const wrapped: typeof fetch = (input, init) => {
    const url = input instanceof Request ? input.url : input instanceof URL ? input.href : input;
    calls.push(`${init?.method ?? 'GET'} ${new URL(url).pathname}`);
    return fetch(input, init);
  };
  return { fetch: wrapped, count: (call: string) => calls.filter((c) => c === call).length, total: () => calls.length };
}

function newClient(options: { storage?: TokenStorage; secret?: string } = {}) {
  const counter = countingFetch();
  const signedOut: GatehouseError[] = [];
  const storage = options.storage ?? memoryStorage();
  const client = createClient({
    baseUrl: gatehouse.baseUrl,
    clientId: CLIENT_ID,
    secret: options.secret ?? SECRET,
    storage,
    fetch: counter.fetch,
    onSignedOut: (error) => signedOut.push(error),
  });
  return { client, counter, signedOut, storage };
}

const errorOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as GatehouseError,
  );

function expOf(accessToken: string): number {
  return (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
}

describe('createClient', () => {
  it.each([
    { bad: 'a relative baseUrl', options: { baseUrl: '/auth' } },
    { bad: 'no clientId', options: { clientId: '' } },
    { bad: 'no secret', options: { secret: '' } },
  ])('when given $bad, then it throws a TypeError', ({ options }) => {
    expect(() => createClient({ baseUrl: 'http://127.0.0.1:1', clientId: CLIENT_ID, secret: SECRET, ...options })).toThrow(TypeError);
  });
});

describe('calls with a live session', () => {
  it('when a user registers, then me() answers with that user and their permissions', async () => {
    const { client } = newClient();
    const email = uniqueEmail('client');

    const registered = await client.register({ email, password: GOOD_PASSWORD });
    const me = await client.me();

    expect(me).toEqual(
      expect.objectContaining({ id: registered.user.id, email, roles: ['user'], permissions: expect.arrayContaining(['profile:read']) }),
    );
  });

  it('when the client signs with a wrong secret, then Gatehouse refuses it with SIGNATURE_INVALID', async () => {
    const { client, storage } = newClient({ secret: randomBytes(24).toString('base64url') });

    const error = await errorOf(client.register({ email: uniqueEmail('client'), password: GOOD_PASSWORD }));

    expect({ code: error?.code, status: error?.status }).toEqual({ code: 'SIGNATURE_INVALID', status: 401 });
    expect(await storage.get()).toBeUndefined();
  });

  it('when login is refused, then the error carries the code and no tokens are stored', async () => {
    const email = uniqueEmail('client');
    await newClient().client.register({ email, password: GOOD_PASSWORD });
    const { client, storage } = newClient();

    const error = await errorOf(client.login({ email, password: 'not the password at all' }));

    expect(error?.code).toBe('INVALID_CREDENTIALS');
    expect(await storage.get()).toBeUndefined();
  });

  it('when fetch() calls a route with a query string, then the signed call succeeds', async () => {
    const { client } = newClient();
    await client.register({ email: uniqueEmail('client'), password: GOOD_PASSWORD });

    const res = await client.fetch('/users/me/sessions?view=all');

    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([expect.objectContaining({ current: true })]);
  });

  it('when the app keeps tokens in its own async storage, then the client reads and writes them there', async () => {
    let kept: Tokens | undefined;
    const storage: TokenStorage = { get: async () => kept, set: async (tokens) => void (kept = tokens) };
    const { client } = newClient({ storage });

    const registered = await client.register({ email: uniqueEmail('client'), password: GOOD_PASSWORD });
    expect(kept).toEqual({ accessToken: registered.accessToken, refreshToken: registered.refreshToken });
    await client.logout();

    expect(kept).toBeUndefined();
  });

  it('when five refresh() calls run at once, then one refresh request serves them all', async () => {
    const { client, counter, storage } = newClient();
    const registered = await client.register({ email: uniqueEmail('client'), password: GOOD_PASSWORD });

    const results = await Promise.all(Array.from({ length: 5 }, () => client.refresh()));

    expect(counter.count('POST /auth/refresh')).toBe(1);
    expect(new Set(results.map((t) => t.refreshToken)).size).toBe(1);
    expect(results[0]!.refreshToken).not.toBe(registered.refreshToken);
    expect(await storage.get()).toEqual(results[0]);
  });

  it('when the user logs out, then the tokens are gone and the old refresh token signs out whoever holds it', async () => {
    const { client, storage } = newClient();
    await client.register({ email: uniqueEmail('client'), password: GOOD_PASSWORD });
    const before = (await storage.get())!;

    await client.logout();

    expect(await storage.get()).toBeUndefined();
    expect((await errorOf(client.me()))?.code).toBe('SIGNED_OUT');
    const holder = newClient({ storage: memoryStorage() });
    await holder.storage.set(before);
    const error = await errorOf(holder.client.refresh());
    expect({ code: error?.code, reason: error?.reason }).toEqual({ code: 'SIGNED_OUT', reason: 'REFRESH_TOKEN_INVALID' });
    expect(holder.signedOut).toHaveLength(1);
  });

  it('when a refresh fails for a reason other than the session (a refused signature), then the tokens are kept', async () => {
    const good = newClient();
    await good.client.register({ email: uniqueEmail('client'), password: GOOD_PASSWORD });
    const tokens = (await good.storage.get())!;
    const misconfigured = newClient({ secret: randomBytes(24).toString('base64url') });
    await misconfigured.storage.set(tokens);

    const error = await errorOf(misconfigured.client.refresh());

    expect(error?.code).toBe('SIGNATURE_INVALID');
    expect(await misconfigured.storage.get()).toEqual(tokens);
    expect(misconfigured.signedOut).toEqual([]);
  });

  it('when another device logs out everywhere, then the next call ends signed-out once, without a refresh', async () => {
    const email = uniqueEmail('client');
    const phone = newClient();
    await phone.client.register({ email, password: GOOD_PASSWORD });
    const laptop = newClient();
    await laptop.client.login({ email, password: GOOD_PASSWORD });
    expect((await laptop.client.fetch('/auth/logout-all', { method: 'POST' })).status).toBe(204);

    const errors = await Promise.all(Array.from({ length: 3 }, () => errorOf(phone.client.me())));

    expect(errors.map((e) => e?.code)).toEqual(['SIGNED_OUT', 'SIGNED_OUT', 'SIGNED_OUT']);
    expect(phone.signedOut.map((e) => e.reason)).toEqual(['SESSION_REVOKED']);
    expect(phone.counter.count('POST /auth/refresh')).toBe(0);
    expect(await phone.storage.get()).toBeUndefined();
  });
});

interface ExpiringSessions {
  live: ReturnType<typeof newClient>;
  liveTokensBefore: Tokens;
  revoked: ReturnType<typeof newClient>;
  /** When, by Gatehouse's clock, it stops accepting either access token (ms). */
  expiredAt: number;
}

/** Two sessions: one live, one revoked from another device; both with access tokens about to expire. */
async function beginExpiringSessions(): Promise<ExpiringSessions> {
  const live = newClient();
  const liveUser = await live.client.register({ email: uniqueEmail('client'), password: GOOD_PASSWORD });

  const email = uniqueEmail('client');
  const revoked = newClient();
  const revokedUser = await revoked.client.register({ email, password: GOOD_PASSWORD });
  const otherDevice = newClient();
  await otherDevice.client.login({ email, password: GOOD_PASSWORD });
  const logoutAll = await otherDevice.client.fetch('/auth/logout-all', { method: 'POST' });
  if (logoutAll.status !== 204) throw new Error(`logout-all answered ${logoutAll.status}`);

  return {
    live,
    liveTokensBefore: { accessToken: liveUser.accessToken, refreshToken: liveUser.refreshToken },
    revoked,
    expiredAt: (Math.max(expOf(liveUser.accessToken), expOf(revokedUser.accessToken)) + SERVER_LEEWAY_SECONDS) * 1000,
  };
}

// Gatehouse's own routes accept an access token up to 30 s past its `exp`: rather than wait
// for that, these tests move Gatehouse's clock past it, once for both; each has its own user.
describe('calls after the access token expired', () => {
  let live: ExpiringSessions['live'];
  let liveTokensBefore: Tokens;
  let revoked: ExpiringSessions['revoked'];

  beforeAll(async () => {
    const sessions = await expiring;
    ({ live, liveTokensBefore, revoked } = sessions);
    gatehouse.clock.advance((Math.max(0, sessions.expiredAt - gatehouse.clock.now().getTime()) + 300) / 1000);
  }, 60_000);

  it('when twenty me() calls run at once, then one refresh serves them and all succeed', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => live.client.me()));

    expect(live.counter.count('POST /auth/refresh')).toBe(1);
    expect(new Set(results.map((me) => me.id)).size).toBe(1);
    // Each call was answered TOKEN_EXPIRED once and retried once.
    expect(live.counter.count('GET /users/me')).toBe(40);
    expect((await live.storage.get())?.refreshToken).not.toBe(liveTokensBefore.refreshToken);
    expect(live.signedOut).toEqual([]);
  });

  it('when the session was revoked, then concurrent calls end signed-out once, after one refused refresh', async () => {
    const errors = await Promise.all(Array.from({ length: 5 }, () => errorOf(revoked.client.me())));

    expect(errors.map((e) => e?.code)).toEqual(Array(5).fill('SIGNED_OUT'));
    expect(revoked.counter.count('POST /auth/refresh')).toBe(1);
    expect(revoked.signedOut).toHaveLength(1);
    expect(revoked.signedOut[0]!.reason).toMatch(/^REFRESH_TOKEN_/);
    expect(await revoked.storage.get()).toBeUndefined();

    // Signed out stays signed out: no request at all, so no loop.
    const requestsBefore = revoked.counter.total();
    expect((await errorOf(revoked.client.me()))?.code).toBe('SIGNED_OUT');
    expect(revoked.counter.total()).toBe(requestsBefore);
  });
});
