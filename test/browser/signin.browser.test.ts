import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page, type Response } from 'playwright-core';
import { type ExampleServer, startExampleServer } from '../../examples/browser/serve';
import { createClient } from '../../src/client/client';
import { type AppServer, startAppServer } from '../helpers/app-server';
import { GOOD_PASSWORD, uniqueEmail, uniqueUsername } from '../helpers/factories';

// The Tracker app's sign-in flow (examples/browser) in Debian's Chromium, against a real
// Gatehouse in cookie mode: the page on its own origin (listed in CORS_ORIGINS), unsigned
// requests (HMAC_MODE=optional). Both on http://localhost, different ports: one site, two
// origins, as the example's README asks. A screenshot of each state goes to test-output/browser/.

const CHROMIUM = '/usr/bin/chromium';
const REQUIRED = (process.env.GATEHOUSE_REQUIRE_SUITES ?? '')
  .split(',')
  .map((name) => name.trim())
  .includes('browser');
const SKIP_REASON =
  existsSync(CHROMIUM) || REQUIRED ? undefined : `${CHROMIUM} not found (CI installs it; GATEHOUSE_REQUIRE_SUITES=browser fails instead)`;
if (SKIP_REASON) process.stderr.write(`browser sign-in suite skipped: ${SKIP_REASON}\n`);
const describeIfChromium = SKIP_REASON ? describe.skip : describe;

/** What the page's scripts can read, as the page sees it (the test program has no DOM types). */
interface PageGlobals {
  document: { cookie: string };
  localStorage: Record<string, string>;
  sessionStorage: Record<string, string>;
}

const SCREENSHOTS = path.join(__dirname, '../../test-output/browser');
/** Generous: two cores shared with other suites, and a cold Chromium. A state that never comes fails with its selector. */
const STATE_TIMEOUT = 30_000;
const STEP_TIMEOUT = 120_000;
/** Gatehouse's clock is moved past these (never waited for); its own routes allow 30 s of skew past `exp`. */
const ACCESS_TOKEN_TTL = 600;
const SESSION_MAX_AGE = 7200;
const SERVER_LEEWAY_SECONDS = 30;

