import { Client } from 'pg';

/*
 * What a test does to a PostgreSQL server beside the app: hold locks in a transaction of its
 * own, see what the app's backends are waiting for, and end them. Each helper connects
 * directly (never through the app's pool, nor a fault proxy in front of it).
 */

/** A connected client of its own; errors of a connection the server ends are kept out of the way. */
export async function connectDirect(url: string): Promise<Client> {
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** An open transaction of the test's own, holding whatever locks its statements took. */
export interface HeldTransaction {
  /** Its backend's process id, to spare it when ending the others. */
  readonly pid: number;
  /** Runs one more statement in it. */
  query(text: string, values?: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** Commits and disconnects. */
  commit(): Promise<void>;
  /** Rolls back (releasing every lock) and disconnects; safe to call twice, or after commit. */
  release(): Promise<void>;
}

/** Begins a transaction on `url` and runs `statements` in it, so the locks they take are held until release. */
export async function holdTransaction(url: string, ...statements: Array<[text: string, values?: unknown[]]>): Promise<HeldTransaction> {
  const client = await connectDirect(url);
  let open = true;
  const end = async (command: 'COMMIT' | 'ROLLBACK') => {
    if (!open) return;
    open = false;
    try {
      await client.query(command);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  const pid = Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
  await client.query('BEGIN');
  for (const [text, values] of statements) await client.query(text, values);
  return {
    pid,
    query: async (text, values) => (await client.query(text, values)).rows as Array<Record<string, unknown>>,
    commit: () => end('COMMIT'),
    release: () => end('ROLLBACK'),
  };
}

/** The name of the database a URL points at. */
export function databaseNameOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1));
}

/**
 * Runs `statement` on the server's own connection to `url`'s database, outside any pool, and
 * returns its rows.
 */
export async function queryDirect<Row = Record<string, unknown>>(url: string, text: string, values?: unknown[]): Promise<Row[]> {
  const client = await connectDirect(url);
  try {
    return (await client.query(text, values)).rows as Row[];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Backends of the database at `url` waiting on a lock now, with the statement each runs. */
export async function lockWaits(url: string): Promise<string[]> {
  const rows = await queryDirect<{ query: string }>(
    url,
    `SELECT query FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
    [databaseNameOf(url)],
  );
  return rows.map((row) => row.query);
}

/** Backends of the database at `url` in the middle of something (a statement, a transaction), but the caller's own. */
export async function busyBackends(url: string): Promise<number> {
  const rows = await queryDirect<{ n: number }>(
    url,
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state <> 'idle' AND pid <> pg_backend_pid()`,
    [databaseNameOf(url)],
  );
  return rows[0]!.n;
}

/** Ends every backend of the database at `url` but the caller's own: what an operator or a failover does. */
export async function terminateBackends(url: string, except: readonly number[] = []): Promise<number> {
  const rows = await queryDirect<{ ended: boolean }>(
    url,
    `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
     WHERE datname = $1 AND pid <> pg_backend_pid() AND NOT (pid = ANY($2::int[]))`,
    [databaseNameOf(url), [...except]],
  );
  return rows.filter((row) => row.ended).length;
}
