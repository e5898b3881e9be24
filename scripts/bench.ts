import { randomBytes, randomUUID, createPrivateKey, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type autocannon from 'autocannon';
import jwt from 'jsonwebtoken';
import { signRequest } from '../src/signature/signer';
import { writeNewKeyPair } from '../src/tokens/keys';
import {
  type Child,
  childPids,
  freePort,
  lastLogLine,
  PeakRss,
  runToEnd,
  spawnNode,
  stopAllChildren,
  stopChild,
  waitUntilReady,
} from './bench/children';
import { call, closeCalls, describeFailures, failures, type LoadResult, runLoad, stopAllLoad } from './bench/load';
import { formatNumber, median, renderMarkdown, renderText, type Row } from './bench/report';
import { createScratchDatabase, deleteRedisKeys, describeUrl, type ScratchDatabase } from './bench/scratch';
import { CliError, lineWriter, parseCommandLine, runCommand, runMain, type ScriptIo } from './cli';

const HELP = `
Usage: npm run bench [-- [--duration S] [--connections C] [--login-connections L]
                        [--rounds R] [--bcrypt-cost N] [--quick]]

Measures Gatehouse beside the ceiling of this machine, in the same run, and prints the
table of issue 10 (figure | Gatehouse | ceiling | ratio | target | met), as text and as
Markdown for the README. Every server is a process of its own; this process only generates
the load (autocannon) and reports.

  Gatehouse    node dist/src/server.js (npm run bench builds first): NODE_ENV=production,
               logging on (LOG_LEVEL=info, to /dev/null), HMAC required, rate limits out of
               the way, a fresh signing key, BCRYPT_COST as given
  ceilings     a bare Express 5 JSON route, and the ideal verify-and-select route (Express 5,
               jsonwebtoken RS256 verify with a pre-parsed KeyObject, one SELECT by primary key
               with pg), in a process of their own; RS256 signatures/s on one thread;
               bcryptjs compares/s on every core

With DATABASE_URL, everything runs on a scratch database created on that server
(gatehouse_bench_<pid>), migrated, and dropped at the end; without it, Gatehouse uses an
embedded database in a temporary folder and the ideal route one of its own. REDIS_URL is used
when set (one process too). With both set, the rows are measured again with WEB_CONCURRENCY=2.

Scenarios: GET /healthz, GET /.well-known/jwks.json, signed GET /users/me (a session per
connection), POST /auth/refresh (each connection rotates its own refresh-token chain),
POST /auth/login, and /users/me while logins saturate hashing. Exits 0 when it ran, marking
each unmet target; non-zero when a server does not start or a scenario gets errors or
non-2xx answers. A measurement, not a test: ratios from one run are what compare.

Options:
  --duration S           seconds per scenario (default 10)
  --connections C        autocannon connections (default 50)
  --login-connections L  connections of the login scenarios (default two per CPU: bcrypt-bound)
  --rounds R             measure everything R times, report medians (default 1)
  --bcrypt-cost N        BCRYPT_COST of the server and the ceiling (default 12)
  --quick                smoke run: 2 s per scenario, bcrypt cost 4 unless given
  -h, --help             print this help
`;

const CLIENT_ID = 'bench';
const PASSWORD = 'correct horse battery staple';
const ROOT = path.resolve(__dirname, '..');
const SERVER_FILE = path.join(ROOT, 'dist/src/server.js');
const CEILING_FILE = path.join(ROOT, 'dist/scripts/bench/ceiling-server.js');
const CRYPTO_FILE = path.join(ROOT, 'dist/scripts/bench/crypto-ceiling.js');

const TARGETS = {
  meRatio: 0.7,
  jwksRatio: 0.75,
  healthzRatio: 0.75,
  refreshPerSecond: 800,
  twoProcesses: 1.05,
  loginRatio: 0.9,
  stormP99: 3,
  rssMb: 200,
};

interface Settings {
  duration: number;
  connections: number;
  loginConnections: number;
  rounds: number;
  bcryptCost: number;
  /** Seconds of unmeasured load on each route before its first measurement in a phase. */
  warmUp: number;
}

function wholeNumber(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const number = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(number >= min && number <= max)) throw new CliError(`--${name} must be a whole number from ${min} to ${max} (got "${value}")`);
  return number;
}

/** Everything the bench made, undone in reverse order at the end, on error and on Ctrl-C. */
class Cleanup {
  private readonly steps: Array<() => Promise<unknown>> = [];
  private done: Promise<void> | undefined;

  add(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.done ??= (async () => {
      stopAllLoad();
      await stopAllChildren();
      for (const step of this.steps.reverse()) await step().catch(() => undefined);
      closeCalls();
    })();
    return this.done;
  }
}

