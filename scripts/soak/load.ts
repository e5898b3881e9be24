import { randomBytes, randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Answer, type Expected, type SoakHttp, Stopped } from './http';
import type { Tally } from './stats';

/** A session the soak opened, and where its refresh-token chain stands. */
export interface SoakSession {
  /** The `sid` of its access tokens. */
  id: string;
  userId: string;
  accessToken: string;
  /** The head of its refresh-token chain: the one token that must be live while the session is. */
  refreshToken: string;
  /**
   * `live` until the soak logs it out (`ended`); `lost` when the server ended it unasked (a
   * refresh refused, a retry taken for reuse); `uncertain` when a refresh got no answer at all.
   */
  state: 'live' | 'ended' | 'lost' | 'uncertain';
}

/** An account the soak registered (201), with the password it can log in with. */
export interface SoakUser {
  id: string;
  email: string;
  password: string;
  sessions: SoakSession[];
  /** A virtual user is using it: no other may, or two would rotate one chain unawares. */
  busy: boolean;
}

export interface LoadState {
  http: SoakHttp;
  /** Part of every email the run makes, so its accounts are told apart from anyone else's. */
  runId: string;
  users: SoakUser[];
  /** A session with `users:read` and `audit:read`, when the soak could get one. */
  admin: SoakSession | undefined;
  /** REFRESH_REUSE_GRACE > 0: an honest retry of a refresh gets the same successor. */
  graceRetries: boolean;
  /** Refreshes whose answer was "lost" and which were sent again. */
  retries: Tally;
  /** Pairs of refreshes of one token sent at once. */
  concurrent: Tally;
  /** Registrations answered 5xx or not at all, so of unknown outcome: the check of users leaves them out. */
  uncertainRegistrations: number;
  nextUser: number;
}

const AUTH_RESULT: readonly Expected[] = [{ status: 200 }];
/** Gatehouse's own routes accept a token 30 s past `exp`, then say TOKEN_EXPIRED: refresh and go on. */
const AUTHED_OK: readonly Expected[] = [{ status: 200 }, { status: 401, code: 'TOKEN_EXPIRED' }];

/** The `sid` claim of an access token (read, not verified: the server verifies). */
export function sessionIdOf(accessToken: string): string {
  const payload = accessToken.split('.')[1] ?? '';
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sid?: unknown };
  if (typeof claims.sid !== 'string') throw new Error('access token without a sid claim');
  return claims.sid;
}

interface TokenPairBody {
  accessToken: string;
  refreshToken: string;
  user?: { id: string };
}

function tokensOf(answer: Answer): TokenPairBody | undefined {
  const body = answer.body as Partial<TokenPairBody> | undefined;
  return typeof body?.accessToken === 'string' && typeof body.refreshToken === 'string' ? (body as TokenPairBody) : undefined;
}

export function newSession(userId: string, body: TokenPairBody): SoakSession {
  return { id: sessionIdOf(body.accessToken), userId, accessToken: body.accessToken, refreshToken: body.refreshToken, state: 'live' };
}

/** A password the policy accepts: 24 random characters, on no list. */
export function newPassword(): string {
  return randomBytes(18).toString('base64url');
}

/** A register or login would wait longer than this for the auth limit: use an account there is instead. */
const AUTH_WAIT_FOR_REVISIT_MS = 2000;
/** The share of journeys that come back to an existing account when one is free. */
const REVISIT_PERCENT = 30;

/**
 * One virtual user until `stopped()`: journeys, each a new account or, now and then (and
 * whenever the auth limit would keep it waiting), a return to an account no one is using.
 */
export async function virtualUser(state: LoadState, stopped: () => boolean): Promise<void> {
  try {
    while (!stopped()) {
      const returning = state.http.authWait() > AUTH_WAIT_FOR_REVISIT_MS || randomInt(100) < REVISIT_PERCENT ? idleUser(state) : undefined;
      if (returning) await revisit(state, returning, stopped);
      else await journey(state, stopped);
    }
  } catch (error) {
    if (!(error instanceof Stopped)) throw error;
  }
}

