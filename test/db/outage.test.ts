import { PGlite } from '@electric-sql/pglite';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import express from 'express';
import { Kysely, sql } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { Client } from 'pg';
import request from 'supertest';
import { type DatabaseHandle, isDatabaseUnavailable, openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import type { Database } from '../../src/db/schema';
import { errorHandler } from '../../src/http/error-handler';
import { requestId } from '../../src/http/request-id';
import { createScratchDatabase, openPgliteFrom, PGLITE_TEMPLATES_ENV, type ScratchDatabase } from '../helpers/databases';
import { bearer, expectProblem, registerUser, type RegisteredUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';

// CONTRACT.md section 2: "a database that cannot be reached is 503 UNAVAILABLE with
// Retry-After, never a hang and never a crash" — on PostgreSQL and on the embedded PGlite,
// and the same app serves again once the database is back.

const describeIfPg = process.env.DATABASE_URL ? describe : describe.skip;

/** What the drivers say when a connection fails; none of it may reach a response body. */
const DRIVER_WORDS = /ECONN|terminat|accepting connections|does not exist|PGlite|destroyed|timeout|127\.0\.0\.1|gatehouse_/i;

/** 503 UNAVAILABLE as problem+json, with Retry-After, and nothing of the driver's message. */
function expectUnavailable(res: request.Response): void {
  expectProblem(res, 503, 'UNAVAILABLE');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expect(JSON.stringify(res.body)).not.toMatch(DRIVER_WORDS);
}

/** The error a promise rejects with; fails the test when it resolves. */
async function errorOf(work: Promise<unknown>): Promise<unknown> {
  try {
    await work;
  } catch (error) {
    return error;
  }
  throw new Error('expected the database call to fail, and it succeeded');
}

/** Runs one statement on the DATABASE_URL server (its maintenance database), outside any pool. */
async function onServer(statement: string): Promise<void> {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

function databaseName(url: string): string {
  return new URL(url).pathname.slice(1);
}

/** Makes PostgreSQL refuse new connections to a database and ends those it has, as an operator would. */
async function refuseConnections(name: string): Promise<void> {
  await onServer(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
  await onServer(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`);
}

async function allowConnections(name: string): Promise<void> {
  await onServer(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
}

/** A TCP server on a free local port, for what a PostgreSQL server cannot be made to do on demand. */
async function tcpServer(onConnection: (socket: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on: bound, then closed again. */
async function closedPort(): Promise<number> {
  const server = await tcpServer(() => undefined);
  await server.close();
  return server.port;
}

/**
 * A PostgreSQL ErrorResponse message (protocol section 55.7): what a server that is starting
 * up or full answers the startup message with, before it closes the connection.
 */
function errorResponse(fields: Record<'S' | 'V' | 'C' | 'M', string>): Buffer {
  const body = Buffer.concat([...Object.entries(fields).map(([key, value]) => Buffer.from(`${key}${value}\0`, 'utf8')), Buffer.from([0])]);
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** The error a query through openDatabase (pool, Kysely) fails with against `port`. */
async function queryErrorAt(port: number, connectTimeoutMs = 2000): Promise<unknown> {
  const handle = await openDatabase({ databaseUrl: `postgres://postgres@127.0.0.1:${port}/gatehouse`, connectTimeoutMs });
  try {
    return await errorOf(sql`select 1`.execute(handle.db));
  } finally {
    await handle.close();
  }
}

describe('isDatabaseUnavailable, on connection failures the pg driver really reports', () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });
  async function serve(onConnection: (socket: net.Socket) => void): Promise<number> {
    const server = await tcpServer(onConnection);
    servers.push(server);
    return server.port;
  }

  it.each<[string, () => Promise<unknown>]>([
    ['nothing listens on the port (ECONNREFUSED)', async () => queryErrorAt(await closedPort())],
    ['the server accepts and never answers (connection timeout)', async () => queryErrorAt(await serve(() => undefined), 300)],
    [
      'the server hangs up on the startup message (Connection terminated unexpectedly)',
      async () => queryErrorAt(await serve((socket) => socket.once('data', () => socket.end()))),
    ],
    [
      'the server is starting up (57P03 cannot_connect_now)',
      async () =>
        queryErrorAt(
          await serve((socket) =>
            socket.once('data', () =>
              socket.end(errorResponse({ S: 'FATAL', V: 'FATAL', C: '57P03', M: 'the database system is starting up' })),
            ),
          ),
        ),
    ],
    [
      'the server has no connection slot left (53300 too_many_connections)',
      async () =>
        queryErrorAt(
          await serve((socket) =>
            socket.once('data', () =>
              socket.end(errorResponse({ S: 'FATAL', V: 'FATAL', C: '53300', M: 'sorry, too many clients already' })),
            ),
          ),
        ),
    ],
  ])('when %s, then the error means the database is unavailable', async (_case, failure) => {
    const error = await failure();

    expect(isDatabaseUnavailable(error)).toBe(true);
  });
});

describeIfPg('isDatabaseUnavailable, on errors the real PostgreSQL gives', () => {
  let scratch: ScratchDatabase;
  let name: string;
  let handle: DatabaseHandle;
  beforeEach(async () => {
    scratch = await createScratchDatabase('unavailable');
    name = databaseName(scratch.url);
    handle = await openDatabase({ databaseUrl: scratch.url, connectTimeoutMs: 2000 });
  });
  afterEach(async () => {
    await handle.close();
    await allowConnections(name).catch(() => undefined);
    await scratch.drop();
  });

  it('when the server ends the session during a query (57P01 admin_shutdown), then it is unavailable', async () => {
    const running = errorOf(sql`select pg_sleep(30)`.execute(handle.db));
    // The query has reached the server once its backend shows it.
    await waitFor(async () => (await activeQueries(name)) > 0);
    await onServer(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${name}'`);

    const error = await running;

    expect(error).toMatchObject({ code: '57P01' });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('when the database does not allow connections (55000, FATAL at connect), then it is unavailable', async () => {
    await refuseConnections(name);

    const error = await errorOf(sql`select 1`.execute(handle.db));

    expect(error).toMatchObject({ code: '55000' });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('when the database does not exist (3D000, dropped or not yet restored), then it is unavailable', async () => {
    const url = new URL(scratch.url);
    url.pathname = `/gatehouse_missing_${randomBytes(6).toString('hex')}`;
    const missing = await openDatabase({ databaseUrl: url.toString(), connectTimeoutMs: 2000 });

    const error = await errorOf(sql`select 1`.execute(missing.db)).finally(() => missing.close());

    expect(error).toMatchObject({ code: '3D000' });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('when a statement outlives statement_timeout (57014), then it is unavailable', async () => {
    const error = await errorOf(
      handle.db.connection().execute(async (connection) => {
        await sql`set statement_timeout = 50`.execute(connection);
        await sql`select pg_sleep(5)`.execute(connection);
      }),
    );

    expect(error).toMatchObject({ code: '57014' });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('when every pooled connection stays busy past the connection timeout, then it is unavailable', async () => {
    const small = await openDatabase({ databaseUrl: scratch.url, connectTimeoutMs: 200 });
    // Ten connections (the pool's max) held by open transactions; the eleventh query waits.
    const release = new Array<() => void>();
    const held = Array.from({ length: 10 }, () =>
      small.db
        .connection()
        .execute((connection) => sql`select 1`.execute(connection).then(() => new Promise<void>((resolve) => release.push(resolve)))),
    );
    await waitFor(async () => release.length === 10);

    const error = await errorOf(sql`select 1`.execute(small.db));
    for (const resolve of release) resolve();
    await Promise.all(held);
    await small.close();

    expect(error).toMatchObject({ message: expect.stringMatching(/timeout/) });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('when the connection is cut during a query (Connection terminated unexpectedly), then it is unavailable', async () => {
    // A TCP relay in front of the real server, cut as a network failure or a killed server would.
    const server = new URL(process.env.DATABASE_URL!);
    const relay = await tcpServer((socket) => {
      const upstream = net.connect(Number(server.port || 5432), server.hostname);
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      socket.pipe(upstream).pipe(socket);
    });
    const url = new URL(scratch.url);
    url.host = `127.0.0.1:${relay.port}`;
    const relayed = await openDatabase({ databaseUrl: url.toString(), connectTimeoutMs: 2000 });
    const running = errorOf(sql`select pg_sleep(30)`.execute(relayed.db));
    await waitFor(async () => (await activeQueries(name)) > 0);
    await relay.close();

    const error = await running;
    await relayed.close();

    expect(error).toMatchObject({ message: 'Connection terminated unexpectedly' });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['division by zero (22012)', sql`select 1 / 0`],
    ['a syntax error (42601)', sql`selec 1`],
    ['an unknown table (42P01)', sql`select * from no_such_table`],
  ])('when a query fails with %s, then it is a bug, not an outage', async (_case, query) => {
    const error = await errorOf(query.execute(handle.db));

    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

/** The number of queries running on a database other than this one. */
async function activeQueries(name: string): Promise<number> {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    const result = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%pg_sleep%'`,
      [name],
    );
    return Number(result.rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

/** Polls a condition the test cannot be told of (a server's view of its sessions). */
async function waitFor(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('condition not met within 5 s');
}

describeIfPg('HTTP when PostgreSQL refuses connections (its own scratch database)', () => {
  let scratch: ScratchDatabase;
  let name: string;
  let handle: DatabaseHandle;
  let h: Harness;
  let user: RegisteredUser;
  beforeAll(async () => {
    scratch = await createScratchDatabase('outage');
    name = databaseName(scratch.url);
    // The server's own settings: the default connection timeout and statement_timeout.
    handle = await openDatabase({ databaseUrl: scratch.url });
    await migrateToLatest(handle.db);
    h = await createHarness({ database: handle });
    user = await registerUser(h.app);
  });
  afterAll(async () => {
    await h.close();
    await handle.close();
    await allowConnections(name).catch(() => undefined);
    await scratch.drop();
  });

  const me = () => request(h.app).get('/users/me').set(bearer(user.accessToken));
  const login = () => request(h.app).post('/auth/login').send({ email: user.email, password: user.password });

  it('when connections are refused and the pooled ones ended, then /users/me, /auth/login and /readyz answer 503 UNAVAILABLE with Retry-After, and /healthz 200', async () => {
    // Pooled connections exist (the registration used them): the outage must end those too.
    expect(handle.poolStats().total).toBeGreaterThan(0);
    await refuseConnections(name);

    const responses = { me: await me(), login: await login(), readyz: await request(h.app).get('/readyz') };
    const healthz = await request(h.app).get('/healthz');

    expectUnavailable(responses.me);
    expectUnavailable(responses.login);
    expectUnavailable(responses.readyz);
    expect(healthz.status).toBe(200);
  });

  it('when connections are allowed again, then the same app serves /users/me, /auth/login and /readyz at once', async () => {
    await refuseConnections(name);
    expectUnavailable(await me());

    await allowConnections(name);

    const responses = { me: await me(), login: await login(), readyz: await request(h.app).get('/readyz') };
    expect(responses.me.status).toBe(200);
    expect(responses.me.body.id).toBe(user.id);
    expect(responses.login.status).toBe(200);
    expect(typeof responses.login.body.accessToken).toBe('string');
    expect(responses.readyz.status).toBe(200);
  });
});

/** A migrated embedded database whose PGlite instance the test holds, so it can close it under the app. */
async function openOwnPglite(): Promise<{ pglite: PGlite; handle: DatabaseHandle }> {
  const templates = process.env[PGLITE_TEMPLATES_ENV];
  const pglite = templates
    ? await PGlite.create('memory://', { loadDataDir: new Blob([await readFile(path.join(templates, 'migrated.tar'))]) })
    : await PGlite.create('memory://');
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  if (!templates) await migrateToLatest(db);
  const handle: DatabaseHandle = {
    db,
    kind: 'pglite',
    poolStats: () => ({ total: 1, idle: 0, waiting: 0 }),
    // Destroying the dialect closes PGlite, which refuses to be closed twice.
    close: async () => {
      if (!pglite.closed) await db.destroy();
    },
  };
  return { pglite, handle };
}

describe('HTTP when the embedded database is gone', () => {
  it('when the PGlite instance has closed, then /users/me, /auth/login and /readyz answer 503 UNAVAILABLE, and /healthz 200', async () => {
    const { pglite, handle } = await openOwnPglite();
    const h = await createHarness({ database: handle });
    const user = await registerUser(h.app);
    await pglite.close();

    const me = await request(h.app).get('/users/me').set(bearer(user.accessToken));
    const login = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
    const readyz = await request(h.app).get('/readyz');
    const healthz = await request(h.app).get('/healthz');

    expectUnavailable(me);
    expectUnavailable(login);
    expectUnavailable(readyz);
    expect(healthz.status).toBe(200);
  });

  it('when the database handle has been closed (a shutdown outlasting its grace period), then requests answer 503, not 500', async () => {
    const handle = await openPgliteFrom('migrated');
    const h = await createHarness({ database: handle });
    const user = await registerUser(h.app);
    await handle.close();

    const me = await request(h.app).get('/users/me').set(bearer(user.accessToken));
    const login = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });

    expectUnavailable(me);
    expectUnavailable(login);
  });

  it('when PGlite is closed, then its error means the database is unavailable, and a failing query on a live one does not', async () => {
    const { pglite, handle } = await openOwnPglite();
    const bug = await errorOf(sql`select 1 / 0`.execute(handle.db));
    await pglite.close();

    const closed = await errorOf(sql`select 1`.execute(handle.db));

    expect(isDatabaseUnavailable(bug)).toBe(false);
    expect(isDatabaseUnavailable(closed)).toBe(true);
  });
});

describe('the error handler on a database error that is not an outage', () => {
  let handle: DatabaseHandle;
  beforeAll(async () => {
    handle = await openPgliteFrom('empty');
  });
  afterAll(async () => {
    await handle.close();
  });

  it('when details are exposed (outside production), then a 500 still never carries the driver message', async () => {
    const app = express();
    app.use(requestId());
    app.get('/boom', async () => {
      await sql`select 1 / 0`.execute(handle.db);
    });
    app.use(errorHandler({ exposeDetails: true }));

    const res = await request(app).get('/boom');

    expectProblem(res, 500, 'INTERNAL');
    expect(res.body.detail).not.toMatch(/division|zero|select/i);
  });
});
