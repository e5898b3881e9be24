import { PGlite } from '@electric-sql/pglite';
import { chmodSync, lstatSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { Pool, type PoolClient } from 'pg';
import { LOCK_FILE, lockDataDir } from './data-dir-lock';
import { preparedStatementName } from './prepared';
import type { Database } from './schema';

export type DB = Kysely<Database>;

export interface DatabaseHandle {
  readonly db: DB;
  readonly kind: 'postgres' | 'pglite';
  /** Pool counters for metrics; zeros for the embedded database. */
  poolStats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** A postgres:// URL; when absent, the embedded PGlite is used. */
  databaseUrl?: string | undefined;
  /** Where PGlite keeps its files; `memory://` keeps nothing on disk. */
  dataDir?: string;
  /** Upper bound on connecting to PostgreSQL, so a dead server answers 503 instead of hanging. */
  connectTimeoutMs?: number;
  /**
   * Upper bound on one statement, lock waits included (PostgreSQL's statement_timeout; default
   * 10 s): a statement held up that long fails, and its request answers 503.
   */
  statementTimeoutMs?: number;
  /**
   * A PGlite data directory tarball (`dumpDataDir()`) to start from instead of an empty
   * database, when `dataDir` holds none yet: the tests start each database from one copy
   * migrated once per run, instead of running initdb and every migration again.
   */
  loadDataDir?: Blob;
  /** Told when `dataDir` was open to group or others and has been made the owner's alone (server.ts logs it). */
  onTightened?: (tightened: DataDirTightened) => void;
}

/** What {@link openDatabase} changed to make an embedded database folder private. */
export interface DataDirTightened {
  dataDir: string;
  /** The folder's permission bits before (e.g. 0o755). */
  previousMode: number;
  /** Files and folders inside it that were open to group or others. */
  files: number;
}

/** Permission bits for group and others. */
const GROUP_OR_OTHER = 0o077;

/**
 * Makes an embedded database folder its owner's alone, as PostgreSQL demands of its own data
 * folder: the write-ahead log and the tables hold every email and password hash. Earlier
 * versions left it 0755 with files 0644 (the usual umask); those are tightened. A folder
 * holding anything else than a database (DATA_DIR naming the wrong one) is left as it is.
 */
function tightenDataDir(dataDir: string): DataDirTightened | undefined {
  const names = readdirSync(dataDir);
  if (!names.includes('PG_VERSION') && !names.every((name) => name.startsWith(LOCK_FILE))) return undefined;
  const previousMode = statSync(dataDir).mode & 0o777;
  if (previousMode & GROUP_OR_OTHER) chmodSync(dataDir, 0o700);
  let files = 0;
  for (const entry of readdirSync(dataDir, { recursive: true })) {
    const file = path.join(dataDir, String(entry));
    const stats = lstatSync(file);
    // chmod follows links: a link's target is not ours to change.
    if (stats.isSymbolicLink() || !(stats.mode & GROUP_OR_OTHER)) continue;
    chmodSync(file, stats.mode & 0o700);
    files++;
  }
  return previousMode & GROUP_OR_OTHER || files > 0 ? { dataDir, previousMode, files } : undefined;
}

let privateUmaskHolders = 0;
let umaskBefore: number | undefined;

/**
 * PGlite creates its files with the process umask (0644 under the usual 022), and keeps
 * creating them while it runs (new write-ahead log segments, tables); PostgreSQL itself runs
 * under umask 077. Held while an embedded database is open on disk; returns the release.
 */
function holdPrivateUmask(): () => void {
  if (privateUmaskHolders === 0) {
    try {
      const before = process.umask(0o077);
      // Stricter still if the operator's was.
      process.umask(before | 0o077);
      umaskBefore = before;
    } catch {
      // Worker threads cannot change the umask; the folder's 0700 still keeps others out.
      return () => undefined;
    }
  }
  privateUmaskHolders++;
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    privateUmaskHolders--;
    if (privateUmaskHolders === 0 && umaskBefore !== undefined) {
      process.umask(umaskBefore);
      umaskBefore = undefined;
    }
  };
}

/**
 * The pool as Kysely uses it, but sending the queries of prepared.ts as named prepared
 * statements: PostgreSQL then parses and plans each once per connection. (The embedded
 * database runs in this process; it has no round trip to save and is given the pool as is.)
 */
function namingPreparedStatements(pool: Pool): PostgresPool {
  // One adapter per pooled client, so Kysely, which keys its connections by client, keeps finding its own.
  const adapters = new WeakMap<PoolClient, PostgresPoolClient>();
  const adapt = (client: PoolClient): PostgresPoolClient => {
    const send = (text: unknown, values?: unknown[]) => {
      // A cursor (Kysely's stream()) goes through untouched.
      if (typeof text !== 'string') return client.query(text as never);
      const name = preparedStatementName(text);
      return name ? client.query({ name, text, values }) : client.query(text, values);
    };
    return {
      query: ((text: unknown, values?: unknown[]) =>
        (send(text, values) as Promise<unknown>).catch((error: unknown) => {
          if (isQueryReadTimeout(error)) dropConnection(client);
          throw error;
        })) as unknown as PostgresPoolClient['query'],
      release: () => client.release(),
    };
  };
  return {
    connect: async () => {
      const client = await pool.connect();
      let adapter = adapters.get(client);
      if (!adapter) adapters.set(client, (adapter = adapt(client)));
      return adapter;
    },
    end: () => pool.end(),
  };
}

/** pg's error for a query whose answer did not come within `query_timeout`. */
const QUERY_READ_TIMEOUT = 'Query read timeout';