/** What a phase needs from the run: where things are, how to sign. */
interface Run {
  settings: Settings;
  print: (line: string) => void;
  tmp: string;
  keysDir: string;
  privateKey: KeyObject;
  privateKeyFile: string;
  secret: string;
  scratch: ScratchDatabase | undefined;
  redisUrl: string | undefined;
  redisPrefix: string;
  pathEnv: string;
  isInterrupted: () => boolean;
}

/** Each connection's session: its access token and the head of its refresh-token chain. */
interface Session {
  email: string;
  userId: string;
  accessToken: string;
  refreshToken: string;
  /** A refresh was sent and its answer not read (the run ended): the chain's head is uncertain. */
  inFlight: boolean;
}

/** One session per connection, and an account for the login scenarios. */
interface Accounts {
  sessions: Session[];
  login: Session;
}

/** The measurements of one round of a phase. */
interface Round {
  bare: LoadResult;
  healthz: LoadResult;
  jwks: LoadResult;
  ideal: LoadResult;
  me: LoadResult;
  rs256: number;
  refresh: LoadResult;
  bcrypt: number;
  login: LoadResult;
  stormMe: LoadResult;
  stormLogin: LoadResult;
}

interface Phase {
  processes: number;
  /** The accounts it measured with: the next phase, on the same database, goes on with them. */
  accounts: Accounts | undefined;
  title: string;
  rounds: Round[];
  rss: Array<{ pid: number; role: 'primary' | 'worker'; mb: number }>;
  /** Scenario name → what went wrong, for every Gatehouse or ceiling run with errors or non-2xx. */
  failures: Map<string, string>;
}

function signed(secret: string, method: string, urlPath: string, body?: string): Record<string, string> {
  return {
    ...signRequest({ clientId: CLIENT_ID, secret, method, path: urlPath, body }),
    ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
  };
}

/** The first answer that was not 2xx, by path and status, in the runs going on: what the error lines quote. */
const problemSamples = new Map<string, string>();

/**
 * Gives connection i the request made from items[i] (round robin when there are fewer items).
 * Per-connection state lives in `request`'s closures: autocannon resets a connection's
 * `context` to `initialContext` before every request when the list holds a single request.
 */
function perConnection<T>(items: readonly T[], request: (item: T) => autocannon.Request): (client: autocannon.Client) => void {
  let next = 0;
  return (client) => {
    const one = request(items[next++ % items.length]!);
    const onResponse = typeof one.onResponse === 'function' ? one.onResponse : undefined;
    client.setRequests([
      {
        ...one,
        onResponse: (status, body, context, headers) => {
          const key = `${one.path} ${status}`;
          if (status >= 300 && !problemSamples.has(key)) problemSamples.set(key, body.replace(/\s+/g, ' ').slice(0, 240));
          onResponse?.(status, body, context, headers);
        },
      },
    ]);
  };
}

/** An access token as Gatehouse signs one, for the ideal route. */
function idealToken(privateKey: KeyObject, userId: string): string {
  const iat = Math.floor(Date.now() / 1000);
  return jwt.sign(
    { iss: 'gatehouse', aud: 'gatehouse', sub: userId, sid: randomUUID(), jti: randomUUID(), iat, exp: iat + 86_400, roles: ['user'] },
    privateKey,
    { algorithm: 'RS256', header: { alg: 'RS256', typ: 'at+jwt' } },
  );
}

async function cryptoCeiling(run: Run, name: string, args: string[]): Promise<number> {
  const child = spawnNode(name, CRYPTO_FILE, args, { env: { PATH: run.pathEnv }, stdout: 'capture', cwd: run.tmp });
  const output = await runToEnd(child);
  const { perSecond } = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as { perSecond?: number };
  if (typeof perSecond !== 'number') throw new CliError(`${name}: no measurement in its output`);
  return perSecond;
}

/** Waits (a few seconds at most) for a cluster primary's workers to be forked; returns how many there are. */
async function workersOf(child: Child, wanted: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  while (wanted > 1 && childPids(child.pid).length < wanted && Date.now() < deadline) await sleep(100);
  return childPids(child.pid).length;
}

