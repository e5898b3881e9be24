import type { Express } from 'express';
import request from 'supertest';
import { createApp } from '../../src/app';
import { openTestDatabase } from '../helpers/databases';
import { bearer, expectProblem, registerUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { createLogger } from '../../src/logger';
import { signedAs, testClients } from '../helpers/signing';

/*
 * The request log (ARCHITECTURE.md, "How one request flows"): one line per request, with the
 * fields operators query, and none for the probes.
 */

/** pino's numeric levels. */
const INFO = 30;
const ERROR = 50;

interface LogLine {
  level: number;
  msg?: string;
  reqId?: string;
  req?: { id?: string; method?: string; path?: string; remoteAddress?: string };
  res?: { statusCode?: number };
  err?: { type?: string; message?: string };
  responseTime?: number;
  route?: string;
  userId?: string;
  code?: string;
}

/** The app of a harness again, over its database and keys, with its log lines kept in memory. */
function loggedApp(h: Harness, level = 'info'): { app: Express; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger(level, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const app = createApp({ config: h.config, db: h.database.db, keys: h.keys, logger, clock: h.clock.now });
  return { app, lines };
}

/** A line without what the logger adds to every line (time, service, process). */
function ownFields(line: LogLine): Partial<LogLine> {
  const own: Record<string, unknown> = { ...line };
  for (const key of ['time', 'service', 'pid', 'hostname']) delete own[key];
  return own;
}

/** The lines of one request, once its response has closed (the line is written then). */
async function linesOf(lines: LogLine[], id: string): Promise<LogLine[]> {
  await new Promise((resolve) => setImmediate(resolve));
  return lines.filter((line) => line.reqId === id);
}

describe('request log', () => {
  const clients = testClients();
  let h: Harness;
  let logged: { app: Express; lines: LogLine[] };
  beforeAll(async () => {
    h = await createHarness({ env: { HMAC_MODE: 'optional', HMAC_CLIENTS: clients.hmacClients } });
    logged = loggedApp(h);
  });
  afterAll(async () => {
    await h.close();
  });

  it('when a path names no route, then one info line carries the request, the 404 and its code, without the query', async () => {
    const res = await request(logged.app).get('/no/such/route?token=secret-in-query').set('X-Request-Id', 'log-404');
    expectProblem(res, 404, 'NOT_FOUND');

    const lines = await linesOf(logged.lines, 'log-404');
    expect(lines.map(ownFields)).toEqual([
      {
        level: INFO,
        reqId: 'log-404',
        req: { id: 'log-404', method: 'GET', path: '/no/such/route', remoteAddress: expect.any(String) },
        res: { statusCode: 404 },
        responseTime: expect.any(Number),
        route: 'unmatched',
        code: 'NOT_FOUND',
        msg: 'GET unmatched 404',
      },
    ]);
    expect(JSON.stringify(lines)).not.toContain('secret-in-query');
  });

  it('when a signed request has no token, then one info line names the route template, the 401 and its code', async () => {
    const res = await signedAs({ app: logged.app, clock: h.clock }, clients.ios)('GET', '/users/me', {
      headers: { 'X-Request-Id': 'log-signed-401' },
    });
    expectProblem(res, 401, 'TOKEN_MISSING');

    const lines = await linesOf(logged.lines, 'log-signed-401');
    expect(lines).toEqual([
      expect.objectContaining({
        level: INFO,
        req: expect.objectContaining({ id: 'log-signed-401', method: 'GET', path: '/users/me' }),
        res: { statusCode: 401 },
        route: '/users/me',
        code: 'TOKEN_MISSING',
        msg: 'GET /users/me 401',
      }),
    ]);
    expect(lines[0]).not.toHaveProperty('userId');
    expect(lines[0]).not.toHaveProperty('err');
  });

  it('when a signature is wrong, then the line says 401 SIGNATURE_INVALID on no route', async () => {
    const res = await signedAs({ app: logged.app, clock: h.clock }, clients.ios)('GET', '/users/me', {
      signature: `sha256=${'0'.repeat(64)}`,
      headers: { 'X-Request-Id': 'log-bad-signature' },
    });
    expectProblem(res, 401, 'SIGNATURE_INVALID');

    expect(await linesOf(logged.lines, 'log-bad-signature')).toEqual([
      expect.objectContaining({ level: INFO, res: { statusCode: 401 }, route: 'unmatched', code: 'SIGNATURE_INVALID' }),
    ]);
  });

  it('when a caller is authenticated, then the line carries its user id and a route template, not the raw path', async () => {
    const user = await registerUser(logged.app);
    const res = await request(logged.app)
      .delete('/users/me/sessions/00000000-0000-4000-8000-000000000000')
      .set(bearer(user.accessToken))
      .set('X-Request-Id', 'log-user');
    expectProblem(res, 404, 'NOT_FOUND');

    expect(await linesOf(logged.lines, 'log-user')).toEqual([
      expect.objectContaining({
        userId: user.id,
        route: '/users/me/sessions/:id',
        req: expect.objectContaining({ path: '/users/me/sessions/00000000-0000-4000-8000-000000000000' }),
        msg: 'DELETE /users/me/sessions/:id 404',
      }),
    ]);
  });

  it('when a request succeeds, then its line has no code and a whole number of milliseconds', async () => {
    await request(logged.app).get('/.well-known/jwks.json').set('X-Request-Id', 'log-200').expect(200);

    const [line, ...more] = await linesOf(logged.lines, 'log-200');
    expect(more).toEqual([]);
    expect(line).toEqual(expect.objectContaining({ level: INFO, route: '/.well-known/jwks.json', msg: 'GET /.well-known/jwks.json 200' }));
    expect(line).not.toHaveProperty('code');
    expect(Number.isInteger(line!.responseTime)).toBe(true);
  });

  it.each(['/healthz', '/metrics'])('when %s is asked, then nothing is logged', async (path) => {
    const before = logged.lines.length;
    await request(logged.app).get(path).set('X-Request-Id', 'log-probe').expect(200);
    await new Promise((resolve) => setImmediate(resolve));
    expect(logged.lines.slice(before)).toEqual([]);
  });

  it('when the log level is above info, then a 404 writes nothing', async () => {
    const quiet = loggedApp(h, 'warn');
    await request(quiet.app).get('/no/such/route').expect(404);
    await new Promise((resolve) => setImmediate(resolve));
    expect(quiet.lines).toEqual([]);
  });
});

describe('request log of a failure', () => {
  it('when the database is gone, then the 503 is one error line carrying its cause', async () => {
    const database = await openTestDatabase('pglite');
    const h = await createHarness({ database });
    const logged = loggedApp(h);
    await database.close();

    const res = await request(logged.app)
      .post('/auth/login')
      .send({ email: 'nobody@example.test', password: 'irrelevant' })
      .set('X-Request-Id', 'log-503');
    expectProblem(res, 503, 'UNAVAILABLE');

    const lines = await linesOf(logged.lines, 'log-503');
    expect(lines).toEqual([
      expect.objectContaining({
        level: ERROR,
        res: { statusCode: 503 },
        err: expect.objectContaining({ type: expect.any(String), message: expect.any(String) }),
        route: '/auth/login',
        code: 'UNAVAILABLE',
        msg: 'POST /auth/login 503',
      }),
    ]);
  });
});

describe('the logger of errors', () => {
  it('when an error carries what a database driver quotes, then its line keeps the kind, code and message and drops the quotes', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
    const error = Object.assign(new Error('duplicate key value violates unique constraint "mail_outbox_pkey"'), {
      code: '23505',
      detail: 'Failing row contains (https://app.example/reset?token=secret-token-value).',
      where: 'SQL statement "INSERT INTO mail_outbox …"',
      internalQuery: 'INSERT INTO mail_outbox VALUES ($1)',
      parameters: ['secret-token-value'],
    });
    logger.error({ err: error }, 'a failure');

    const line = JSON.parse(lines[0]!) as { err: Record<string, unknown> };
    expect(line.err).toMatchObject({ type: 'Error', code: '23505', message: error.message });
    expect(Object.keys(line.err)).not.toEqual(expect.arrayContaining(['detail']));
    expect(lines[0]).not.toContain('secret-token-value');
    expect(lines[0]).not.toContain('INSERT INTO');
  });
});