/** A random account no virtual user is using, with a live session. */
function idleUser(state: LoadState): { user: SoakUser; session: SoakSession } | undefined {
  const start = state.users.length > 0 ? randomInt(state.users.length) : 0;
  for (let i = 0; i < state.users.length; i++) {
    const user = state.users[(start + i) % state.users.length]!;
    const session = user.busy ? undefined : user.sessions.find((s) => s.state === 'live');
    if (session) return { user, session };
  }
  return undefined;
}

/** A returning user: a few rounds on a session opened earlier (its access token may have expired). */
async function revisit(
  state: LoadState,
  { user, session }: { user: SoakUser; session: SoakSession },
  stopped: () => boolean,
): Promise<void> {
  user.busy = true;
  try {
    await rounds(state, user, session, randomInt(3, 9), stopped);
  } finally {
    user.busy = false;
  }
}

/**
 * The life of one account: register, a few rounds of use on that session, a second session
 * by login, the first logged out (and shown dead), more use of the second, which stays live
 * for the checks. Now and then a login with an email nobody has.
 */
async function journey(state: LoadState, stopped: () => boolean): Promise<void> {
  const { http, runId } = state;
  const n = state.nextUser++;
  const email = `soak-${runId}-${n}@soak.example.test`;
  const password = newPassword();
  const body: Record<string, string> = { email, password };
  if (n % 2 === 0) body.username = `soak_${runId}_${n}`;
  const registered = await http.send({ kind: 'register', method: 'POST', path: '/auth/register', body, expect: [{ status: 201 }] });
  const tokens = tokensOf(registered);
  if (registered.status !== 201 || !tokens?.user) {
    if (registered.status === 0 || registered.status >= 500) state.uncertainRegistrations++;
    return;
  }
  const user: SoakUser = { id: tokens.user.id, email, password, sessions: [newSession(tokens.user.id, tokens)], busy: true };
  state.users.push(user);
  try {
    await use(state, user, stopped);
  } finally {
    user.busy = false;
  }
}

/** After the registration: rounds, a second session, the first logged out, more rounds. */
async function use(state: LoadState, user: SoakUser, stopped: () => boolean): Promise<void> {
  const { http } = state;
  const { email, password } = user;
  const first = user.sessions[0]!;
  await rounds(state, user, first, randomInt(3, 9), stopped);
  if (stopped()) return;

  const login = await http.send({ kind: 'login', method: 'POST', path: '/auth/login', body: { email, password }, expect: AUTH_RESULT });
  const loginTokens = tokensOf(login);
  if (login.status !== 200 || !loginTokens) return;
  const second = newSession(user.id, loginTokens);
  user.sessions.push(second);
  await me(state, user, second);

  if (first.state === 'live') await logoutAndProbe(state, first);
  await rounds(state, user, second, randomInt(2, 6), stopped);

  if (randomInt(10) === 0 && !stopped()) {
    // Unknown emails are answered as wrong passwords, and counted as failures of that email alone.
    await http.send({
      kind: 'login (unknown email)',
      method: 'POST',
      path: '/auth/login',
      body: { email: `nobody-${state.runId}-${randomInt(1e9)}@soak.example.test`, password },
      expect: [{ status: 401, code: 'INVALID_CREDENTIALS' }],
    });
  }
}

/** `count` steps of ordinary use of one session: mostly /users/me and refreshes. */
async function rounds(state: LoadState, user: SoakUser, session: SoakSession, count: number, stopped: () => boolean): Promise<void> {
  for (let i = 0; i < count && !stopped() && session.state === 'live'; i++) {
    const roll = randomInt(100);
    if (roll < 45) await me(state, user, session);
    else if (roll < 75) await refresh(state, session, pickRefreshStyle(state));
    else if (roll < 83) await listSessions(state, user, session);
    else if (state.admin) await adminRead(state, user);
    else await me(state, user, session);
  }
}

