/**
 * The soak's checks as plain functions of what was measured: each says pass, fail or "not
 * checked" (with why), and the numbers it judged by.
 */
import type { ProcessMemory, StoreSizes } from './prometheus';
import { type Stats, summarizeUnexpected, type Tally } from './stats';

export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface Check {
  status: CheckStatus;
  title: string;
  /** The numbers, on one line. */
  detail: string;
  /** Further lines: what failed. */
  more?: string[];
}

/** At most this many lines of what failed under a check; the rest are counted. */
const MAX_MORE = 6;

const check = (status: CheckStatus, title: string, detail: string, more?: string[]): Check => ({
  status,
  title,
  detail,
  ...(more && more.length > 0
    ? { more: more.length > MAX_MORE ? [...more.slice(0, MAX_MORE), `… and ${more.length - MAX_MORE} more`] : more }
    : {}),
});

/** No answer from 500 to 599. */
export function serverErrorsCheck(stats: Stats): Check {
  const errors = stats.serverErrors();
  const count = [...errors.values()].reduce((a, b) => a + b, 0);
  const byKind = [...errors].map(([kind, n]) => `${kind} ×${n}`);
  return check(count === 0 ? 'pass' : 'fail', 'no 5xx', `${count} of ${stats.total} answers`, byKind);
}

/**
 * Every answer was one its request expects: a 201 for a registration, a 401 SESSION_REVOKED
 * for a logged-out session's token… A 429 (waited out and sent again) is counted apart.
 */
export function expectedAnswersCheck(stats: Stats): Check {
  const unexpected = stats.unexpected.length;
  const limited = stats.countOf(429);
  const expected = stats.total - unexpected - limited;
  const detail = `${expected} of ${stats.total - limited} as expected${limited > 0 ? `; ${limited} × 429 waited out and sent again` : ''}`;
  return check(unexpected === 0 ? 'pass' : 'fail', 'every answer as expected', detail, summarizeUnexpected(stats.unexpected));
}

/**
 * A refresh sent again after a lost answer, and concurrent refreshes of one token, got one
 * successor. Counted over those that were answered (200 or a refusal): a 5xx or no answer is
 * the 5xx check's and the answers check's to report.
 */
export function retriesCheck(retries: Tally, concurrent: Tally, graceRetries: boolean): Check {
  const title = 'honest refresh retries get the same successor';
  if (!graceRetries) return check('skip', title, 'not checked: REFRESH_REUSE_GRACE is 0 (strict), so a retry is reuse by design');
  if (retries.total + concurrent.total === 0) return check('skip', title, 'not checked: the run was too short for any');
  const ok = retries.same === retries.total && concurrent.same === concurrent.total;
  return check(
    ok ? 'pass' : 'fail',
    title,
    `${retries.same} of ${retries.total} retries after a lost answer, ${concurrent.same} of ${concurrent.total} concurrent pairs`,
  );
}

/** What the end-of-run walk through the API found, user by user. */
export interface ApiVerification {
  users: number;
  /** Users who logged in with their password (200). */
  loggedIn: number;
  /** Live sessions whose chain head refreshed (200): the head was the live token. */
  heads: Tally;
  /** Users whose /users/me/sessions listed exactly the sessions the soak holds live. */
  listings: Tally;
  /** Users not reached before the checks' deadline. */
  notReached: number;
  failures: string[];
}

/** Every registered user can still log in. */
export function loginsCheck(result: ApiVerification, uncertainRegistrations: number): Check {
  const title = 'every registered user can still log in';
  if (result.users === 0) return check('fail', title, 'no user was registered: the load did not run');
  const unknown =
    uncertainRegistrations > 0
      ? ` (${uncertainRegistrations} registrations answered 5xx or not at all, so of unknown outcome, left out)`
      : '';
  const reached = result.notReached > 0 ? `; ${result.notReached} not reached before the deadline` : '';
  const ok = result.loggedIn === result.users;
  return check(
    ok ? 'pass' : 'fail',
    title,
    `${result.loggedIn} of ${result.users}${unknown}${reached}`,
    result.failures.filter((f) => f.startsWith('login')),
  );
}

/**
 * Every live session's chain ends in a live token, and no session was lost or added (through
 * the API). Every user keeps a live session by the end of a journey, so none left to check
 * means something ended them all: that fails too.
 */
