import { createClient, type GatehouseError, memoryStorage, type Tokens } from '../../src/client/client';
import { type AppServer, startAppServer } from '../helpers/app-server';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';

// gatehouse/client as the browser example uses it (no secret, refreshCookie: true), against a
// real Gatehouse in cookie mode, with a fetch that does what a browser page does: sends its
// Origin, and keeps and sends cookies only for a request made with credentials. Runs without
// Chromium; test/browser/signin.browser.test.ts walks the same flow in a real browser.

const PAGE_ORIGIN = 'http://localhost:5173';
const SIGNATURE_HEADERS = ['x-client-id', 'x-timestamp', 'x-nonce', 'x-signature'];

let gatehouse: AppServer;

beforeAll(async () => {
  gatehouse = await startAppServer({ CORS_ORIGINS: PAGE_ORIGIN, HMAC_MODE: 'optional' });
}, 60_000);

afterAll(async () => {
  await gatehouse?.dispose();
});

interface Sent {
  path: string;
  body: string | undefined;
  headers: Headers;
  credentials: RequestInit['credentials'];
}

/** A browser's cookie jar for one site, and the fetch of a page on PAGE_ORIGIN that uses it. */
function browserLike() {
  const jar = new Map<string, string>();
  const sent: Sent[] = [];
  const pageFetch: typeof fetch = async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const headers = new Headers(init.headers);
    headers.set('Origin', PAGE_ORIGIN);
    const withCookies = init.credentials === 'include';
    // Path=/auth: the cookie goes to /auth/* only.
    if (withCookies && url.pathname.startsWith('/auth/') && jar.size > 0) {
      headers.set('Cookie', [...jar].map(([name, value]) => `${name}=${value}`).join('; '));
    }
    sent.push({ path: url.pathname, body: init.body as string | undefined, headers, credentials: init.credentials });
    const res = await fetch(url, { ...init, headers });
    if (withCookies) {
      for (const line of res.headers.getSetCookie()) {
        const [pair = ''] = line.split(';');
        const [name = '', value = ''] = pair.split('=');
        if (value === '' || /expires=thu, 01 jan 1970/i.test(line)) jar.delete(name);
        else jar.set(name, value);
      }
    }
    return res;
  };
  return { jar, sent, fetch: pageFetch };
}

/** A page load: a new client, nothing in memory, the browser's cookies as they were. */
function loadPage(browser: ReturnType<typeof browserLike>) {
  const storage = memoryStorage();
  const signedOut: GatehouseError[] = [];
  const client = createClient({
    baseUrl: gatehouse.baseUrl,
    refreshCookie: true,
    storage,
    fetch: browser.fetch,
    onSignedOut: (error) => signedOut.push(error),
  });
  return { client, storage, signedOut };
}

const errorOf = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as GatehouseError,
  );

describe('createClient without a secret', () => {
  it.each([
    { given: 'a clientId without a secret', options: { clientId: 'web' } },
    { given: 'a secret without a clientId', options: { secret: 'a-long-local-development-secret-0123456789' } },
  ])('when given $given, then it throws a TypeError', ({ options }) => {
    expect(() => createClient({ baseUrl: gatehouse.baseUrl, ...options })).toThrow(TypeError);
  });

  it('when it has neither, then its requests are unsigned, and Gatehouse with HMAC_MODE=optional answers them', async () => {
    const browser = browserLike();
    const { client } = loadPage(browser);
    await client.register({ email: uniqueEmail('unsigned'), password: GOOD_PASSWORD });
    await expect(client.me()).resolves.toMatchObject({ roles: ['user'] });
    for (const request of browser.sent) for (const name of SIGNATURE_HEADERS) expect(request.headers.has(name)).toBe(false);
  });
});

describe('cookie mode (refreshCookie: true)', () => {
  it('when a user logs in, then every request carries credentials and the client keeps no refresh token', async () => {
    const browser = browserLike();
    const { client, storage } = loadPage(browser);
    const result = await client.register({ email: uniqueEmail('cookie'), password: GOOD_PASSWORD });

    expect(browser.jar.get('refresh_token')).toBe(result.refreshToken);
    expect(await storage.get()).toEqual<Tokens>({ accessToken: result.accessToken, refreshToken: '' });
    await client.me();
    expect(browser.sent.map((request) => request.credentials)).toEqual(['include', 'include']);
  });

  it('when the page loads again, then refresh() restores the session from the cookie alone', async () => {
    const browser = browserLike();
    const email = uniqueEmail('reload');
    await loadPage(browser).client.register({ email, password: GOOD_PASSWORD });
    const cookieBefore = browser.jar.get('refresh_token');

    const reloaded = loadPage(browser);
    const tokens = await reloaded.client.refresh();
    const refresh = browser.sent.at(-1)!;
    expect(refresh).toMatchObject({ path: '/auth/refresh', body: '{}' });
    expect(tokens.refreshToken).toBe('');
    // Rotated: the cookie now holds the successor.
    expect(browser.jar.get('refresh_token')).not.toBe(cookieBefore);
    await expect(reloaded.client.me()).resolves.toMatchObject({ email });
  });

  it('when the page loads with no cookie, then refresh() rejects SIGNED_OUT and onSignedOut is not called', async () => {
    const { client, signedOut } = loadPage(browserLike());
    const error = await errorOf(client.refresh());
    expect(error).toMatchObject({ code: 'SIGNED_OUT', reason: 'REFRESH_TOKEN_INVALID' });
    expect(signedOut).toEqual([]);
  });

  it('when a page with no tokens in memory logs out, then the cookie session ends and the cookie is cleared', async () => {
    const browser = browserLike();
    await loadPage(browser).client.register({ email: uniqueEmail('logout'), password: GOOD_PASSWORD });
    const cookie = browser.jar.get('refresh_token')!;

    await loadPage(browser).client.logout();
    expect(browser.sent.at(-1)).toMatchObject({ path: '/auth/logout', body: '{}' });
    expect(browser.jar.has('refresh_token')).toBe(false);

    // The session is over at Gatehouse, not only forgotten by this browser.
    const res = await fetch(`${gatehouse.baseUrl}/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: cookie }),
    });
    expect(res.status).toBe(401);
  });

  it('when the session is revoked elsewhere, then the next call rejects SIGNED_OUT and onSignedOut is called once', async () => {
    const browser = browserLike();
    const email = uniqueEmail('revoked');
    const page = loadPage(browser);
    await page.client.register({ email, password: GOOD_PASSWORD });

    const elsewhere = createClient({ baseUrl: gatehouse.baseUrl });
    await elsewhere.login({ email, password: GOOD_PASSWORD });
    expect((await elsewhere.fetch('/auth/logout-all', { method: 'POST' })).status).toBe(204);

    await expect(errorOf(page.client.me())).resolves.toMatchObject({ code: 'SIGNED_OUT', reason: 'SESSION_REVOKED' });
    expect(page.signedOut.map((error) => error.reason)).toEqual(['SESSION_REVOKED']);
    expect(await page.storage.get()).toBeUndefined();
  });
});