function pickRefreshStyle(state: LoadState): 'plain' | 'lost' | 'concurrent' {
  if (!state.graceRetries) return 'plain';
  const roll = randomInt(100);
  return roll < 20 ? 'lost' : roll < 35 ? 'concurrent' : 'plain';
}

/**
 * A request with the session's access token; an expired token is refreshed and the request
 * sent again once, as a client does.
 */
async function authed(
  state: LoadState,
  session: SoakSession,
  request: { kind: string; method: 'GET' | 'POST' | 'DELETE'; path: string; body?: unknown },
): Promise<Answer> {
  const answer = await state.http.send({ ...request, token: session.accessToken, expect: AUTHED_OK });
  if (!(answer.status === 401 && answer.code === 'TOKEN_EXPIRED')) return answer;
  await refresh(state, session, 'plain');
  return state.http.send({ ...request, token: session.accessToken, expect: [{ status: 200 }] });
}

async function me(state: LoadState, user: SoakUser, session: SoakSession): Promise<void> {
  const answer = await authed(state, session, { kind: 'me', method: 'GET', path: '/users/me' });
  if (answer.status === 200 && (answer.body as { id?: unknown } | undefined)?.id !== user.id) {
    state.http.recordUnexpected('me', answer.status, 'ANOTHER_USER');
  }
  if (answer.status === 401) session.state = 'lost';
}

async function listSessions(state: LoadState, user: SoakUser, session: SoakSession): Promise<void> {
  const answer = await authed(state, session, { kind: 'sessions', method: 'GET', path: '/users/me/sessions' });
  if (answer.status !== 200) return;
  const listed = answer.body as Array<{ id: string; current: boolean }>;
  if (!Array.isArray(listed) || !listed.some((s) => s.id === session.id && s.current)) {
    state.http.recordUnexpected('sessions', answer.status, 'CURRENT_SESSION_NOT_LISTED');
  }
}

async function adminRead(state: LoadState, user: SoakUser): Promise<void> {
  const admin = state.admin!;
  if (randomInt(2) === 0) {
    const page = await authed(state, admin, { kind: 'admin users', method: 'GET', path: '/admin/users?limit=20' });
    const cursor = (page.body as { nextCursor?: unknown } | undefined)?.nextCursor;
    if (page.status === 200 && typeof cursor === 'string' && randomInt(3) === 0) {
      await authed(state, admin, {
        kind: 'admin users',
        method: 'GET',
        path: `/admin/users?limit=20&cursor=${encodeURIComponent(cursor)}`,
      });
    }
  } else {
    await authed(state, admin, { kind: 'admin events', method: 'GET', path: `/admin/events?userId=${user.id}&limit=10` });
  }
}

/** A refresh of `token`, counted under `kind`, expecting 200. */
export function refreshRequest(kind: string, token: string) {
  return { kind, method: 'POST' as const, path: '/auth/refresh', body: { refreshToken: token }, expect: [{ status: 200 }] };
}

/** The server decided (a success or a refusal): neither a 5xx nor no answer at all. */
function answered(answer: Answer): boolean {
  return answer.status !== 0 && answer.status < 500;
}

/** A refresh whose answer must carry `expected` as the new refresh token. */
function sameSuccessor(answer: Answer, expected: string | undefined): boolean {
  return expected !== undefined && tokensOf(answer)?.refreshToken === expected;
}

/**
 * One refresh, retried honestly: a refresh without an answer, or with a 5xx, may have rotated
 * the token, so it is sent again with the same token, which within REFRESH_REUSE_GRACE brings
 * the successor the lost answer held.
 */
async function sendRefresh(state: LoadState, kind: string, token: string): Promise<Answer> {
  let answer = await state.http.send(refreshRequest(kind, token));
  for (let retry = 0; retry < 2 && state.graceRetries && (answer.status === 0 || answer.status >= 500); retry++) {
    answer = await state.http.send(refreshRequest('refresh (retry)', token));
  }
  return answer;
}

