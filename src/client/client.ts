/**
 * `gatehouse/client`: a small client for apps and backends-for-frontend that call Gatehouse.
 * Every request is HMAC-signed (CONTRACT.md section 5), but in a browser, which has no secret
 * and uses the refresh cookie instead (`refreshCookie`); an expired access token is
 * refreshed once, shared by every call that needs it, and the call retried.
 *
 * Runs on Node 20's global fetch; its only other dependencies are the project's signer and
 * (types only) the problem catalogue Gatehouse answers from.
 */
import type { ProblemCode } from '../problems/catalogue';
import { signRequest } from '../signature/signer';

/** The tokens of one signed-in session. */
export interface Tokens {
  accessToken: string;
  refreshToken: string;
}

/**
 * Where the client keeps the tokens: in memory by default; an app may keep them in its
 * keychain or secure storage. `set(undefined)` means signed out.
 */
export interface TokenStorage {
  get(): Tokens | undefined | Promise<Tokens | undefined>;
  set(tokens: Tokens | undefined): void | Promise<void>;
}

export interface User {
  id: string;
  email: string;
  username: string | null;
  roles: string[];
  createdAt: string;
  lastLoginAt: string | null;
  /** Whether the owner has proved the address (see `verifyEmail`). */
  emailVerified: boolean;
}

export interface Me extends User {
  permissions: string[];
}

export interface AuthResult {
  user: User;
  accessToken: string;
  refreshToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

/** Gatehouse's problem+json error body (RFC 9457). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  requestId?: string;
  errors?: Array<{ path: string; message: string }>;
}

/**
 * A call did not succeed. `code` is Gatehouse's code (`INVALID_CREDENTIALS`, `EMAIL_TAKEN`, …),
 * or `SIGNED_OUT` when the session is over and the user must log in again; then `reason`
 * holds what ended it (`REFRESH_TOKEN_INVALID`, `SESSION_REVOKED`, `NO_SESSION`, …).
 */
export class GatehouseError extends Error {
  override readonly name = 'GatehouseError';

  constructor(
    readonly code: string,
    readonly status: number | undefined,
    readonly problem: Problem | undefined,
    readonly reason?: string,
  ) {
    super(reason ? `${code} (${reason})` : code);
  }
}

export interface ClientOptions {
  /** Where Gatehouse is, e.g. `https://auth.example.com`; a path prefix is kept. */
  baseUrl: string;
  /**
   * This app's entry in Gatehouse's `HMAC_CLIENTS`. A browser cannot keep a secret: there, omit
   * both, and the requests go unsigned, which Gatehouse takes with `HMAC_MODE=optional`.
   */
  clientId?: string;
  secret?: string;
  /**
   * Browser cookie mode (CONTRACT.md section 4): requests carry credentials, so the browser
   * keeps Gatehouse's HttpOnly `refresh_token` cookie and sends it back. The client then never
   * holds the refresh token (storage gets `refreshToken: ''`): refresh and logout send none and
   * Gatehouse reads the cookie, so `refresh()` also restores the session after a page load.
   * The page's origin must be in `CORS_ORIGINS` and on the same site as Gatehouse (SameSite=Strict).
   */
  refreshCookie?: boolean;
  /** Defaults to {@link memoryStorage}. */
  storage?: TokenStorage;
  /**
   * Called once when the session ends without the app asking (refresh refused, session
   * revoked, account disabled): the place to show the login screen. Not called by `logout()`.
   */
  onSignedOut?: (error: GatehouseError) => void;
  /** Defaults to the global fetch; tests pass a wrapper that counts requests. */
  fetch?: typeof fetch;
}

/** Options of one signed call. A string body is sent as it is; any other body as JSON. */
export interface CallInit {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface GatehouseClient {
  register(input: { email: string; password: string; username?: string }): Promise<AuthResult>;
  login(input: { email: string; password: string }): Promise<AuthResult>;
  /** Rotates the tokens now. Concurrent callers share one request. */
  refresh(): Promise<Tokens>;
  /** Ends this session at Gatehouse and forgets the tokens; done locally even when the call fails. */
  logout(): Promise<void>;
  me(): Promise<Me>;
  /**
   * Asks Gatehouse to send a password-reset link to `email`. Resolves alike whether or not
   * the email has an account (Gatehouse never tells).
   */
  forgotPassword(email: string): Promise<void>;
  /** Sets a new password with the token from the reset link; every session of the user ends, this one's too. */
  resetPassword(token: string, newPassword: string): Promise<void>;
  /** Verifies the email with the token from the verification link. */
  verifyEmail(token: string): Promise<void>;
  /** Asks for a new verification link for the signed-in user. */
  requestEmailVerification(): Promise<void>;
  /** Asks for a new verification link for `email`, without a session (after `EMAIL_NOT_VERIFIED`); resolves alike for every email. */
  resendEmailVerification(email: string): Promise<void>;
  /**
   * Any signed call, with the access token when there is one, e.g.
   * `client.fetch('/users/me/sessions')`. Resolves with Gatehouse's answer as it is, after
   * at most one refresh and retry; rejects with `SIGNED_OUT` when the session is over.
   */
  fetch(path: string, init?: CallInit): Promise<Response>;
}

/** Tokens in process memory: gone when the process ends. */
export function memoryStorage(): TokenStorage {
  let tokens: Tokens | undefined;
  return {
    get: () => tokens,
    set: (next) => {
      tokens = next;
    },
  };
}

/** Answers to a refresh meaning the session is over for good: trying again cannot help. */
const REFRESH_REFUSED = new Set<string>([
  'REFRESH_TOKEN_INVALID',
  'REFRESH_TOKEN_EXPIRED',
  'REFRESH_TOKEN_REUSED',
  'ACCOUNT_DISABLED',
] satisfies ProblemCode[]);
/** The answer to an access token past its expiry: refresh once and retry. */
const ACCESS_TOKEN_EXPIRED: ProblemCode = 'TOKEN_EXPIRED';
/** Answers of Gatehouse's own routes to a live access token whose session has ended. */
const SESSION_ENDED = new Set<string>(['SESSION_REVOKED', 'ACCOUNT_DISABLED'] satisfies ProblemCode[]);

function problemOf(status: number, text: string, contentType: string | null): Problem {
  if (contentType && /json/i.test(contentType)) {
    try {
      const body = JSON.parse(text) as Partial<Problem>;
      if (typeof body.code === 'string') return body as Problem;
    } catch {
      // Not the body Gatehouse sends: fall through to a code from the status.
    }
  }
  // A proxy or load balancer answered, not Gatehouse.
  return { type: 'about:blank', title: `HTTP ${status}`, status, detail: text.slice(0, 200), code: `HTTP_${status}` };
}

async function errorFrom(res: Response): Promise<GatehouseError> {
  const problem = problemOf(res.status, await res.text(), res.headers.get('content-type'));
  return new GatehouseError(problem.code, res.status, problem);
}

/**
 * Creates a client. Bad options are a TypeError now rather than a failed call later.
 */
export function createClient(options: ClientOptions): GatehouseClient {
  let base: URL;
  try {
    base = new URL(options.baseUrl);
  } catch {
    throw new TypeError('createClient: baseUrl must be an absolute URL');
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new TypeError('createClient: baseUrl must be http(s)');
  const { clientId, secret, onSignedOut } = options;
  if (clientId !== undefined || secret !== undefined) {
    if (typeof clientId !== 'string' || clientId === '') throw new TypeError('createClient: clientId is required with a secret');
    if (typeof secret !== 'string' || secret === '') throw new TypeError('createClient: secret is required with a clientId');
  }
  const signer = clientId !== undefined && secret !== undefined ? { clientId, secret } : undefined;
  const cookieMode = options.refreshCookie === true;
  const prefix = base.pathname.replace(/\/+$/, '');
  const storage = options.storage ?? memoryStorage();
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));