/** Starts Gatehouse; when it exits before it is ready, starts it once more with its log kept, to say why. */
async function startGatehouse(run: Run, processes: number, dataDir: string): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: run.pathEnv,
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: String(port),
    HMAC_MODE: 'required',
    HMAC_CLIENTS: `${CLIENT_ID}:${run.secret}`,
    RATE_LIMIT_MAX: '1000000',
    AUTH_RATE_LIMIT_MAX: '1000000',
    KEYS_DIR: run.keysDir,
    BCRYPT_COST: String(run.settings.bcryptCost),
    SHUTDOWN_TIMEOUT: '5',
    WEB_CONCURRENCY: String(processes),
    ...(run.scratch ? { DATABASE_URL: run.scratch.url } : { DATA_DIR: dataDir }),
    ...(run.redisUrl ? { REDIS_URL: run.redisUrl, REDIS_PREFIX: run.redisPrefix } : {}),
  };
  const name = processes === 1 ? 'gatehouse' : `gatehouse (WEB_CONCURRENCY=${processes})`;
  // cwd: the temporary folder, so that no .env of the checkout reaches the server.
  const child = spawnNode(name, SERVER_FILE, [], { env, stdout: 'discard', cwd: run.tmp });
  try {
    await waitUntilReady(child, async () => (await call(port, 'GET', '/healthz')).status === 200, 60_000);
  } catch (error) {
    await stopChild(child);
    if (!child.hasExited() || run.isInterrupted()) throw error;
    const again = spawnNode(name, SERVER_FILE, [], { env, stdout: 'capture', cwd: run.tmp });
    await Promise.race([again.exited, sleep(20_000)]);
    await stopChild(again);
    const said = lastLogLine(again.stdout()) ?? lastLogLine(again.stderrTail());
    throw new CliError(`${name} did not start (exit ${String(await child.exited)})${said ? `: ${said}` : ''}`);
  }
  return { child, port };
}

async function startCeiling(run: Run, processes: number, userId: string): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: run.pathEnv,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    KEYS_DIR: run.keysDir,
    WEB_CONCURRENCY: String(processes),
    ...(run.scratch ? { DATABASE_URL: run.scratch.url } : { CEILING_USER_ID: userId }),
  };
  const child = spawnNode('ceiling server', CEILING_FILE, [], { env, stdout: 'discard', cwd: run.tmp });
  try {
    await waitUntilReady(child, async () => (await call(port, 'GET', '/bare')).status === 200, 60_000);
    await workersOf(child, processes);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { child, port };
}

/** Registers `count` accounts through Gatehouse, a few at a time (each is a bcrypt hash). */
async function register(run: Run, port: number, count: number): Promise<Session[]> {
  const sessions: Session[] = [];
  let next = 0;
  const one = async () => {
    while (next < count) {
      const email = `bench-${process.pid}-${next++}@example.test`;
      const body = JSON.stringify({ email, password: PASSWORD });
      const res = await call(port, 'POST', '/auth/register', signed(run.secret, 'POST', '/auth/register', body), body);
      if (res.status !== 201) throw new CliError(`registering a bench user answered ${res.status}: ${JSON.stringify(res.json)}`);
      const { user, accessToken, refreshToken } = res.json as { user: { id: string }; accessToken: string; refreshToken: string };
      sessions.push({ email, userId: user.id, accessToken, refreshToken, inFlight: false });
    }
  };
  await Promise.all(Array.from({ length: Math.min(count, run.settings.loginConnections) }, one));
  return sessions;
}

/**
 * Refreshes once, outside the measurement, every chain whose last refresh was cut off when
 * a run ended: the server may have rotated it. Within REFRESH_REUSE_GRACE the old token still
 * answers with its successor, so the chain goes on instead of tripping reuse detection.
 */
async function settleChains(run: Run, port: number, sessions: readonly Session[]): Promise<void> {
  for (const session of sessions.filter((s) => s.inFlight)) {
    const body = JSON.stringify({ refreshToken: session.refreshToken });
    const res = await call(port, 'POST', '/auth/refresh', signed(run.secret, 'POST', '/auth/refresh', body), body);
    if (res.status !== 200) throw new CliError(`settling a refresh-token chain after a run answered ${res.status}`);
    const pair = res.json as { accessToken: string; refreshToken: string };
    Object.assign(session, { accessToken: pair.accessToken, refreshToken: pair.refreshToken, inFlight: false });
  }
}