export function chainsApiCheck(result: ApiVerification): Check {
  const nothingChecked = result.users > 0 && result.heads.total === 0;
  const ok =
    !nothingChecked &&
    result.heads.same === result.heads.total &&
    result.listings.same === result.listings.total &&
    result.notReached === 0;
  const failures = result.failures.filter((f) => !f.startsWith('login'));
  return check(
    ok ? 'pass' : 'fail',
    'every live refresh chain ends in a live token, no session lost (API)',
    `${result.heads.same} of ${result.heads.total} chain heads refreshed; /users/me/sessions as expected for ${result.listings.same} of ${result.listings.total} users`,
    nothingChecked ? ['no user had a live session left to check', ...failures] : failures,
  );
}

/** A session of the soak's users as the database holds it. */
export interface DatabaseSession {
  id: string;
  userId: string;
  revoked: boolean;
  /** Refresh tokens not rotated, not expired, in a session neither revoked nor past its end. */
  liveTokens: number;
}

/** What the soak believes of a session it opened. */
export interface KnownSession {
  id: string;
  state: 'live' | 'ended' | 'lost' | 'uncertain';
}

/**
 * Counted in the database: each session the soak holds live has exactly one live refresh token,
 * each it logged out none; no session has two; the database holds no session of the soak's
 * users the soak did not open, and every user it registered.
 */
export function liveTokensCheck(input: {
  users: number;
  usersFound: number;
  known: readonly KnownSession[];
  rows: readonly DatabaseSession[];
}): Check {
  const title = 'one live refresh token per live session, none per ended one (database)';
  if (input.users > 0 && input.usersFound === 0) {
    return check('fail', title, `none of the ${input.users} users is in this database: is it the server's DATABASE_URL?`);
  }
  const byId = new Map(input.rows.map((row) => [row.id, row]));
  const knownIds = new Set(input.known.map((s) => s.id));
  const problems: string[] = [];
  let live = 0;
  let ended = 0;
  let missing = 0;
  for (const session of input.known) {
    const row = byId.get(session.id);
    if (!row) {
      missing++;
      continue;
    }
    if (session.state === 'live') {
      live++;
      if (row.revoked || row.liveTokens !== 1)
        problems.push(`session ${row.id}: ${row.revoked ? 'revoked' : `${row.liveTokens} live tokens`}, expected live with 1`);
    } else if (session.state === 'ended') {
      ended++;
      if (!row.revoked || row.liveTokens !== 0)
        problems.push(`session ${row.id}: logged out, yet ${row.revoked ? `${row.liveTokens} live tokens` : 'not revoked'}`);
    }
  }
  const doubled = input.rows.filter((row) => row.liveTokens > 1);
  for (const row of doubled)
    if (!problems.some((p) => p.includes(row.id))) problems.push(`session ${row.id}: ${row.liveTokens} live tokens`);
  const extra = input.rows.filter((row) => !knownIds.has(row.id));
  if (missing > 0) problems.unshift(`${missing} sessions the soak opened are not in the database`);
  if (extra.length > 0) problems.unshift(`${extra.length} sessions of the soak's users that the soak never opened`);
  const usersMissing = input.users - input.usersFound;
  if (usersMissing > 0) problems.unshift(`${usersMissing} registered users are not in the database`);
  const detail = `${input.usersFound} of ${input.users} users found; ${live} live sessions, ${ended} logged out, ${input.rows.length} sessions in all; ${doubled.length} with two or more live tokens`;
  return check(problems.length === 0 ? 'pass' : 'fail', title, detail, problems);
}

/** A key under the server's Redis prefix and its remaining time to live (PTTL: -1 none, -2 gone). */
export interface RedisKeyTtl {
  key: string;
  pttl: number;
}

/** A kind of key and how long one may live. */
export interface KeyWindow {
  /** Full key prefix, e.g. `gatehouse:nonce:`. */
  prefix: string;
  label: string;
  windowMs: number;
}

/** Every nonce and rate-limit key in Redis expires, within its window. */
export function redisTtlCheck(keys: readonly RedisKeyTtl[], windows: readonly KeyWindow[]): Check {
  const title = 'no nonce or limiter entry kept past its window (Redis)';
  const counts = windows.map((window) => ({ window, count: 0, longest: 0 }));
  const problems: string[] = [];
  let other = 0;
  for (const { key, pttl } of keys) {
    if (pttl === -2) continue;
    const kind = counts.find((c) => key.startsWith(c.window.prefix));
    if (!kind) {
      other++;
      continue;
    }
    kind.count++;
    kind.longest = Math.max(kind.longest, pttl);
    if (pttl === -1) problems.push(`${key}: no expiry`);
    else if (pttl > kind.window.windowMs)
      problems.push(`${key}: expires in ${Math.ceil(pttl / 1000)} s, window ${kind.window.windowMs / 1000} s`);
  }
  const detail =
    counts
      .map((c) => `${c.count} ${c.window.label} keys, longest TTL ${Math.ceil(c.longest / 1000)} s of ${c.window.windowMs / 1000} s`)
      .join('; ') + (other > 0 ? `; ${other} other keys not checked` : '');
  return check(problems.length === 0 ? 'pass' : 'fail', title, detail, problems);
}