describeIfChromium(`the Tracker app's sign-in flow in Chromium${SKIP_REASON ? ` (skipped: ${SKIP_REASON})` : ''}`, () => {
  let gatehouse: AppServer;
  let example: ExampleServer;
  let context: BrowserContext;
  let page: Page;
  let userDataDir: string;
  let pageOrigin: string;
  let gatehouseOrigin: string;
  /** Every token the browser received in a JSON body: none may end up where a script can read it. */
  const tokensSeen: string[] = [];
  const pageErrors: Error[] = [];
  const email = uniqueEmail('tracker');
  const username = uniqueUsername();

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`GATEHOUSE_REQUIRE_SUITES includes browser, but ${CHROMIUM} is missing`);
    rmSync(SCREENSHOTS, { recursive: true, force: true });
    mkdirSync(SCREENSHOTS, { recursive: true });

    // The page first (Gatehouse's CORS_ORIGINS names it), told where Gatehouse is once it listens.
    example = await startExampleServer({ gatehouseUrl: () => gatehouseOrigin, port: 0, host: '127.0.0.1' });
    pageOrigin = `http://localhost:${example.address.port}`;
    gatehouse = await startAppServer({
      CORS_ORIGINS: pageOrigin,
      HMAC_MODE: 'optional',
      ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
      REFRESH_TOKEN_TTL: String(SESSION_MAX_AGE),
      SESSION_MAX_AGE: String(SESSION_MAX_AGE),
    });
    gatehouseOrigin = gatehouse.baseUrl.replace('127.0.0.1', 'localhost');

    userDataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 800, height: 720 },
      timeout: STATE_TIMEOUT * 2,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(STATE_TIMEOUT);
    page.on('pageerror', (error) => pageErrors.push(error));
  }, STEP_TIMEOUT * 2);

  afterAll(async () => {
    await context?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await example?.close();
    await gatehouse?.dispose();
  }, STEP_TIMEOUT);

  afterEach(() => {
    // An uncaught exception in the page is a broken app, whatever the DOM shows.
    expect(pageErrors.map(String)).toEqual([]);
  });

  /** Waits for the app to settle in a state (main[data-state]); the screenshot, when named, is that state. */
  async function expectState(state: 'signed-in' | 'signed-out', screenshot?: string): Promise<void> {
    await page.locator(`#app[data-state="${state}"]`).waitFor();
    if (screenshot) await page.screenshot({ path: path.join(SCREENSHOTS, screenshot), fullPage: true });
  }

  const gatehouseCall = (method: string, pathname: string) => (res: Response) =>
    res.url() === `${gatehouseOrigin}${pathname}` && res.request().method() === method;

  /** Clicks and returns Gatehouse's answer to the call the click makes. */
  async function clickFor(button: string, method: string, pathname: string): Promise<Response> {
    const [answer] = await Promise.all([
      page.waitForResponse(gatehouseCall(method, pathname)),
      page.getByRole('button', { name: button }).click(),
    ]);
    return answer;
  }

  /** Reloads the page and returns Gatehouse's answer to the silent refresh the app makes on load. */
  async function reloadForRefresh(): Promise<Response> {
    const [refreshed] = await Promise.all([page.waitForResponse(gatehouseCall('POST', '/auth/refresh')), page.reload()]);
    return refreshed;
  }

  async function keepTokensOf(answer: Response): Promise<void> {
    const body = (await answer.json()) as { accessToken?: string; refreshToken?: string };
    for (const token of [body.accessToken, body.refreshToken]) if (token) tokensSeen.push(token);
  }

  /** Logs the user in through the form and waits until the page shows them signed in. */
  async function logIn(screenshot?: string): Promise<void> {
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(GOOD_PASSWORD);
    const loggedIn = await clickFor('Log in', 'POST', '/auth/login');
    expect(loggedIn.status()).toBe(200);
    await keepTokensOf(loggedIn);
    await expectState('signed-in', screenshot);
  }

  async function refreshCookie() {
    return (await context.cookies(gatehouseOrigin + '/auth/refresh')).find((cookie) => cookie.name === 'refresh_token');
  }

  /** Nothing a script of the page (or an injected one) can read holds a token. */
  async function expectNoTokenReadableByScripts(): Promise<void> {
    const readable = await page.evaluate(() => {
      // Runs in the page; this program is typed without the DOM library.
      const { document, localStorage, sessionStorage } = globalThis as unknown as PageGlobals;
      return { cookie: document.cookie, local: Object.entries(localStorage), session: Object.entries(sessionStorage) };
    });
    expect(readable).toEqual({ cookie: '', local: [], session: [] });
    const everything = JSON.stringify(readable);
    for (const token of tokensSeen) expect(everything).not.toContain(token);
  }

  /** A reload's silent refresh is refused, and the page stays on the login form with no token a script can read. */
  async function expectReloadStaysSignedOut(): Promise<void> {
    const refused = await reloadForRefresh();
    expect(refused.status()).toBe(401);
    await expectState('signed-out');
    await expectNoTokenReadableByScripts();
  }

  it(
    'when the page first loads with no cookie, then it shows the login form',
    async () => {
      await page.goto(pageOrigin);
      await expectState('signed-out', '1-login-form.png');
      await expect(page.locator('#login').isVisible()).resolves.toBe(true);
      await expect(page.locator('#message').isHidden()).resolves.toBe(true);
      expect(await refreshCookie()).toBeUndefined();
    },
    STEP_TIMEOUT,
  );

  it(
    'when a user registers, then the page shows their /users/me profile, and the refresh token is only in an HttpOnly cookie',
    async () => {
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(GOOD_PASSWORD);
      await page.getByLabel('Username').fill(username);
      const registered = await clickFor('Create account', 'POST', '/auth/register');
      expect(registered.status()).toBe(201);
      await keepTokensOf(registered);

      await expectState('signed-in', '2-signed-in.png');
      await expect(page.locator('[data-field="email"]').textContent()).resolves.toBe(email);
      await expect(page.locator('[data-field="username"]').textContent()).resolves.toBe(username);
      await expect(page.locator('[data-field="roles"]').textContent()).resolves.toBe('user');
      await expect(page.locator('#profile').getAttribute('data-session')).resolves.toBe('signed-in');

      // Set by Gatehouse for its /auth routes, out of every script's reach.
      expect(await refreshCookie()).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/auth' });
      await expectNoTokenReadableByScripts();
    },
    STEP_TIMEOUT,
  );

  it(
    'when the page reloads, then a silent refresh from the cookie keeps the user signed in',
    async () => {
      const before = await refreshCookie();
      const refreshed = await reloadForRefresh();
      // No token in the body: Gatehouse took it from the cookie, which only the browser holds.
      expect(refreshed.request().postData()).toBe('{}');
      expect(refreshed.status()).toBe(200);
      await keepTokensOf(refreshed);

      await expectState('signed-in', '3-after-reload.png');
      await expect(page.locator('#profile').getAttribute('data-session')).resolves.toBe('restored');
      await expect(page.locator('[data-field="email"]').textContent()).resolves.toBe(email);
      // The refresh rotated the token, and the cookie with it.
      const after = await refreshCookie();
      expect(after?.value).toBeDefined();
      expect(after?.value).not.toBe(before?.value);
      await expectNoTokenReadableByScripts();
    },
    STEP_TIMEOUT,
  );

  it(
    'when the access token expires while the page is open, then the next call refreshes it from the cookie and the user stays signed in',
    async () => {
      gatehouse.clock.advance(ACCESS_TOKEN_TTL + SERVER_LEEWAY_SECONDS + 1);
      const [expired, refreshed, retried] = await Promise.all([
        page.waitForResponse(gatehouseCall('GET', '/users/me')),
        page.waitForResponse(gatehouseCall('POST', '/auth/refresh')),
        // The retry: the second answer to /users/me, after the refresh's.
        page.waitForResponse(async (res) => gatehouseCall('GET', '/users/me')(res) && res.status() === 200),
        page.getByRole('button', { name: 'Reload profile' }).click(),
      ]);
      await expect(expired.json()).resolves.toMatchObject({ code: 'TOKEN_EXPIRED' });
      expect(refreshed.status()).toBe(200);
      expect(refreshed.request().postData()).toBe('{}');
      await keepTokensOf(refreshed);
      expect(retried.status()).toBe(200);

      await expectState('signed-in', '4-after-access-token-expiry.png');
      await expect(page.locator('[data-field="email"]').textContent()).resolves.toBe(email);
      await expect(page.locator('#message').isHidden()).resolves.toBe(true);
      await expectNoTokenReadableByScripts();
    },
    STEP_TIMEOUT,
  );

  it(
    'when the user logs out, then the login form returns and a reload stays signed out',
    async () => {
      const loggedOut = await clickFor('Log out', 'POST', '/auth/logout');
      expect(loggedOut.status()).toBe(204);
      await expectState('signed-out', '5-logged-out.png');
      await expect(page.locator('#message').textContent()).resolves.toBe('You are logged out.');
      expect(await refreshCookie()).toBeUndefined();

      await expectReloadStaysSignedOut();
    },
    STEP_TIMEOUT,
  );

  it(
    'when the session is revoked elsewhere, then the next call returns the page to the login form with a message',
    async () => {
      await logIn('6-logged-in-again.png');

      // The same user on another device ends every session, this page's included.
      const elsewhere = createClient({ baseUrl: gatehouse.baseUrl });
      await elsewhere.login({ email, password: GOOD_PASSWORD });
      const everywhere = await elsewhere.fetch('/auth/logout-all', { method: 'POST' });
      expect(everywhere.status).toBe(204);

      const refused = await clickFor('Reload profile', 'GET', '/users/me');
      expect(refused.status()).toBe(401);
      await expect(refused.json()).resolves.toMatchObject({ code: 'SESSION_REVOKED' });
      await expectState('signed-out', '7-revoked-elsewhere.png');
      await expect(page.locator('#message').textContent()).resolves.toContain('ended elsewhere');
      await expect(page.locator('[data-field="email"]').textContent()).resolves.toBe('');

      // The cookie the browser still holds belongs to the revoked session: a reload stays out.
      await expectReloadStaysSignedOut();
    },
    STEP_TIMEOUT,
  );
  it(
    'when the session outlives SESSION_MAX_AGE, then the next call sends the user back to the login form',
    async () => {
      await logIn();

      gatehouse.clock.advance(SESSION_MAX_AGE + 1);
      const [expired, refused] = await Promise.all([
        page.waitForResponse(gatehouseCall('GET', '/users/me')),
        page.waitForResponse(gatehouseCall('POST', '/auth/refresh')),
        page.getByRole('button', { name: 'Reload profile' }).click(),
      ]);
      await expect(expired.json()).resolves.toMatchObject({ code: 'TOKEN_EXPIRED' });
      expect(refused.status()).toBe(401);
      await expect(refused.json()).resolves.toMatchObject({ code: 'REFRESH_TOKEN_EXPIRED' });

      await expectState('signed-out', '8-session-expired.png');
      await expect(page.locator('#message').textContent()).resolves.toContain('expired');
      await expectNoTokenReadableByScripts();
    },
    STEP_TIMEOUT,
  );
});