  /** One signed request; the body is serialised once and those exact bytes are signed and sent. */
  function send(method: string, path: string, init: CallInit & { accessToken?: string | undefined } = {}): Promise<Response> {
    if (!path.startsWith('/')) throw new TypeError('path must start with "/"');
    const url = new URL(prefix + path, base.origin);
    const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    const upper = method.toUpperCase();
    // The path as the request line will carry it (percent-encoded by URL), query included.
    const headers: Record<string, string> = {
      Accept: 'application/json',
      ...init.headers,
      ...(signer && signRequest({ ...signer, method: upper, path: url.pathname + url.search, body })),
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (init.accessToken) headers.Authorization = `Bearer ${init.accessToken}`;
    return fetchImpl(url, { method: upper, headers, body, signal: init.signal, ...(cookieMode && { credentials: 'include' as const }) });
  }

  /** The body of a refresh or logout: empty in cookie mode, so Gatehouse reads the cookie. */
  function refreshBody(tokens: Tokens | undefined): { refreshToken?: string } {
    return cookieMode || !tokens ? {} : { refreshToken: tokens.refreshToken };
  }

  /** What storage keeps of an answer's tokens: in cookie mode, never the refresh token. */
  function kept(answer: Tokens): Tokens {
    return { accessToken: answer.accessToken, refreshToken: cookieMode ? '' : answer.refreshToken };
  }

  /** The access token whose session was last ended here: concurrent calls that learn of the end sign out once. */
  let endedFor: string | undefined;

  /** Forgets the session `staleAccessToken` belonged to and tells the app, once per session. */
  async function signOut(staleAccessToken: string, reason: string, problem: Problem | undefined): Promise<GatehouseError> {
    const error = new GatehouseError('SIGNED_OUT', problem?.status ?? 401, problem, reason);
    if (endedFor === staleAccessToken) return error;
    endedFor = staleAccessToken;
    // A late answer about an old session must not sign out a session begun since.
    const current = await storage.get();
    if (current && current.accessToken !== staleAccessToken) return error;
    await storage.set(undefined);
    onSignedOut?.(error);
    return error;
  }

  let refreshing: Promise<Tokens> | undefined;

  /**
   * Single flight: every caller while a refresh is under way gets that refresh's outcome.
   * A caller whose access token was already replaced (its 401 arrived after another
   * caller's refresh finished) gets the current tokens without a new refresh: a refresh
   * token is single use, and a second rotation would be one request too many.
   */
  function refreshSession(staleAccessToken?: string): Promise<Tokens> {
    refreshing ??= (async () => {
      const tokens = await storage.get();
      // In cookie mode, no tokens after a page load: the cookie may still hold a session.
      if (!tokens && (!cookieMode || staleAccessToken !== undefined))
        throw new GatehouseError('SIGNED_OUT', undefined, undefined, 'NO_SESSION');
      if (tokens && staleAccessToken !== undefined && tokens.accessToken !== staleAccessToken) return tokens;

      const res = await send('POST', '/auth/refresh', { body: refreshBody(tokens) });
      if (!res.ok) {
        const error = await errorFrom(res);
        // Only a verdict on the session signs the user out; an outage, a rate limit or a
        // signature problem (say, a skewed clock) keeps the tokens for a later try.
        if (REFRESH_REFUSED.has(error.code)) {
          // With no tokens held there is no session here to end: the page was not signed in.
          throw tokens
            ? await signOut(tokens.accessToken, error.code, error.problem)
            : new GatehouseError('SIGNED_OUT', error.status, error.problem, error.code);
        }
        throw error;
      }
      const next = kept((await res.json()) as Tokens);
      await storage.set(next);
      return next;
    })().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  }

  /** Reads a refused answer whole, so its problem can be seen and the caller still gets a readable Response. */
  async function settle(res: Response): Promise<{ res: Response; problem: Problem | undefined }> {
    if (res.status !== 401 && res.status !== 403) return { res, problem: undefined };
    const text = await res.text();
    const problem = problemOf(res.status, text, res.headers.get('content-type'));
    return { res: new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers }), problem };
  }