/**
 * From the sizes /metrics gives for the in-process stores: the nonce store holds no more
 * nonces than the soak signed within the nonce window (it forgets older ones), and the
 * limiters no more keys than the soak's addresses need. Assumes the soak is the only client.
 */
export function storeSizeCheck(sizes: StoreSizes, signedInWindow: number, nonceWindowSeconds: number): Check {
  const title = 'no nonce or limiter entry kept past its window (in-process stores)';
  if (!sizes.nonces && !sizes.limiterKeys) {
    return check('skip', title, 'not checked: no REDIS_URL, and the server does not expose the sizes of its in-process stores in /metrics');
  }
  const parts: string[] = [];
  const problems: string[] = [];
  if (sizes.nonces) {
    parts.push(
      `${sizes.nonces.entries} nonces held (${sizes.nonces.metric}), ${signedInWindow} signed in the last ${nonceWindowSeconds} s`,
    );
    if (sizes.nonces.entries > signedInWindow)
      problems.push(`the nonce store holds ${sizes.nonces.entries - signedInWindow} more nonces than were sent within its window`);
  } else parts.push('nonce store size not exposed');
  // Two limiters (global, auth) for each of the loopback addresses (IPv4, IPv6) the soak may come from.
  const limiterBound = 4;
  if (sizes.limiterKeys) {
    parts.push(`${sizes.limiterKeys.entries} limiter keys (${sizes.limiterKeys.metric}), at most ${limiterBound} expected`);
    if (sizes.limiterKeys.entries > limiterBound) problems.push(`the limiters hold ${sizes.limiterKeys.entries} keys for one client`);
  } else parts.push('limiter size not exposed');
  return check(problems.length === 0 ? 'pass' : 'fail', title, parts.join('; '), problems);
}

const MB = 1024 * 1024;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;

/** The highest reading per process, in the order first seen. */
function peakByInstance(readings: readonly ProcessMemory[]): Map<string, number> {
  const peak = new Map<string, number>();
  for (const { instance, residentBytes } of readings) peak.set(instance, Math.max(peak.get(instance) ?? 0, residentBytes));
  return peak;
}

/**
 * Resident memory at the end of the run at most `tolerance` above what it was at the end of
 * the warm-up, per server process (under WEB_CONCURRENCY each scrape reaches one worker).
 * Each side is the highest reading of its window, so the sawtooth of garbage collection is
 * not taken for growth, while a leak, which lifts the whole sawtooth, is.
 */
export function memoryCheck(afterWarmUp: readonly ProcessMemory[], afterRun: readonly ProcessMemory[], tolerance = 0.2): Check {
  const title = `server memory after the run within ${Math.round(tolerance * 100)}% of after the warm-up`;
  const before = peakByInstance(afterWarmUp);
  const after = peakByInstance(afterRun);
  if (before.size === 0 || after.size === 0) return check('skip', title, 'not checked: /metrics has no process_resident_memory_bytes');
  const common = [...before.keys()].filter((instance) => after.has(instance));
  if (common.length === 0) {
    if (before.size === 1 && after.size === 1) {
      return check(
        'fail',
        title,
        `the server process changed during the run (process_start_time_seconds ${[...before.keys()][0]} → ${[...after.keys()][0]}): it restarted`,
      );
    }
    return check('skip', title, 'not checked: the scrapes after the run reached other worker processes than those after the warm-up');
  }
  const parts: string[] = [];
  let ok = true;
  for (const instance of common) {
    const b = before.get(instance)!;
    const a = after.get(instance)!;
    const growth = a / b - 1;
    if (growth > tolerance) ok = false;
    parts.push(`${mb(b)} → ${mb(a)} (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%)`);
  }
  const perWorker = before.size > 1 || after.size > 1 ? ` per worker (${common.length} seen in both windows)` : '';
  return check(ok ? 'pass' : 'fail', title, `peak RSS${perWorker} ${parts.join(', ')}`);
}

/** Whether every check passed or was not applicable. */
export function allPassed(checks: readonly Check[]): boolean {
  return checks.every((c) => c.status !== 'fail');
}
