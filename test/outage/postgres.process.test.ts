import { openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/databases';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy';
import { holdTransaction, lockWaits, terminateBackends } from '../helpers/postgres';
import { waitUntil } from '../helpers/wait';
import { type GatehouseProcess, startGatehouse } from '../helpers/server-process';

// The outages of postgres.outage.test.ts, against a real Gatehouse process: the process stays
// up through each of them (no unhandled rejection, no uncaught socket error: either would end
// it, see src/process-guards.ts), answers 503 with Retry-After while the database is away, and
// serves again when it is back, without a restart.
//
// Skipped when DATABASE_URL is unset (CI sets it): these faults need a real server.
const describeIfPg = process.env.DATABASE_URL ? describe : describe.skip;

/** A generous bound on each request (not a timing assertion): a hang fails here, with a message. */
const BOUND_MS = 15_000;

describeIfPg('a Gatehouse process through PostgreSQL outages', () => {
  let scratch: ScratchDatabase;
  let proxy: FaultProxy;
  let gatehouse: GatehouseProcess;

  beforeAll(async () => {
    scratch = await createScratchDatabase('outage_process');
    const handle = await openDatabase({ databaseUrl: scratch.url });
    await migrateToLatest(handle.db).finally(() => handle.close());
    const server = new URL(process.env.DATABASE_URL!);
    proxy = await startFaultProxy({ host: server.hostname, port: Number(server.port || 5432) });
    gatehouse = await startGatehouse({ DATABASE_URL: proxy.via(scratch.url), DATABASE_STATEMENT_TIMEOUT: '1' });
  });

  afterAll(async () => {
    await gatehouse?.dispose();
    await proxy?.close();
    await scratch?.drop();
  });

  async function call(method: 'GET' | 'POST', path: string, options: { body?: unknown; token?: string } = {}) {
    const res = await fetch(`${gatehouse.baseUrl}${path}`, {
      method,
      headers: {
        ...(options.body === undefined ? {} : { 'Content-Type': 'application/json' }),
        ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(BOUND_MS),
    });
    const text = await res.text();
    return {
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  }

  function expectUnavailable(res: Awaited<ReturnType<typeof call>>): void {
    expect({ status: res.status, code: res.body.code }).toEqual({ status: 503, code: 'UNAVAILABLE' });
    expect(Number(res.retryAfter)).toBeGreaterThan(0);
  }

  it('when PostgreSQL refuses, ends its backends mid-statement, and hangs, then each time 503 with Retry-After and /healthz 200; the process stays up and serves again once PostgreSQL is back', async () => {
    const credentials = { email: uniqueEmail('outage'), password: GOOD_PASSWORD };
    const registered = await call('POST', '/auth/register', { body: credentials });
    expect(registered.status).toBe(201);
    const token = registered.body.accessToken as string;
    const serving = async () => {
      expect((await call('GET', '/users/me', { token })).status).toBe(200);
      expect((await call('POST', '/auth/login', { body: credentials })).status).toBe(200);
      expect((await call('GET', '/readyz')).status).toBe(200);
    };
    const unavailable = async () => {
      // More at once than the pool has connections, so none of them is left out of the outage.
      const responses = await Promise.all([
        call('POST', '/auth/login', { body: credentials }),
        call('GET', '/readyz'),
        ...Array.from({ length: 10 }, () => call('GET', '/users/me', { token })),
      ]);
      for (const res of responses) expectUnavailable(res);
      expect((await call('GET', '/healthz')).status).toBe(200);
    };

    await proxy.refuse();
    await unavailable();
    await proxy.restore();
    await serving();

    // A login held on the user's row, its backend ended with the rest.
    const lock = await holdTransaction(scratch.url, [
      'SELECT 1 FROM users WHERE id = $1 FOR UPDATE',
      [(registered.body.user as { id: string }).id],
    ]);
    const held = call('POST', '/auth/login', { body: credentials });
    await waitUntil(async () => (await lockWaits(scratch.url)).length > 0, 'the login waits on the lock');
    await terminateBackends(scratch.url, [lock.pid]);
    expectUnavailable(await held);
    await lock.release();
    await serving();

    proxy.hang();
    await unavailable();
    await proxy.restore({ loseHeld: true });
    await serving();

    expect(gatehouse.output()).not.toMatch(/uncaught|unhandled|"level":60/);
  });
});
