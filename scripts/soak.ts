import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdminService } from '../src/admin/admin.service';
import { systemClock } from '../src/clock';
import type { Config } from '../src/config';
import { type DatabaseHandle, openDatabase } from '../src/db/database';
import { AppError } from '../src/http/problem';
import { ADMIN_ROLE } from '../src/roles/roles.repository';
import { CliError, lineWriter, loadScriptConfig, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';
import {
  type Check,
  allPassed,
  chainsApiCheck,
  expectedAnswersCheck,
  liveTokensCheck,
  loginsCheck,
  memoryCheck,
  redisTtlCheck,
  retriesCheck,
  serverErrorsCheck,
  storeSizeCheck,
} from './soak/checks';
import { type SigningClient, SoakHttp } from './soak/http';
import { type LoadState, newPassword, newSession, type SoakSession, virtualUser } from './soak/load';
import { adminCredentials, loopbackUrl, signingClient, wholeNumber } from './soak/options';
import { Pacer, parseRateLimitPolicies, type RateLimitPolicy } from './soak/pacer';
import { MemorySampler, readingsBetween } from './soak/memory';
import { parsePrometheus, type Sample, storeSizes } from './soak/prometheus';
import { renderReport } from './soak/report';
import { Stats } from './soak/stats';
import { databaseSessions, redisKeyTtls, verifyThroughApi } from './soak/verify';

const DEFAULT_URL = 'http://127.0.0.1:3000';

const HELP = `
Usage: npm run soak [-- [--duration S] [--url URL] [--warm-up S] [--connections C]
                       [--client ID[:SECRET] | --unsigned] [--database-url URL]
                       [--redis-url URL] [--admin EMAIL:PASSWORD]]

A bounded mixed load against a running Gatehouse, then checks that nothing was lost and
nothing leaked. Stops by itself; exits non-zero when a check fails.

The load: virtual users each register an account, use it (signed GET /users/me,
/users/me/sessions, refreshes), log in a second session, log the first out (and see its
tokens refused), use the second; now and then a login with an unknown email, and admin reads
(/admin/users, /admin/events) when the soak has an admin. Refreshes include honest retries:
an answer thrown away as if lost and the refresh sent again, and two refreshes of one token
at once; both must bring the same successor (REFRESH_REUSE_GRACE).

The checks, after the load:
  no 5xx; every answer the one expected; honest retries got the same successor;
  every registered user can still log in; every live session's refresh chain ends in a live
  token and /users/me/sessions lists exactly the live sessions (API); with a database, each
  live session holds exactly one live refresh token and each logged-out session none;
  every nonce and rate-limit key in Redis expires within its window (with REDIS_URL), or the
  in-process stores' sizes from /metrics when the server exposes them;
  the server's resident memory after the run within 20% of after the warm-up.

Memory is read from /metrics (process_resident_memory_bytes) once a second during the load;
under garbage collection it is a sawtooth, so the check compares the highest reading in the
second half of the warm-up with the highest in the second half of the run: a leak lifts the
whole sawtooth, a collection cycle does not. The warm-up must be long enough for the heap to
grow to its working size under the load (30 s by default; about that on a 2-core machine);
with a shorter one the check compares a cold process with a warm one. Under WEB_CONCURRENCY
each reading reaches one worker, and workers are compared each with itself.

Rate limits: the soak reads the server's limits from RateLimit-Policy and keeps to 90% of
them, so it never needs them changed; at the defaults (300 and 20 per minute) that is a light
load. For a real soak, start the server with e.g. RATE_LIMIT_MAX=1000000 and
AUTH_RATE_LIMIT_MAX=1000000; the report shows which limits it ran under. A 429 is waited
out and sent again; after a 503 a virtual user waits as Retry-After says, as a client should.

It reads HMAC_CLIENTS, REFRESH_REUSE_GRACE, HMAC_MAX_SKEW, DATABASE_URL, REDIS_URL and
REDIS_PREFIX from the environment and .env, as the server does: run it with the server's.
Accounts it makes are named soak-<run>-<n>@soak.example.test and stay in the database.

Options:
  --duration S            seconds of load after the warm-up (default 60)
  --url URL               the server, on this machine only (default ${DEFAULT_URL})
  --warm-up S             seconds of the same load before it, for the memory baseline
                          (default 30)
  --connections C         virtual users at once (default 8)
  --client ID[:SECRET]    the signing client (default: the first of HMAC_CLIENTS)
  --unsigned              send no signatures (a server with HMAC_MODE optional or off)
  --database-url URL      the server's PostgreSQL (default DATABASE_URL): counts live
                          refresh tokens per session, and makes the soak an admin
  --redis-url URL         the server's Redis (default REDIS_URL): checks key expiries
  --admin EMAIL:PASSWORD  an existing admin account for the admin reads (without a database,
                          e.g. made with npm run user:grant while the server was stopped)
  -h, --help              print this help
`;

const OPTIONS = {
  duration: { type: 'string' },
  url: { type: 'string' },
  'warm-up': { type: 'string' },
  connections: { type: 'string' },
  client: { type: 'string' },
  unsigned: { type: 'boolean' },
  'database-url': { type: 'string' },
  'redis-url': { type: 'string' },
  admin: { type: 'string' },
} as const;

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** Time between the end of the load and the look at the stores: the answers in flight are done. */
const SETTLE_MS = 1000;

/** `soak [options]`: the command line's arguments in, the exit code out (1 when a check fails). */
export async function main(argv: string[], io: ScriptIo): Promise<number> {
  let passed = true;
  const code = await runCommand('soak', io, async () => {
    passed = await soak(argv, io);
  });
  return code !== 0 ? code : passed ? 0 : 1;
}

interface Run {
  url: URL;
  duration: number;
  warmUp: number;
  connections: number;
  client: SigningClient | undefined;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  admin: { email: string; password: string } | undefined;
  config: Config;
}

function parseRun(argv: string[], io: ScriptIo): Run | undefined {
  const args = parseCommandLine({ name: 'soak', help: HELP, options: OPTIONS }, argv, io.stdout);
  if (!args) return undefined;
  const { values } = args;
  const url = loopbackUrl(values.url ?? DEFAULT_URL);
  const config = loadScriptConfig(io.env);
  return {
    url,
    duration: wholeNumber('duration', values.duration, 60, 1, 86_400),
    warmUp: wholeNumber('warm-up', values['warm-up'], 30, 0, 3_600),
    connections: wholeNumber('connections', values.connections, 8, 1, 256),
    client: signingClient(values.client, config.hmacClients, values.unsigned === true),
    databaseUrl: values['database-url'] ?? config.databaseUrl,
    redisUrl: values['redis-url'] ?? config.redisUrl,
    admin: adminCredentials(values.admin),
    config,
  };
}

/** Runs the soak and prints its report; true when every check held. */
async function soak(argv: string[], io: ScriptIo): Promise<boolean> {
  const run = parseRun(argv, io);
  if (!run) return true;
  const progress = lineWriter(io.stderr);
  const stats = new Stats();
  const http = new SoakHttp({ base: run.url, client: run.client, stats, connections: run.connections });
  let database: DatabaseHandle | undefined;
  const memory = new MemorySampler(http);
  let interrupted = false;
  const onInterrupt = () => {
    interrupted = true;
    progress('soak: interrupted; stopping the load and running the checks (Ctrl-C again to quit at once)');
  };
  process.once('SIGINT', onInterrupt);
  try {
    const policies = await preflight(http, run);
    const notes: string[] = [];
    const pacing = paceUnder(http, policies, run.connections, run.config.refreshReuseGrace, notes);
    if (run.databaseUrl) database = await openDatabase({ databaseUrl: run.databaseUrl });

    const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
    const admin = await setUpAdmin(http, run, runId, database, notes);
    const state: LoadState = {
      http,
      runId,
      users: [],
      admin: admin?.session,
      graceRetries: pacing.graceRetries,
      retries: { same: 0, total: 0 },
      concurrent: { same: 0, total: 0 },
      uncertainRegistrations: 0,
      nextUser: 0,
    };
    /** Runs the load for `seconds`; returns when it started and ended (ms). */
    const phase = async (seconds: number) => {
      const start = Date.now();
      const end = start + seconds * 1000;
      http.stopAt = end;
      const stopped = () => interrupted || Date.now() >= end;
      await Promise.all(Array.from({ length: run.connections }, () => virtualUser(state, stopped)));
      http.stopAt = Infinity;
      return { start, end: Date.now() };
    };

    progress(
      `soak: run ${runId} against ${run.url.origin}: warm-up ${run.warmUp} s, then ${run.duration} s of load, ${run.connections} virtual users`,
    );
    memory.start();
    const warmUp = await phase(run.warmUp);
    progress(`soak: warm-up done (${stats.total} requests); loading for ${run.duration} s`);
    const main = await phase(run.duration);
    memory.stop();
    // Let the answers in flight finish before reading what the server holds.
    await sleep(SETTLE_MS);
    const samples = await scrape(http);
    const nonceWindow = run.config.hmacMaxSkew * 2 + 1;
    const signedInWindow = stats.signedSince(Date.now() - nonceWindow * 1000);
    // The second half of each phase: the warm process under load, and where the run left it.
    const halfway = (p: { start: number; end: number }) => p.start + (p.end - p.start) / 2;
    const afterWarmUp = readingsBetween(memory.readings, halfway(warmUp), warmUp.end);
    const afterRun = readingsBetween(memory.readings, halfway(main), main.end);
    if (interrupted) notes.push('interrupted with Ctrl-C: the load ran shorter than asked');

    progress(`soak: load done (${stats.total} requests, ${state.users.length} users); checking every user and session`);
    const checkSeconds = Math.max(60, run.warmUp + run.duration);
    const api = await verifyThroughApi(state, run.connections, Date.now() + checkSeconds * 1000);

    // Its logout is a request like the others: made before the answers are counted.
    if (admin) await tearDownAdmin(http, admin, database, notes);

    const checks: Check[] = [
      serverErrorsCheck(stats),
      expectedAnswersCheck(stats),
      retriesCheck(state.retries, state.concurrent, state.graceRetries),
      loginsCheck(api, state.uncertainRegistrations),
      chainsApiCheck(api),
    ];
    if (database) {
      const found = await databaseSessions(
        database.db,
        state.users.map((u) => u.id),
      );
      const known = state.users.flatMap((u) => u.sessions.map((s) => ({ id: s.id, state: s.state })));
      checks.push(liveTokensCheck({ users: state.users.length, usersFound: found.usersFound, known, rows: found.rows }));
    } else {
      checks.push({
        status: 'skip',
        title: 'one live refresh token per live session (database)',
        detail: 'not checked: no DATABASE_URL or --database-url (the API checks above stand in)',
      });
    }
    checks.push(await storesCheck(run, http, policies, samples, signedInWindow, nonceWindow, notes));
    checks.push(memoryCheck(afterWarmUp, afterRun));
    if (new Set(memory.readings.map((r) => r.instance)).size > 1) {
      notes.push('the scrapes of /metrics reached more than one process (WEB_CONCURRENCY > 1): memory is per scrape, compared per worker');
    }

    const heading = [
      `Gatehouse soak of ${run.url.origin}, run ${runId}: ${run.duration} s of load after a ${run.warmUp} s warm-up, ${run.connections} virtual users, ${run.client ? `signed as client "${run.client.id}"` : 'unsigned'}`,
      pacing.line,
      `${plural(state.users.length, 'user')} registered, ${plural(
        state.users.reduce((n, u) => n + u.sessions.length, 0),
        'session',
      )} opened (the checks' logins included)`,
    ];
    lineWriter(io.stdout)(renderReport({ heading, stats, notes, checks }));
    return allPassed(checks);
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    memory.stop();
    http.close();
    await database?.close();
  }
}

/**
 * Before any load: the server answers, is ready, and takes the soak's signature. A signed
 * login with an empty body (422: refused before any password work) shows the limits the
 * server applies to logins and to everything else.
 */
async function preflight(http: SoakHttp, run: Run): Promise<RateLimitPolicy[]> {
  const ready = await http.look('/readyz');
  if (ready.status === 0) throw new CliError(`cannot reach ${run.url.origin} (${ready.error}): start the server first (npm start)`);
  if (ready.status !== 200) throw new CliError(`${run.url.origin}/readyz answers ${ready.status}: the server is not ready to be soaked`);
  const probe = await http.send({ kind: 'probe', method: 'POST', path: '/auth/login', body: {}, expect: [{ status: 422 }] });
  if (probe.code === 'SIGNATURE_MISSING') {
    throw new CliError(
      'the server requires signed requests: pass --client id:secret (a client of its HMAC_CLIENTS), or set HMAC_CLIENTS here',
    );
  }
  if (probe.code === 'SIGNATURE_INVALID' && run.client) {
    throw new CliError(
      `the server refused the signature of client "${run.client.id}": give a client and secret from the server's HMAC_CLIENTS`,
    );
  }
  if (probe.code === 'SIGNATURE_EXPIRED') throw new CliError("the server's clock and this machine's differ by more than HMAC_MAX_SKEW");
  if (probe.status !== 422)
    throw new CliError(`the server answered a probe with ${probe.status} ${probe.code ?? ''}: is it Gatehouse?`.trim());
  return parseRateLimitPolicies(probe.headers['ratelimit-policy']);
}

/**
 * Paces the soak under the limits the server advertised, and says so in a line of the report.
 * Honest retries are sent only when pacing cannot hold one past REFRESH_REUSE_GRACE.
 */
function paceUnder(
  http: SoakHttp,
  policies: readonly RateLimitPolicy[],
  connections: number,
  grace: number,
  notes: string[],
): { line: string; graceRetries: boolean } {
  const pacers = policies.filter((p) => p.name === 'global' || p.name === 'auth').map((p) => Pacer.for(p));
  http.setPacers(pacers);
  const global = pacers.find((p) => p.policy.name === 'global');
  const auth = pacers.find((p) => p.policy.name === 'auth');
  let graceRetries = grace > 0;
  // A retry waits behind at most every virtual user's reservation (two each: a concurrent pair).
  if (graceRetries && global && 2 * connections * (1000 / global.perSecond) > (grace * 1000) / 2) {
    graceRetries = false;
    notes.push(
      `honest refresh retries not sent: at ${global.perSecond.toFixed(1)} requests/s a retry could wait past REFRESH_REUSE_GRACE (${grace} s)`,
    );
  }
  if (pacers.length === 0) return { line: 'rate limits: the server advertised none (no RateLimit-Policy): not paced', graceRetries };
  const describe = (pacer: Pacer) =>
    `${pacer.policy.name} ${pacer.policy.quota} per ${pacer.policy.window} s → ${pacer.perSecond < 10 ? pacer.perSecond.toFixed(2) : Math.round(pacer.perSecond)} requests/s`;
  const tight = (global && global.perSecond < 100) || (auth && auth.perSecond < 10);
  const hint = tight ? '; a light load: for a heavier soak start the server with RATE_LIMIT_MAX=1000000 AUTH_RATE_LIMIT_MAX=1000000' : '';
  return { line: `rate limits (RateLimit-Policy), kept to 90%: ${pacers.map(describe).join(', ')}${hint}`, graceRetries };
}

/** An admin for the admin reads: the one given, or one the soak makes through the database; else none, said in a note. */
async function setUpAdmin(
  http: SoakHttp,
  run: Run,
  runId: string,
  database: DatabaseHandle | undefined,
  notes: string[],
): Promise<{ session: SoakSession; email: string; granted: boolean } | undefined> {
  if (run.admin) {
    const login = await http.send({ kind: 'admin login', method: 'POST', path: '/auth/login', body: run.admin, expect: [{ status: 200 }] });
    const body = login.body as { accessToken: string; refreshToken: string; user: { id: string; roles: string[] } } | undefined;
    if (login.status !== 200 || !body) throw new CliError(`--admin could not log in (${login.status} ${login.code ?? ''})`.trim());
    if (!body.user.roles.includes(ADMIN_ROLE)) throw new CliError(`--admin ${run.admin.email} does not have the ${ADMIN_ROLE} role`);
    return { session: newSession(body.user.id, body), email: run.admin.email, granted: false };
  }
  if (!database) {
    notes.push(
      'admin reads skipped: no admin (give --database-url to let the soak make one, or --admin EMAIL:PASSWORD of an admin made with npm run user:grant)',
    );
    return undefined;
  }
  const email = `soak-${runId}-admin@soak.example.test`;
  const password = newPassword();
  const registered = await http.send({
    kind: 'register',
    method: 'POST',
    path: '/auth/register',
    body: { email, password },
    expect: [{ status: 201 }],
  });
  const body = registered.body as { accessToken: string; refreshToken: string; user: { id: string } } | undefined;
  if (registered.status !== 201 || !body)
    throw new CliError(`could not register the soak's admin account (${registered.status} ${registered.code ?? ''})`.trim());
  try {
    await createAdminService({ db: database.db, clock: systemClock }).grantRole('soak', email, ADMIN_ROLE, {
      ip: null,
      userAgent: null,
      requestId: null,
    });
  } catch (error) {
    if (error instanceof AppError && error.code === 'NOT_FOUND') {
      throw new CliError(`the database at --database-url/DATABASE_URL does not hold the account just registered: it is not the server's`);
    }
    throw error;
  }
  return { session: newSession(body.user.id, body), email, granted: true };
}

/** Takes back the admin role the soak granted (unless it is the last admin) and ends its session. */
async function tearDownAdmin(
  http: SoakHttp,
  admin: { session: SoakSession; email: string; granted: boolean },
  database: DatabaseHandle | undefined,
  notes: string[],
): Promise<void> {
  await http.send({
    kind: 'logout',
    method: 'POST',
    path: '/auth/logout',
    body: { refreshToken: admin.session.refreshToken },
    expect: [{ status: 204 }],
  });
  if (!admin.granted || !database) return;
  try {
    await createAdminService({ db: database.db, clock: systemClock }).revokeRole('soak', admin.email, ADMIN_ROLE, {
      ip: null,
      userAgent: null,
      requestId: null,
    });
  } catch (error) {
    if (!(error instanceof AppError && error.code === 'LAST_ADMIN')) throw error;
    notes.push(`${admin.email} keeps the ${ADMIN_ROLE} role: it is the only active admin (its password was random and is forgotten)`);
  }
}

/** The samples of one scrape of /metrics (none when it does not answer). */
async function scrape(http: SoakHttp): Promise<Sample[]> {
  const answer = await http.look('/metrics');
  return answer.status === 200 && typeof answer.body === 'string' ? parsePrometheus(answer.body) : [];
}

/** Nonce and limiter entries: their TTLs in the server's Redis, else their counts from /metrics. */
async function storesCheck(
  run: Run,
  http: SoakHttp,
  policies: readonly RateLimitPolicy[],
  samples: readonly Sample[],
  signedInWindow: number,
  nonceWindow: number,
  notes: string[],
): Promise<Check> {
  if (run.redisUrl) {
    const prefix = run.config.redisPrefix;
    const probeKey = run.client && http.lastNonce ? `${prefix}nonce:${run.client.id}:${http.lastNonce}` : undefined;
    const { keys, probed } = await redisKeyTtls(run.redisUrl, prefix, probeKey);
    const limiterWindow = policies.find((p) => p.name === 'global')?.window ?? run.config.rateLimitWindow;
    const check = redisTtlCheck(keys, [
      { prefix: `${prefix}nonce:`, label: 'nonce', windowMs: nonceWindow * 1000 },
      { prefix: `${prefix}rl:`, label: 'rate-limit', windowMs: limiterWindow * 1000 },
    ]);
    if (probed || (!probeKey && keys.length > 0)) return check;
    notes.push(
      `REDIS_URL is set here, but the server's Redis does not hold the soak's last nonce under "${prefix}": it keeps its stores elsewhere`,
    );
  }
  return storeSizeCheck(storeSizes(samples), signedInWindow, nonceWindow);
}

if (require.main === module) runMain(main);