/**
 * Rotates the session's refresh token, each refresh retried honestly ({@link sendRefresh}).
 * - `plain`: one refresh.
 * - `lost`: the answer is thrown away as if the network lost it, and the refresh is sent again
 *   after up to half a second: it must bring the same successor.
 * - `concurrent`: two refreshes of the token at once: both succeed with the same successor.
 */
export async function refresh(state: LoadState, session: SoakSession, style: 'plain' | 'lost' | 'concurrent'): Promise<void> {
  const { http } = state;
  const token = session.refreshToken;
  if (style === 'concurrent') {
    const settled = await Promise.allSettled([
      sendRefresh(state, 'refresh (concurrent)', token),
      sendRefresh(state, 'refresh (concurrent)', token),
    ]);
    const answers = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    if (answers.length < 2) {
      // The phase ended before the pacers let one of them go: keep what the other brought.
      adopt(session, answers[0] && tokensOf(answers[0]), answers);
      throw settled.find((s) => s.status === 'rejected')!.reason;
    }
    const [a, b] = answers as [Answer, Answer];
    if (answered(a) && answered(b)) {
      state.concurrent.total++;
      if (sameSuccessor(b, tokensOf(a)?.refreshToken)) state.concurrent.same++;
      else if (a.status === 200 && b.status === 200) http.recordUnexpected('refresh (concurrent)', 200, 'DIFFERENT_SUCCESSORS');
    }
    adopt(session, tokensOf(b) ?? tokensOf(a), [a, b]);
    return;
  }

  const first = await sendRefresh(state, 'refresh', token);
  if (style !== 'lost' || first.status !== 200) {
    adopt(session, tokensOf(first), [first]);
    return;
  }
  const lost = tokensOf(first)!.refreshToken;
  let retried: Answer;
  try {
    await sleep(randomInt(500));
    retried = await sendRefresh(state, 'refresh (retry)', token);
  } catch (error) {
    // The phase ended before the retry went out: the first answer stands.
    adopt(session, tokensOf(first), [first]);
    throw error;
  }
  if (answered(retried)) {
    state.retries.total++;
    if (sameSuccessor(retried, lost)) state.retries.same++;
    else if (retried.status === 200) http.recordUnexpected('refresh (retry)', 200, 'DIFFERENT_SUCCESSOR');
  }
  // A retry refused (reuse) ended the session; one that got no answer leaves the first answer standing.
  if (retried.status === 0 || retried.status >= 500) adopt(session, tokensOf(first), [first]);
  else adopt(session, tokensOf(retried), [retried]);
}

/** Takes the new tokens, or marks what the answers say happened to the session. */
function adopt(session: SoakSession, tokens: TokenPairBody | undefined, answers: readonly Answer[]): void {
  if (tokens) {
    session.accessToken = tokens.accessToken;
    session.refreshToken = tokens.refreshToken;
  } else if (answers.length > 0 && answers.every((a) => a.status === 0 || a.status >= 500)) {
    session.state = 'uncertain';
  } else if (answers.some((a) => a.status === 401 || a.status === 403)) {
    session.state = 'lost';
  }
}

/** Logs the session out, then shows its refresh token and its access token are dead. */
async function logoutAndProbe(state: LoadState, session: SoakSession): Promise<void> {
  const { http } = state;
  const out = await http.send({
    kind: 'logout',
    method: 'POST',
    path: '/auth/logout',
    body: { refreshToken: session.refreshToken },
    expect: [{ status: 204 }],
  });
  if (out.status !== 204) return;
  session.state = 'ended';
  await http.send({
    ...refreshRequest('refresh (after logout)', session.refreshToken),
    expect: [{ status: 401, code: 'REFRESH_TOKEN_INVALID' }],
  });
  await http.send({
    kind: 'me (after logout)',
    method: 'GET',
    path: '/users/me',
    token: session.accessToken,
    expect: [{ status: 401, code: 'SESSION_REVOKED' }],
  });
}
