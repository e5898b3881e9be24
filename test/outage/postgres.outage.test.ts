import request from 'supertest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/databases';
import {
  bearer,
  expectProblem,
  registerUser,
  type RegisteredUser,
  sessionIdOf,
  sha256,
  liveRefreshTokenHashes,
} from '../helpers/factories';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy';
import { createHarness, type Harness } from '../helpers/harness';
import { busyBackends, type HeldTransaction, holdTransaction, lockWaits, queryDirect, terminateBackends } from '../helpers/postgres';
import { waitUntil } from '../helpers/wait';

// CONTRACT.md section 2: "a database that cannot be reached is 503 UNAVAILABLE with
// Retry-After, never a hang and never a crash". Here the faults are a real PostgreSQL
// server's and its network's, made on demand: a TCP relay between the app and the server
// refuses, cuts and hangs connections; a connection of the test's own holds locks and ends
// the app's backends. The app is the whole chain in-process (its process is this one; the
// spawned server of postgres.process.test.ts shows the same from outside).
//
// Skipped when DATABASE_URL is unset (CI sets it): these faults need a real server.
const describeIfPg = process.env.DATABASE_URL ? describe : describe.skip;

/**
 * A generous bound on each request, far above what any answer here needs: a request that
 * hangs fails the test with a clear message instead of running into Jest's timeout. Not a
 * timing assertion.
 */
const BOUND_MS = 15_000;
/** The app's statement timeout in this suite (the default, 10 s, would make a lock wait slow to test). */
const STATEMENT_TIMEOUT_MS = 1000;

/** What the drivers say when a connection fails; none of it may reach a response body. */
const DRIVER_WORDS = /ECONN|terminat|timeout|statement|canceling|Query read|127\.0\.0\.1|gatehouse_/i;

/** 503 UNAVAILABLE as problem+json, with Retry-After, and nothing of the driver's message. */
function expectUnavailable(res: request.Response): void {
  expectProblem(res, 503, 'UNAVAILABLE');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  expect(JSON.stringify(res.body)).not.toMatch(DRIVER_WORDS);
}