async function runPhase(run: Run, processes: number, phases: readonly Phase[]): Promise<Phase> {
  const { settings, print } = run;
  const title = processes === 1 ? 'one process' : `WEB_CONCURRENCY=${processes}`;
  const phase: Phase = { processes, title, accounts: undefined, rounds: [], rss: [], failures: new Map() };
  const checkInterrupt = () => {
    if (run.isInterrupted()) throw new CliError('interrupted');
  };

  print('');
  print(`== ${title} ==`);
  const ceilingUserId = randomUUID();
  const gatehouse = await startGatehouse(run, processes, path.join(run.tmp, `data-${processes}`));
  const ceiling = await startCeiling(run, processes, ceilingUserId);
  const rss = new PeakRss(gatehouse.child.pid);
  try {
    const workers = await workersOf(gatehouse.child, processes);
    const ceilingWorkers = childPids(ceiling.child.pid).length;
    print(
      `gatehouse pid ${gatehouse.child.pid}${workers > 0 ? ` with ${workers} worker processes` : ''}; ceiling server pid ${ceiling.child.pid}${ceilingWorkers > 0 ? ` with ${ceilingWorkers} worker processes` : ''}`,
    );
    if (processes > 1 && workers < processes)
      print(
        `note: WEB_CONCURRENCY=${processes} but gatehouse forked ${workers} worker processes: these rows measure ${workers || 1} process`,
      );

    // Registering is bcrypt work; on a shared database the sessions of the previous phase go on.
    let accounts = run.scratch ? phases.at(-1)?.accounts : undefined;
    if (accounts) {
      print(`going on with the ${accounts.sessions.length} sessions of the ${phases.at(-1)!.title} rows (same database)`);
    } else {
      const started = Date.now();
      const [login, ...sessions] = await register(run, gatehouse.port, settings.connections + 1);
      accounts = { sessions, login: login! };
      print(
        `registered ${sessions.length + 1} users in ${((Date.now() - started) / 1000).toFixed(1)} s (bcrypt cost ${settings.bcryptCost})`,
      );
    }
    phase.accounts = accounts;
    const { sessions } = accounts;
    // The ideal route reads the same users table on PostgreSQL; its own single row on PGlite.
    const idealTokens = run.scratch
      ? sessions.map((s) => idealToken(run.privateKey, s.userId))
      : [idealToken(run.privateKey, ceilingUserId)];

    const gatehouseUrl = `http://127.0.0.1:${gatehouse.port}`;
    const ceilingUrl = `http://127.0.0.1:${ceiling.port}`;
    const usersMe = perConnection(sessions, (session) => ({
      method: 'GET',
      path: '/users/me',
      setupRequest: (request) => ({
        ...request,
        headers: { ...signed(run.secret, 'GET', '/users/me'), Authorization: `Bearer ${session.accessToken}` },
      }),
    }));
    const refresh = perConnection(sessions, (session) => ({
      method: 'POST',
      path: '/auth/refresh',
      setupRequest: (request) => {
        session.inFlight = true;
        const body = JSON.stringify({ refreshToken: session.refreshToken });
        return { ...request, body, headers: signed(run.secret, 'POST', '/auth/refresh', body) };
      },
      onResponse: (status, body) => {
        session.inFlight = false;
        // A refused rotation is counted as non-2xx; the chain is not settled again after the run.
        if (status !== 200) return;
        const pair = JSON.parse(body) as { accessToken: string; refreshToken: string };
        Object.assign(session, { accessToken: pair.accessToken, refreshToken: pair.refreshToken, inFlight: false });
      },
    }));
    const loginBody = JSON.stringify({ email: accounts.login.email, password: PASSWORD });
    const login = perConnection([loginBody], (body) => ({
      method: 'POST',
      path: '/auth/login',
      setupRequest: (request) => ({ ...request, body, headers: signed(run.secret, 'POST', '/auth/login', body) }),
    }));
    const ideal = perConnection(idealTokens, (token) => ({ method: 'GET', path: '/me', headers: { Authorization: `Bearer ${token}` } }));

    const warmed = new Set<string>();
    const measure = async (
      name: string,
      options: { url: string; connections?: number; setupClient?: (client: autocannon.Client) => void; timeout?: number },
      after?: () => Promise<void>,
    ): Promise<LoadResult> => {
      checkInterrupt();
      const load = { ...options, connections: options.connections ?? settings.connections };
      if (!warmed.has(name) && settings.warmUp > 0) {
        warmed.add(name);
        await runLoad({ ...load, duration: settings.warmUp });
        await after?.();
      }
      checkInterrupt();
      problemSamples.clear();
      const result = await runLoad({ ...load, duration: settings.duration });
      checkInterrupt();
      await after?.();
      rss.sample();
      report(name, result);
      return result;
    };
    const report = (name: string, result: LoadResult, urlPath?: string) => {
      const samples = [...problemSamples].filter(([key]) => urlPath === undefined || key.startsWith(`${urlPath} `));
      const what = `${describeFailures(result)}${samples.map(([key, body]) => `; first ${key}: ${body}`).join('')}`;
      const bad = failures(result) > 0 ? `  ✗ ${what}` : '';
      if (bad) phase.failures.set(name, what);
      print(
        `  ${name.padEnd(44)} ${formatNumber(result.perSecond).padStart(8)}/s   p50 ${formatNumber(result.p50).padStart(6)} ms   p99 ${formatNumber(result.p99).padStart(6)} ms${bad}`,
      );
    };
    // Hashing goes on for the logins in flight when a run stops: let it end before the next one.
    const drainLogins = () => sleep(2000);
    // A login waits its turn for a bcrypt thread: give it longer than autocannon's 10 s.
    const loginLoad = { url: gatehouseUrl, connections: settings.loginConnections, setupClient: login, timeout: 30 };
    const threads = os.availableParallelism();
    const crypto = async (name: string, args: string[]) => {
      checkInterrupt();
      const perSecond = await cryptoCeiling(run, name, args);
      print(`  ${name.padEnd(44)} ${formatNumber(perSecond).padStart(8)}/s`);
      return perSecond;
    };

    for (let round = 0; round < settings.rounds; round++) {
      if (settings.rounds > 1) print(`round ${round + 1} of ${settings.rounds}`);
      const bare = await measure('ceiling: bare Express GET /bare', { url: `${ceilingUrl}/bare` });
      const healthz = await measure('GET /healthz', { url: `${gatehouseUrl}/healthz` });
      const jwks = await measure('GET /.well-known/jwks.json', { url: `${gatehouseUrl}/.well-known/jwks.json` });
      const idealResult = await measure('ceiling: ideal GET /me (verify + SELECT)', { url: ceilingUrl, setupClient: ideal });
      const me = await measure('signed GET /users/me', { url: gatehouseUrl, setupClient: usersMe });

      const rs256 = await crypto('ceiling: RS256 signatures, one thread', ['rs256', String(settings.duration), run.privateKeyFile]);
      const refreshResult = await measure('POST /auth/refresh (one rotation each)', { url: gatehouseUrl, setupClient: refresh }, () =>
        settleChains(run, gatehouse.port, sessions),
      );

      const bcrypt = await crypto(`ceiling: bcryptjs compares, ${threads} threads`, [
        'bcrypt',
        String(settings.duration),
        String(settings.bcryptCost),
        String(threads),
      ]);
      const loginResult = await measure(`POST /auth/login, cost ${settings.bcryptCost}`, loginLoad, drainLogins);

      checkInterrupt();
      problemSamples.clear();
      const [stormMe, stormLogin] = await Promise.all([
        runLoad({ url: gatehouseUrl, connections: settings.connections, duration: settings.duration, setupClient: usersMe }),
        runLoad({ ...loginLoad, duration: settings.duration }),
      ]);
      checkInterrupt();
      await drainLogins();
      rss.sample();
      report('signed GET /users/me during a login storm', stormMe, '/users/me');
      report('  the login storm alongside', stormLogin, '/auth/login');

      phase.rounds.push({
        bare,
        healthz,
        jwks,
        ideal: idealResult,
        me,
        rs256,
        refresh: refreshResult,
        bcrypt,
        login: loginResult,
        stormMe,
        stormLogin,
      });
    }
    rss.sample();
    phase.rss = rss.processes();
  } finally {
    await stopChild(gatehouse.child);
    await stopChild(ceiling.child);
  }
  return phase;
}