  async function authorizedFetch(path: string, init: CallInit = {}): Promise<Response> {
    const method = init.method ?? 'GET';
    const tokens = await storage.get();
    let answer = await settle(await send(method, path, { ...init, accessToken: tokens?.accessToken }));
    if (!tokens || !answer.problem) return answer.res;

    let used = tokens.accessToken;
    if (answer.problem.code === ACCESS_TOKEN_EXPIRED) {
      const fresh = await refreshSession(used);
      used = fresh.accessToken;
      // Retried once; whatever it answers now is the answer, so this never loops.
      answer = await settle(await send(method, path, { ...init, accessToken: used }));
    }
    // Gatehouse's own routes say so when the session was revoked or the account disabled.
    if (answer.problem && SESSION_ENDED.has(answer.problem.code)) throw await signOut(used, answer.problem.code, answer.problem);
    return answer.res;
  }

  /** A call of the signed-in user's own: refused as NO_SESSION without tokens, else its answer when 2xx, or Gatehouse's code. */
  async function sessionCall(path: string, init?: CallInit): Promise<Response> {
    if (!(await storage.get())) throw new GatehouseError('SIGNED_OUT', undefined, undefined, 'NO_SESSION');
    const res = await authorizedFetch(path, init);
    if (!res.ok) throw await errorFrom(res);
    return res;
  }

  /** A call without a session whose success has no body (202, 204): resolves, or rejects with Gatehouse's code. */
  async function accepted(path: string, input: unknown): Promise<void> {
    const res = await send('POST', path, { body: input });
    if (!res.ok) throw await errorFrom(res);
  }

  async function authenticate(path: string, input: unknown): Promise<AuthResult> {
    const res = await send('POST', path, { body: input });
    if (!res.ok) throw await errorFrom(res);
    const result = (await res.json()) as AuthResult;
    await storage.set(kept(result));
    return result;
  }

  return {
    register: (input) => authenticate('/auth/register', input),
    login: (input) => authenticate('/auth/login', input),

    async refresh() {
      return refreshSession();
    },

    async logout() {
      const tokens = await storage.get();
      // In cookie mode the cookie may hold a session even with no tokens here: it is cleared too.
      if (!tokens && !cookieMode) return;
      // Forget first: a call racing with logout must not go on using the session.
      await storage.set(undefined);
      const res = await send('POST', '/auth/logout', { body: refreshBody(tokens) });
      if (!res.ok) throw await errorFrom(res);
    },

    async me() {
      return (await (await sessionCall('/users/me')).json()) as Me;
    },

    forgotPassword: (email) => accepted('/auth/password/forgot', { email }),
    resetPassword: (token, newPassword) => accepted('/auth/password/reset', { token, newPassword }),
    verifyEmail: (token) => accepted('/auth/email/verify', { token }),
    resendEmailVerification: (email) => accepted('/auth/email/verification', { email }),

    async requestEmailVerification() {
      await sessionCall('/users/me/email/verification', { method: 'POST' });
    },

    fetch: authorizedFetch,
  };
}