describeIfPg('PostgreSQL outages, through a fault proxy (a scratch database of the suite)', () => {
  let scratch: ScratchDatabase;
  /** The same database, straight to the server: for checking rows, never through the proxy. */
  let direct: DatabaseHandle;
  let proxy: FaultProxy;
  /** The app's database handle: a pool through the proxy. */
  let appDb: DatabaseHandle;
  let h: Harness;
  /** Users registered (one of them refreshed) before any fault. */
  let committed: Array<RegisteredUser & { sessionId: string }>;
  const held: HeldTransaction[] = [];

  beforeAll(async () => {
    scratch = await createScratchDatabase('outage');
    direct = await openDatabase({ databaseUrl: scratch.url });
    await migrateToLatest(direct.db);
    const server = new URL(process.env.DATABASE_URL!);
    proxy = await startFaultProxy({ host: server.hostname, port: Number(server.port || 5432) });
    appDb = await openDatabase({ databaseUrl: proxy.via(scratch.url), connectTimeoutMs: 1000, statementTimeoutMs: STATEMENT_TIMEOUT_MS });
    h = await createHarness({ database: appDb });
    committed = [];
    for (let i = 0; i < 3; i++) {
      const user = await registerUser(h.app);
      committed.push({ ...user, sessionId: sessionIdOf(user.accessToken) });
    }
    const rotated = await refresh(committed[0]!.refreshToken).expect(200);
    committed[0]!.refreshToken = rotated.body.refreshToken;
  });

  afterEach(async () => {
    await proxy.restore();
    await Promise.all(held.splice(0).map((transaction) => transaction.release()));
    // A backend the test cut off is gone once it noticed; none may commit later behind the next test's back.
    await waitUntil(async () => (await busyBackends(scratch.url)) === 0, 'the cut-off backends have ended');
  });

  afterAll(async () => {
    await h?.close();
    await appDb?.close();
    await direct?.close();
    await proxy?.close();
    await scratch?.drop();
  });

  const bounded = (test: request.Test) => test.timeout(BOUND_MS);
  const me = (user: RegisteredUser) => bounded(request(h.app).get('/users/me').set(bearer(user.accessToken)));
  const login = (user: RegisteredUser) => bounded(request(h.app).post('/auth/login').send({ email: user.email, password: user.password }));
  const refresh = (refreshToken: string) => bounded(request(h.app).post('/auth/refresh').send({ refreshToken }));
  const probe = (path: '/healthz' | '/readyz') => bounded(request(h.app).get(path));
  /** Starts a request now (supertest sends on `then`) and hands back its response to await later. */
  const started = (test: request.Test): Promise<request.Response> => test.then((res) => res);

  async function hold(...statements: Array<[string, unknown[]?]>): Promise<HeldTransaction> {
    const transaction = await holdTransaction(scratch.url, ...statements);
    held.push(transaction);
    return transaction;
  }

  /** Locks a session's row as an update of it would, so the app's next write to it waits. */
  const lockSession = (sessionId: string) => hold(['SELECT 1 FROM sessions WHERE id = $1 FOR NO KEY UPDATE', [sessionId]]);

  /** Resolves once a backend of the app waits on a lock in a statement matching `pattern`. */
  const waitsOnLock = (pattern: RegExp, what: string) =>
    waitUntil(async () => (await lockWaits(scratch.url)).some((query) => pattern.test(query)), what);

  const liveTokens = (sessionId: string) => liveRefreshTokenHashes(direct.db, sessionId);

  /** What a login writes: the user's sessions, their audit events, the time of the last login. */
  async function signInState(userId: string) {
    const sessions = await direct.db.selectFrom('sessions').select('id').where('user_id', '=', userId).orderBy('id').execute();
    const events = await direct.db.selectFrom('audit_events').select('type').where('user_id', '=', userId).orderBy('id').execute();
    const user = await direct.db.selectFrom('users').select('last_login_at').where('id', '=', userId).executeTakeFirstOrThrow();
    return { sessions, events, lastLoginAt: user.last_login_at };
  }

  async function expectServing(user: RegisteredUser): Promise<void> {
    expect((await me(user)).status).toBe(200);
    expect((await login(user)).status).toBe(200);
    expect((await probe('/readyz')).status).toBe(200);
  }

  it('when PostgreSQL refuses connections, then /users/me, /auth/login, /auth/refresh and /readyz answer 503 UNAVAILABLE with Retry-After and /healthz 200; once it accepts again, the same app serves', async () => {
    const user = await registerUser(h.app);
    // The pool holds connections from the registration: the outage ends those too.
    await proxy.refuse();

    expectUnavailable(await me(user));
    expectUnavailable(await login(user));
    expectUnavailable(await refresh(user.refreshToken));
    expectUnavailable(await probe('/readyz'));
    expect((await probe('/healthz')).status).toBe(200);

    await proxy.restore();
    await expectServing(user);
  });

  it('when the network to PostgreSQL hangs (nothing comes back), then every request, more than the pool holds, answers 503 with Retry-After within the bound and /healthz 200; once it flows again, the same app serves', async () => {
    const user = await registerUser(h.app);
    // Idle pooled connections exist: a query sent on one of them gets no answer at all.
    proxy.hang();

    const responses = await Promise.all([
      me(user),
      login(user),
      refresh(user.refreshToken),
      probe('/readyz'),
      ...Array.from({ length: 10 }, () => me(user)),
    ]);
    const healthz = await probe('/healthz');

    for (const res of responses) expectUnavailable(res);
    expect(healthz.status).toBe(200);
    await proxy.restore();
    await expectServing(user);
  });

  it('when the network hangs and comes back with the connections of before lost (the server gave up on them, the app was told nothing), then after the 503s of the hang the same app serves at once', async () => {
    const user = await registerUser(h.app);
    proxy.hang();
    // More requests than the pool has connections: each pooled one gets a query that is never answered.
    const responses = await Promise.all([login(user), ...Array.from({ length: 11 }, () => me(user))]);
    for (const res of responses) expectUnavailable(res);

    await proxy.restore({ loseHeld: true });

    // A connection whose query went unanswered is dropped, not pooled again to fail the next request.
    await expectServing(user);
  });

  it('when a statement waits on a lock another connection holds, then it is given up (503 with Retry-After) and the app goes on serving what the lock does not hold up', async () => {
    const user = await registerUser(h.app);
    // A login updates the user's row; a refresh's audit event checks its foreign key to it.
    const lock = await hold(['SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [user.id]]);

    expectUnavailable(await login(user));
    expectUnavailable(await refresh(user.refreshToken));
    expect((await me(user)).status).toBe(200);
    expect((await probe('/readyz')).status).toBe(200);
    expect((await probe('/healthz')).status).toBe(200);

    await lock.release();
    expect((await login(user)).status).toBe(200);
    // The refresh given up wrote nothing: its token is still the live one.
    expect((await refresh(user.refreshToken)).status).toBe(200);
  });

  it("when the connection is cut in the middle of a login's transaction, then 503, and nothing of that login was written", async () => {
    const user = await registerUser(h.app);
    const before = await signInState(user.id);
    // The login's last write is its audit event: held there, the session and refresh token are written, not committed.
    const lock = await hold(['LOCK TABLE audit_events IN SHARE MODE']);
    const pending = started(login(user));
    await waitsOnLock(/insert into "audit_events"/i, 'the login waits to write its audit event');

    proxy.cut();
    expectUnavailable(await pending);
    await lock.release();
    await waitUntil(async () => (await busyBackends(scratch.url)) === 0, 'the cut-off backend has ended');

    expect(await signInState(user.id)).toEqual(before);
    expect((await login(user)).status).toBe(200);
  });

  describe('a refresh rotation cut off leaves the session exactly one live token', () => {
    it('when the connection is cut while the one-statement rotation waits on the session, then 503, and one token is live, the old or the new; retrying the old one gets the live one', async () => {
      const user = await registerUser(h.app);
      const sessionId = sessionIdOf(user.accessToken);
      const lock = await lockSession(sessionId);
      const pending = started(refresh(user.refreshToken));
      await waitsOnLock(/with rotated as/i, 'the rotation statement waits on the session');

      proxy.cut();
      expectUnavailable(await pending);
      await lock.release();
      await waitUntil(async () => (await busyBackends(scratch.url)) === 0, 'the cut-off backend has ended');

      // One statement is its own transaction: the server finishes it (and commits) once the lock
      // is free, whether or not its client is still there to hear of it.
      const live = await liveTokens(sessionId);
      expect(live).toHaveLength(1);
      const retry = await refresh(user.refreshToken);
      expect(retry.status).toBe(200);
      expect(await liveTokens(sessionId)).toEqual([sha256(retry.body.refreshToken)]);
      // A committed rotation is retried within the grace: the successor it handed out stays the live one.
      if (live[0] !== sha256(user.refreshToken)) expect(sha256(retry.body.refreshToken)).toBe(live[0]);
    });

    it('when the connection is cut in the middle of the fallback transaction (successor written, not committed), then 503, and the old token is the one live; it refreshes', async () => {
      const user = await registerUser(h.app);
      const sessionId = sessionIdOf(user.accessToken);
      const [token] = await queryDirect<Record<string, unknown>>(
        scratch.url,
        'SELECT id, session_id, token_hash, created_at, expires_at FROM refresh_tokens WHERE session_id = $1',
        [sessionId],
      );
      // The session's row held: the fallback's last update of it waits, its successor written.
      const lock = await lockSession(sessionId);
      // The token's row deleted and put back unchanged, in a transaction held open: the rotation
      // statement waits on the row, then finds it gone and rotates nothing; the fallback after
      // it finds the row back and rotates it in a transaction.
      const swap = await hold(
        ['DELETE FROM refresh_tokens WHERE id = $1', [token!.id]],
        [
          'INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)',
          [token!.id, token!.session_id, token!.token_hash, token!.created_at, token!.expires_at],
        ],
      );
      const pending = started(refresh(user.refreshToken));
      await waitsOnLock(/with rotated as/i, 'the rotation statement waits on the token');
      await swap.commit();
      await waitsOnLock(/update "sessions"/i, 'the fallback transaction waits to touch the session');
      const written = await queryDirect<{ n: number }>(
        scratch.url,
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
         WHERE c.relname = 'refresh_tokens' AND l.mode = 'RowExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()`,
      );
      // The fallback has written to refresh_tokens (its successor, the rotation mark) in its open transaction.
      expect(written[0]!.n).toBeGreaterThan(0);

      proxy.cut();
      expectUnavailable(await pending);
      await lock.release();
      await waitUntil(async () => (await busyBackends(scratch.url)) === 0, 'the cut-off backend has ended');

      // Its transaction never got its COMMIT: rolled back, the old token is the live one.
      expect(await liveTokens(sessionId)).toEqual([sha256(user.refreshToken)]);
      const retry = await refresh(user.refreshToken);
      expect(retry.status).toBe(200);
      expect(await liveTokens(sessionId)).toEqual([sha256(retry.body.refreshToken)]);
    });

    it('when the rotation committed but its answer was lost, then 503, the new token is the one live, and retrying the old one within the grace gets that same new token', async () => {
      const user = await registerUser(h.app);
      const sessionId = sessionIdOf(user.accessToken);
      const lock = await lockSession(sessionId);
      const pending = started(refresh(user.refreshToken));
      await waitsOnLock(/with rotated as/i, 'the rotation statement waits on the session');
      // From here nothing comes back from the server; the rotation completes and commits.
      proxy.hang('toClient');
      await lock.release();
      await waitUntil(async () => (await liveTokens(sessionId))[0] !== sha256(user.refreshToken), 'the rotation has committed');

      proxy.cut();
      expectUnavailable(await pending);
      await proxy.restore();

      const live = await liveTokens(sessionId);
      expect(live).toHaveLength(1);
      expect(live[0]).not.toBe(sha256(user.refreshToken));
      const retry = await refresh(user.refreshToken);
      expect(retry.status).toBe(200);
      expect(sha256(retry.body.refreshToken)).toBe(live[0]);
      expect(await liveTokens(sessionId)).toEqual(live);
    });
  });

  it("when the app's backends are terminated, idle ones and one in the middle of a statement, then that request answers 503 and the next ones are served at once", async () => {
    const user = await registerUser(h.app);
    const sessionId = sessionIdOf(user.accessToken);
    const lock = await lockSession(sessionId);
    const pending = started(refresh(user.refreshToken));
    await waitsOnLock(/with rotated as/i, 'the rotation statement waits on the session');

    expect(await terminateBackends(scratch.url, [lock.pid])).toBeGreaterThan(0);
    expectUnavailable(await pending);
    await lock.release();

    expect((await me(user)).status).toBe(200);
    expect((await login(user)).status).toBe(200);
    expect(await liveTokens(sessionId)).toEqual([sha256(user.refreshToken)]);
    expect((await refresh(user.refreshToken)).status).toBe(200);
  });

  it('after every outage above, everything committed before them is there: each user logs in, each live refresh token refreshes', async () => {
    for (const user of committed) {
      expect(await liveTokens(user.sessionId)).toEqual([sha256(user.refreshToken)]);
      expect((await login(user)).status).toBe(200);
      expect((await refresh(user.refreshToken)).status).toBe(200);
    }
  });
});