/** What the ceilings are, said once under each table. */
const LEGEND = [
  'ideal route: Express 5 + jsonwebtoken RS256 verify with a pre-parsed KeyObject + one SELECT of the user row by primary key with pg;',
  'bare: a bare Express 5 JSON route. Both run in a process of their own (with the rows’ worker count); refresh and login ceilings',
  'are RS256 signatures on one thread and bcryptjs compares on every core, each in a process of its own.',
];

/** A ratio to two decimals, or three where two would round it across its target. */
function formatRatio(value: number, target?: number, atMost = false): string {
  const two = Number(value.toFixed(2));
  const crosses = target !== undefined && (atMost ? value <= target !== two <= target : value >= target !== two >= target);
  return value.toFixed(crosses ? 3 : 2);
}

/** The table of one phase; `one` is the one-process phase when this is the WEB_CONCURRENCY one. */
function tableOf(phase: Phase, run: Run, one: Phase | undefined): Row[] {
  const { rounds } = phase;
  const single = phase.processes === 1;
  const processesNote = single ? '' : `, ${phase.processes} processes`;
  const value = (pick: (round: Round) => number) => median(rounds.map(pick));
  const rows: Row[] = [];

  /** Gatehouse beside a ceiling: the ratio is the median of each round's ratio, its spread in brackets. */
  const besideCeiling = (figure: string, top: (r: Round) => number, bottom: (r: Round) => number, ceiling: string, target?: number) => {
    const ratios = rounds.map((r) => top(r) / bottom(r));
    const ratio = median(ratios);
    const spread = ratios.length > 1 ? ` (${formatRatio(Math.min(...ratios))}–${formatRatio(Math.max(...ratios))})` : '';
    rows.push({
      figure,
      gatehouse: `${formatNumber(value(top))} req/s`,
      ceiling: `${formatNumber(value(bottom))} req/s, ${ceiling}${processesNote}`,
      ratio: formatRatio(ratio, target) + spread,
      target: target === undefined ? '—' : `≥ ${target.toFixed(2)}`,
      met: target === undefined ? undefined : ratio >= target,
      shortfall: `${figure} ÷ ${ceiling} ${ratio.toFixed(3)} < ${target?.toFixed(2)}`,
    });
  };
  besideCeiling(
    `signed \`GET /users/me\`${processesNote}`,
    (r) => r.me.perSecond,
    (r) => r.ideal.perSecond,
    'ideal route',
    single ? TARGETS.meRatio : undefined,
  );
  besideCeiling(
    '`GET /.well-known/jwks.json`',
    (r) => r.jwks.perSecond,
    (r) => r.bare.perSecond,
    'bare',
    TARGETS.jwksRatio,
  );
  besideCeiling(
    '`GET /healthz`',
    (r) => r.healthz.perSecond,
    (r) => r.bare.perSecond,
    'bare',
    TARGETS.healthzRatio,
  );

  const refresh = value((r) => r.refresh.perSecond);
  const onPostgres = run.scratch !== undefined;
  rows.push({
    figure: '`POST /auth/refresh` (one rotation each)',
    gatehouse: `${formatNumber(refresh)} req/s`,
    ceiling: `${formatNumber(value((r) => r.rs256))} RS256 signatures/s on one thread`,
    ratio: formatRatio(value((r) => r.refresh.perSecond / r.rs256)),
    // The target is the one-process figure on PostgreSQL; elsewhere the row is for information.
    target: single ? `≥ ${TARGETS.refreshPerSecond}/s${onPostgres ? '' : ' on PostgreSQL'}` : '—',
    met: single && onPostgres ? refresh >= TARGETS.refreshPerSecond : undefined,
    shortfall: `refresh ${formatNumber(refresh)}/s < ${TARGETS.refreshPerSecond}/s`,
  });

  if (one) {
    const twoOverOne = (figure: string, pick: (r: Round) => LoadResult) => {
      const many = value((r) => pick(r).perSecond);
      const alone = median(one.rounds.map((r) => pick(r).perSecond));
      rows.push({
        figure: `${figure}, ${phase.processes} processes ÷ 1`,
        gatehouse: `${formatNumber(many)} req/s`,
        ceiling: `${formatNumber(alone)} req/s with one process`,
        ratio: formatRatio(many / alone, TARGETS.twoProcesses),
        target: `≥ ${TARGETS.twoProcesses.toFixed(2)}`,
        met: many / alone >= TARGETS.twoProcesses,
        shortfall: `${figure} ${phase.processes} processes ÷ 1 ${(many / alone).toFixed(3)} < ${TARGETS.twoProcesses.toFixed(2)}`,
      });
    };
    twoOverOne('signed `GET /users/me`', (r) => r.me);
    twoOverOne('`POST /auth/refresh`', (r) => r.refresh);
  }

  const loginRatio = value((r) => r.login.perSecond / r.bcrypt);
  rows.push({
    figure: `\`POST /auth/login\`, cost ${run.settings.bcryptCost}`,
    gatehouse: `${formatNumber(value((r) => r.login.perSecond))}/s`,
    ceiling: `${formatNumber(value((r) => r.bcrypt))} bcryptjs compares/s on ${os.availableParallelism()} worker threads`,
    ratio: formatRatio(loginRatio, TARGETS.loginRatio),
    target: `≥ ${TARGETS.loginRatio.toFixed(2)}`,
    met: loginRatio >= TARGETS.loginRatio,
    shortfall: `logins ÷ bcrypt ${loginRatio.toFixed(3)} < ${TARGETS.loginRatio.toFixed(2)}`,
  });

  const stormRatio = value((r) => r.stormMe.p99 / r.me.p99);
  rows.push({
    figure: '`/users/me` p99 while logins saturate hashing',
    gatehouse: `${formatNumber(value((r) => r.stormMe.p99))} ms`,
    ceiling: `${formatNumber(value((r) => r.me.p99))} ms idle`,
    ratio: `${formatRatio(stormRatio, TARGETS.stormP99, true)}×`,
    target: `≤ ${TARGETS.stormP99}×`,
    met: stormRatio <= TARGETS.stormP99,
    shortfall: `storm p99 ÷ idle p99 ${stormRatio.toFixed(2)}× > ${TARGETS.stormP99}×`,
  });

  const failed = rounds.reduce(
    (sum, r) => sum + [r.healthz, r.jwks, r.me, r.refresh, r.login, r.stormMe, r.stormLogin].reduce((s, x) => s + failures(x), 0),
    0,
  );
  rows.push({
    figure: 'errors + non-2xx, every scenario',
    gatehouse: String(failed),
    ceiling: '—',
    ratio: '—',
    target: '0',
    met: failed === 0,
    shortfall: `${failed} errors or non-2xx answers`,
  });

  const peak = Math.max(...phase.rss.map((p) => p.mb));
  const perProcess = phase.rss.length > 1 ? phase.rss.map((p) => `${p.role} ${Math.round(p.mb)}`).join(', ') : Math.round(peak);
  rows.push({
    figure: 'server peak RSS (VmHWM), per process',
    gatehouse: `${Math.round(peak)} MB`,
    ceiling: phase.rss.length > 1 ? `${perProcess} MB` : '—',
    ratio: '—',
    target: `≤ ${TARGETS.rssMb} MB`,
    met: peak <= TARGETS.rssMb,
    shortfall: `peak RSS ${perProcess} MB > ${TARGETS.rssMb} MB`,
  });
  return rows;
}

