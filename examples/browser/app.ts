/**
 * The Tracker app's sign-in flow in a browser, on `gatehouse/client` in cookie mode:
 * the access token lives in this page's memory only, the refresh token only in Gatehouse's
 * HttpOnly cookie, and a page load restores the session with a silent refresh from it.
 */
import { createClient, GatehouseError, type Me } from '../../src/client/client';

type State = 'loading' | 'signed-out' | 'signed-in';

function element<T extends HTMLElement>(selector: string): T {
  const found = document.querySelector<T>(selector);
  if (!found) throw new TypeError(`index.html has no ${selector}`);
  return found;
}

const app = element<HTMLElement>('#app');
const message = element<HTMLParagraphElement>('#message');
const loading = element<HTMLParagraphElement>('#loading');
const loginForm = element<HTMLFormElement>('#login');
const profile = element<HTMLElement>('#profile');
const sessionOrigin = element<HTMLParagraphElement>('#session-origin');

const gatehouse = createClient({
  baseUrl: element<HTMLMetaElement>('meta[name="gatehouse-url"]').content,
  // No clientId or secret: a page cannot keep one (Gatehouse runs with HMAC_MODE=optional).
  refreshCookie: true,
  // The session ended without this page asking: revoked elsewhere, account disabled, expired.
  onSignedOut: (error) => show('signed-out', sessionEndedMessage(error.reason)),
});

function show(state: State, text?: string): void {
  app.dataset.state = state;
  loading.hidden = state !== 'loading';
  loginForm.hidden = state !== 'signed-out';
  profile.hidden = state !== 'signed-in';
  message.hidden = text === undefined;
  message.textContent = text ?? '';
  if (state === 'signed-out') {
    profile.querySelectorAll('dd').forEach((field) => (field.textContent = ''));
    loginForm.querySelector<HTMLInputElement>('input[name="password"]')!.value = '';
  }
}

function showProfile(me: Me, how: 'signed-in' | 'restored'): void {
  const fields: Record<string, string> = {
    email: me.email,
    username: me.username ?? '—',
    roles: me.roles.join(', '),
    permissions: me.permissions.join(', '),
    id: me.id,
    lastLoginAt: me.lastLoginAt ?? '—',
  };
  for (const [name, value] of Object.entries(fields)) element(`[data-field="${name}"]`).textContent = value;
  profile.dataset.session = how;
  sessionOrigin.textContent =
    how === 'restored' ? 'Session restored from the refresh cookie after the page loaded.' : 'Signed in on this page.';
  show('signed-in');
}

function sessionEndedMessage(reason: string | undefined): string {
  switch (reason) {
    case 'SESSION_REVOKED':
      return 'Your session was ended elsewhere (signed out on another device). Please log in again.';
    case 'ACCOUNT_DISABLED':
      return 'This account has been disabled.';
    case 'REFRESH_TOKEN_EXPIRED':
      return 'Your session has expired. Please log in again.';
    default:
      return 'Your session has ended. Please log in again.';
  }
}

function problemMessage(error: unknown): string {
  if (!(error instanceof GatehouseError)) return 'Gatehouse could not be reached. Try again in a moment.';
  switch (error.code) {
    case 'INVALID_CREDENTIALS':
      return 'Wrong email or password.';
    case 'EMAIL_TAKEN':
      return 'That email already has an account: log in instead.';
    case 'SIGNED_OUT':
      return sessionEndedMessage(error.reason);
    default:
      return error.problem?.detail ?? error.code;
  }
}

/** On load: no token in memory, so ask Gatehouse to refresh from the HttpOnly cookie. */
async function restore(): Promise<void> {
  try {
    await gatehouse.refresh();
    showProfile(await gatehouse.me(), 'restored');
  } catch (error) {
    // SIGNED_OUT here just means there was no live session in the cookie: not worth a message.
    const quiet = error instanceof GatehouseError && error.code === 'SIGNED_OUT';
    show('signed-out', quiet ? undefined : problemMessage(error));
  }
}

loginForm.addEventListener('submit', (event: SubmitEvent) => {
  event.preventDefault();
  const input = (name: string) => loginForm.elements.namedItem(name) as HTMLInputElement;
  const email = input('email').value;
  const password = input('password').value;
  const username = input('username').value.trim();
  const register = (event.submitter as HTMLButtonElement | null)?.value === 'register';
  show('loading');
  void (async () => {
    try {
      await (register ? gatehouse.register({ email, password, ...(username && { username }) }) : gatehouse.login({ email, password }));
      showProfile(await gatehouse.me(), 'signed-in');
    } catch (error) {
      show('signed-out', problemMessage(error));
    }
  })();
});

element('#reload-profile').addEventListener('click', () => {
  void (async () => {
    try {
      showProfile(await gatehouse.me(), profile.dataset.session === 'restored' ? 'restored' : 'signed-in');
    } catch (error) {
      // onSignedOut has already shown the login form when the session ended.
      if (!(error instanceof GatehouseError && error.code === 'SIGNED_OUT')) show('signed-in', problemMessage(error));
    }
  })();
});

element('#logout').addEventListener('click', () => {
  void (async () => {
    try {
      await gatehouse.logout();
      show('signed-out', 'You are logged out.');
    } catch (error) {
      // The client forgot the tokens anyway; the cookie may outlive a failed call.
      show('signed-out', problemMessage(error));
    }
  })();
});

void restore();
