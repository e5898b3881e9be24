import http from 'node:http';
import { Client } from 'pg';
import { openDatabase } from '../../src/db/database';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { type GatehouseProcess, logLines, startGatehouse } from '../helpers/server-process';

// Graceful shutdown (CONTRACT.md section 1) of a real Gatehouse process.

interface Pending {
  /** Resolves when Gatehouse has read the request line and headers (it answered 100 Continue). */
  accepted: Promise<void>;
  /** Sends the body: the rest of the request, after the test has sent the signal. */
  sendBody(): void;
  response: Promise<{ status: number; body: Record<string, unknown> }>;
}

/**
 * A login whose body is held back behind `Expect: 100-continue`: once Gatehouse answers
 * 100 the request is certainly in flight on its side, and it cannot finish before the
 * body is sent. So "in flight when the signal came" is a fact, not a guess about timing.
 */
function heldBackLogin(baseUrl: string, credentials: { email: string; password: string }): Pending {
  const body = JSON.stringify(credentials);
  const req = http.request(`${baseUrl}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Expect: '100-continue' },
  });
  const accepted = new Promise<void>((resolve, reject) => {
    req.once('continue', resolve);
    req.once('error', reject);
  });
  const response = new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      res.on('error', reject);
    });
  });
  // Headers go now; the body waits for sendBody().
  req.flushHeaders();
  return { accepted, sendBody: () => req.end(body), response };
}

/** Resolves with the error code of a fresh connection attempt, or 'connected'. */
function tryConnect(baseUrl: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get(`${baseUrl}/healthz`, (res) => {
      res.resume();
      resolve('connected');
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe.each(['SIGTERM', 'SIGINT'] as const)('on %s', (signal) => {
  let gatehouse: GatehouseProcess | undefined;

  afterEach(async () => {
    await gatehouse?.dispose();
    gatehouse = undefined;
  });

  it(`when five logins are in flight, then they complete normally, new connections are refused, and the process exits 0`, async () => {
    gatehouse = await startGatehouse({ LOG_LEVEL: 'info' });
    const credentials = { email: uniqueEmail('shutdown'), password: GOOD_PASSWORD };
    const registered = await fetch(`${gatehouse.baseUrl}/auth/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(credentials),
    });
    expect(registered.status).toBe(201);
    const logins = Array.from({ length: 5 }, () => heldBackLogin(gatehouse!.baseUrl, credentials));
    await Promise.all(logins.map((login) => login.accepted));

    const exitCode = gatehouse.stop(signal);
    await gatehouse.waitForOutput('shutting down');
    const lateConnection = await tryConnect(gatehouse.baseUrl);
    for (const login of logins) login.sendBody();
    const responses = await Promise.all(logins.map((login) => login.response));

    expect(lateConnection).toBe('ECONNREFUSED');
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(responses.every((r) => typeof r.body.accessToken === 'string')).toBe(true);
    expect(await exitCode).toBe(0);
  }, 60_000);

  it(`when forgot requests were answered just before the signal, then every one has its message once the process has exited 0`, async () => {
    const requests = 40;
    gatehouse = await startGatehouse({ LOG_LEVEL: 'info', RESET_MAX_PER_HOUR: String(requests) });
    const email = uniqueEmail('shutdown-forgot');
    const post = (path: string, body: unknown) =>
      fetch(`${gatehouse!.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/auth/register', { email, password: GOOD_PASSWORD })).status).toBe(201);
    // Answered at once, all of them; the signal follows the last answer, with work still queued or not:
    // either way, every answered request must have its message once the process has exited.
    const answers = await Promise.all(Array.from({ length: requests }, () => post('/auth/password/forgot', { email })));
    expect(answers.map((answer) => answer.status)).toEqual(Array(requests).fill(202));
    expect(await gatehouse.stop(signal)).toBe(0);

    const database = await openDatabase({ dataDir: gatehouse.dataDir });
    try {
      const messages = await database.db
        .selectFrom('mail_outbox')
        .select('id')
        .where('recipient', '=', email)
        .where('kind', '=', 'password_reset')
        .execute();
      expect(messages).toHaveLength(requests);
    } finally {
      await database.close();
    }
    expect(logLines(gatehouse).filter((line) => line.msg === 'recovery request failed')).toEqual([]);
  }, 60_000);
});

/** The requests answered 202 whose work waits behind them, made certain with a row lock held by the test. */
const onPostgres = process.env.DATABASE_URL ? describe : describe.skip;
onPostgres('on SIGTERM, with forgot requests still queued (postgres)', () => {
  let gatehouse: GatehouseProcess | undefined;
  let locker: Client | undefined;

  afterEach(async () => {
    await locker?.end().catch(() => undefined);
    await gatehouse?.dispose();
    gatehouse = undefined;
  });

  it('when more requests wait than run, then all of them are done before the pool closes, and the process exits 0', async () => {
    // More than the queue runs at once (4): most of them wait in its backlog when the signal comes.
    const requests = 12;
    gatehouse = await startGatehouse({ LOG_LEVEL: 'info', DATABASE_URL: process.env.DATABASE_URL!, RESET_MAX_PER_HOUR: String(requests) });
    const email = uniqueEmail('shutdown-queued');
    const post = (path: string, body: unknown) =>
      fetch(`${gatehouse!.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/auth/register', { email, password: GOOD_PASSWORD })).status).toBe(201);
    // The account's row locked from outside: each request's work waits for it, after its answer.
    locker = new Client({ connectionString: process.env.DATABASE_URL });
    await locker.connect();
    await locker.query('begin');
    await locker.query('select id from users where email = $1 for update', [email]);

    const answers = await Promise.all(Array.from({ length: requests }, () => post('/auth/password/forgot', { email })));
    expect(answers.map((answer) => answer.status)).toEqual(Array(requests).fill(202));
    const exitCode = gatehouse.stop('SIGTERM');
    await gatehouse.waitForOutput('shutting down');
    await locker.query('commit');

    expect(await exitCode).toBe(0);
    const { rows } = await locker.query<{ n: string }>(
      `select count(*)::text as n from mail_outbox where recipient = $1 and kind = 'password_reset'`,
      [email],
    );
    expect(Number(rows[0]!.n)).toBe(requests);
    expect(logLines(gatehouse).filter((line) => line.msg === 'recovery request failed')).toEqual([]);
  }, 60_000);
});