function printTable(print: (line: string) => void, phase: Phase, rows: readonly Row[]): void {
  print('');
  print(
    `Gatehouse, ${phase.title}${phase.rounds.length > 1 ? ` (medians of ${phase.rounds.length} rounds, ratio spread in brackets)` : ''}:`,
  );
  for (const line of renderText(rows)) print(line);
  for (const line of LEGEND) print(line);
  const unmet = rows.filter((row) => row.met === false);
  print(unmet.length === 0 ? 'every target met' : `unmet: ${unmet.map((row) => row.shortfall).join('; ')}`);
  for (const [name, what] of phase.failures) print(`errors: ${name}: ${what}`);
}

async function benchCommand(argv: string[], io: ScriptIo): Promise<void> {
  const args = parseCommandLine(
    {
      name: 'bench',
      help: HELP,
      options: {
        duration: { type: 'string' },
        connections: { type: 'string' },
        'login-connections': { type: 'string' },
        rounds: { type: 'string' },
        'bcrypt-cost': { type: 'string' },
        quick: { type: 'boolean' },
      },
    },
    argv,
    io.stdout,
  );
  if (!args) return;
  const quick = args.values.quick === true;
  const duration = wholeNumber('duration', args.values.duration, quick ? 2 : 10, 1, 600);
  const settings: Settings = {
    duration,
    connections: wholeNumber('connections', args.values.connections, 50, 1, 1000),
    loginConnections: wholeNumber('login-connections', args.values['login-connections'], 2 * os.availableParallelism(), 1, 1000),
    rounds: wholeNumber('rounds', args.values.rounds, 1, 1, 9),
    bcryptCost: wholeNumber('bcrypt-cost', args.values['bcrypt-cost'], quick ? 4 : 12, 4, 15),
    warmUp: duration >= 5 ? 1 : 0,
  };
  const print = lineWriter(io.stdout);
  const databaseUrl = io.env.DATABASE_URL?.trim() || undefined;
  const redisUrl = io.env.REDIS_URL?.trim() || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) throw new CliError('DATABASE_URL must be a postgres:// URL');
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) throw new CliError('REDIS_URL must be a redis:// URL');
  for (const file of [SERVER_FILE, CEILING_FILE, CRYPTO_FILE]) {
    if (!existsSync(file)) throw new CliError(`${path.relative(ROOT, file)} is missing: run \`npm run build\` first (npm run bench does)`);
  }

  let interrupted = false;
  const cleanup = new Cleanup();
  const onSignal = (signal: NodeJS.Signals) => {
    // tsx passes a terminal's Ctrl-C on, so it may come twice.
    if (interrupted) return;
    interrupted = true;
    io.stderr.write(`bench: ${signal}: stopping the servers, removing what the bench made\n`);
    void cleanup.run();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const phases: Phase[] = [];
  const tables: Row[][] = [];
  let summary = '';
  let failure: unknown;
  try {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-bench-'));
    cleanup.add(() => rm(tmp, { recursive: true, force: true }));
    const keysDir = path.join(tmp, 'keys');
    const { privateFile } = await writeNewKeyPair(keysDir);
    const redisPrefix = `gatehouse-bench-${process.pid}:`;
    if (redisUrl) cleanup.add(() => deleteRedisKeys(redisUrl, redisPrefix));
    let scratch: ScratchDatabase | undefined;
    if (databaseUrl) {
      scratch = await createScratchDatabase(databaseUrl, `gatehouse_bench_${process.pid}`);
      cleanup.add(scratch.drop);
    }
    const run: Run = {
      settings,
      print,
      tmp,
      keysDir,
      privateKey: createPrivateKey(await readFile(privateFile, 'utf8')),
      privateKeyFile: privateFile,
      secret: randomBytes(36).toString('base64url'),
      scratch,
      redisUrl,
      redisPrefix,
      pathEnv: io.env.PATH ?? '',
      isInterrupted: () => interrupted,
    };

    const machine = `${os.availableParallelism()} CPUs (${os.cpus()[0]?.model.trim() ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GB RAM, Node ${process.version} ${process.platform}/${process.arch}`;
    const conditions = `${scratch ? `${scratch.server} on the same machine` : 'embedded PGlite'}${redisUrl ? ', Redis' : ''}; bcrypt cost ${settings.bcryptCost}; ${settings.connections} connections (logins ${settings.loginConnections}), ${settings.duration} s per scenario, ${settings.rounds === 1 ? 'one round' : `median of ${settings.rounds} rounds`}; logging on`;
    summary = `Measured by \`npm run bench\` on ${machine}; ${conditions}.`;
    print(`gatehouse bench: ${machine}`);
    print(
      scratch
        ? `database: ${scratch.server} at ${describeUrl(databaseUrl!).split('/')[0]}, scratch database ${scratch.name} (migrated now, dropped at the end), the ideal route reading the same users table`
        : 'database: embedded PGlite in a temporary folder (DATABASE_URL unset); the ideal route reads an embedded PGlite of its own holding one users row',
    );
    print(
      redisUrl
        ? `redis: ${describeUrl(redisUrl)} for nonces and rate limits in every row, the one-process rows too, so 2 processes ÷ 1 isolates the process count`
        : 'redis: none (REDIS_URL unset): nonces and rate limits in process memory',
    );
    print(
      `bcrypt cost ${settings.bcryptCost}; ${settings.connections} connections (logins ${settings.loginConnections}); ${settings.duration} s per scenario${settings.warmUp ? `, after ${settings.warmUp} s unmeasured on each route` : ''}; ${settings.rounds} round${settings.rounds > 1 ? 's, medians' : ''}`,
    );
    print(
      'load: autocannon in this process; Gatehouse (NODE_ENV=production, LOG_LEVEL=info to /dev/null, HMAC required) and ceilings each a process of their own',
    );

    phases.push(await runPhase(run, 1, phases));
    tables.push(tableOf(phases[0]!, run, undefined));
    printTable(print, phases[0]!, tables[0]!);

    if (databaseUrl && redisUrl) {
      phases.push(await runPhase(run, 2, phases));
      tables.push(tableOf(phases[1]!, run, phases[0]));
      printTable(print, phases[1]!, tables[1]!);
    } else {
      print('');
      print(
        `WEB_CONCURRENCY=2 rows skipped: they need ${[databaseUrl ? '' : 'DATABASE_URL', redisUrl ? '' : 'REDIS_URL'].filter(Boolean).join(' and ')} (worker processes share one database and their nonces and limits through Redis)`,
      );
    }
  } catch (error) {
    failure = error;
  } finally {
    await cleanup.run();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  if (tables.length > 0) {
    print('');
    print('Markdown, for the README:');
    print('');
    print(summary);
    tables.forEach((rows, i) => {
      print('');
      print(`Gatehouse, ${phases[i]!.title}:`);
      print('');
      for (const line of renderMarkdown(rows)) print(line);
      print('');
      print(LEGEND.join(' '));
    });
  }
  if (failure !== undefined)
    throw interrupted
      ? new CliError('interrupted: servers stopped, everything the bench made removed')
      : failure instanceof Error
        ? failure
        : new Error(inspect(failure));
  const failed = phases.flatMap((phase) => [...phase.failures.keys()].map((name) => `${name} (${phase.title})`));
  if (failed.length > 0) throw new CliError(`errors or non-2xx answers in ${failed.join(', ')}`);
}

/** `bench [options]`: the command line's arguments in, the exit code out. */
export function main(argv: string[], io: ScriptIo): Promise<number> {
  return runCommand('bench', io, () => benchCommand(argv, io));
}

if (require.main === module) runMain(main);