function isQueryReadTimeout(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { message?: unknown }).message === QUERY_READ_TIMEOUT;
}

/**
 * Closes a client whose query got no answer in time. pg gives up waiting for the answer but
 * keeps the connection, with the query still in flight on it: every later query on that
 * client (the transaction's ROLLBACK, the next request's queries once it is back in the pool)
 * would queue behind an answer that may never come. Destroyed, it fails those at once and the
 * pool drops it. (pg's own pipelined mode does the same, through the same `connection.stream`.)
 */
function dropConnection(client: PoolClient): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/**
 * How long after the statement timeout a query without any answer is given up: the server
 * cancels a slow statement itself, and says so; silence past that is a connection that
 * stopped carrying anything (a network partition, a frozen server), which only the client can notice.
 */
const QUERY_TIMEOUT_MARGIN_MS = 2000;

/**
 * Opens the database: a `pg` pool when a URL is given, else PGlite under `dataDir`.
 * Both run the same migrations and the same queries.
 */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) {
    const statementTimeoutMs = options.statementTimeoutMs ?? 10_000;
    const pool = new Pool({
      connectionString: options.databaseUrl,
      max: 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      // A statement that runs this long is a bug or a lock pile-up; fail it (503) rather than hold the
      // request. connectionTimeoutMillis bounds both connecting and waiting for a free pooled client.
      statement_timeout: statementTimeoutMs,
      // And a query whose answer never comes (the server or the network stopped): given up by the
      // client a little later, its connection dropped (see dropConnection), the request answers 503.
      query_timeout: statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
    });
    // An idle client losing its connection must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    // Nor a client losing it while checked out: pg then emits 'error' on the client, which the
    // pool listens to only while the client is idle, so a network cut during a query would be an
    // uncaught exception. The query in flight fails with the error all the same, and the pool
    // drops the client when it is released.
    pool.on('connect', (client) => client.on('error', () => undefined));
    return {
      db: new Kysely<Database>({ dialect: new PostgresDialect({ pool: namingPreparedStatements(pool) }) }),
      kind: 'postgres',
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      close: async () => {
        await pool.end();
      },
    };
  }
  const dataDir = options.dataDir ?? 'memory://';
  const onDisk = !dataDir.includes('://');
  // The lock creates a missing folder, 0700.
  const unlock = onDisk ? lockDataDir(dataDir) : () => undefined;
  let releaseUmask: () => void = () => undefined;
  let pglite: PGlite;
  try {
    if (onDisk) {
      const tightened = tightenDataDir(dataDir);
      if (tightened) options.onTightened?.(tightened);
      releaseUmask = holdPrivateUmask();
    }
    pglite = await PGlite.create(dataDir, options.loadDataDir ? { loadDataDir: options.loadDataDir } : {});
  } catch (error) {
    releaseUmask();
    unlock();
    throw error;
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    kind: 'pglite',
    poolStats: () => ({ total: 1, idle: 0, waiting: 0 }),
    close: async () => {
      try {
        await db.destroy();
        if (!pglite.closed) await pglite.close();
      } finally {
        releaseUmask();
        unlock();
      }
    },
  };
}

/** Socket errors: the database server cannot be reached, or the connection to it broke. */
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a database that cannot serve now, whatever the query (PostgreSQL appendix A).
 * Class 08 (connection exceptions) is matched by its prefix.
 */
const UNAVAILABLE_SQLSTATES = new Set([
  '3D000', // invalid_catalog_name: the database does not exist (dropped, or not restored yet)
  '53300', // too_many_connections
  '57014', // query_canceled: statement_timeout, a lock pile-up or an overloaded server
  '57P01', // admin_shutdown: "terminating connection due to administrator command"
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up, shutting down, in recovery
  '57P04', // database_dropped
  '57P05', // idle_session_timeout
]);

/** Errors without a code: pg's connection and pool failures, a closed PGlite, a destroyed Kysely driver. */
const UNAVAILABLE_MESSAGE =
  /timeout exceeded when trying to connect|^Query read timeout$|Connection terminated|Client has encountered a connection error|Client was closed and is not queryable|Cannot use a pool after calling end|^PGlite is clos(?:ed|ing)$|^driver has already been destroyed$/;

/**
 * Whether an error means the database cannot be reached (answer 503) rather than a bug (500).
 * Besides the codes above, any error of severity FATAL or PANIC: the server ended the session,
 * as when it refuses a connection ("database … is not currently accepting connections" is
 * 55000, a code that otherwise means a bug).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  // Duck-typed, not `instanceof Error`: socket errors may come from another realm (Jest's
  // VM sandbox, worker threads), where that check is false for a perfectly real Error.
  if (typeof error !== 'object' || error === null) return false;
  const { code, severity, errors, message } = error as { code?: unknown; severity?: unknown; errors?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNAVAILABLE_ERRNOS.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) return true;
  if (severity === 'FATAL' || severity === 'PANIC') return true;
  // AggregateError: Node tried several addresses (IPv4 and IPv6) and each failed.
  if (Array.isArray(errors)) return errors.some(isDatabaseUnavailable);
  return typeof message === 'string' && UNAVAILABLE_MESSAGE.test(message);
}

/**
 * Whether an error was reported by the database server (it carries a SQLSTATE and a
 * severity). Its message may quote SQL or the data in it, so no response repeats it.
 */
export function isDatabaseError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string';
}

/** The constraint a unique violation (SQLSTATE 23505) broke, if this error is one. */
export function uniqueViolation(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, constraint } = error as { code?: unknown; constraint?: unknown };
  if (code !== '23505') return undefined;
  return typeof constraint === 'string' ? constraint : '';
}
