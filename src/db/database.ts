import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import { Pool } from 'pg';
import { lockDataDir } from './data-dir-lock';
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
}

/**
 * Opens the database: a `pg` pool when a URL is given, else PGlite under `dataDir`.
 * Both run the same migrations and the same queries.
 */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) {
    const pool = new Pool({
      connectionString: options.databaseUrl,
      max: 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      // A statement that runs this long is a bug or a lock pile-up; fail it rather than hold the request.
      statement_timeout: 10_000,
    });
    // An idle client losing its connection must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    return {
      db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }),
      kind: 'postgres',
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      close: async () => {
        await pool.end();
      },
    };
  }
  const dataDir = options.dataDir ?? 'memory://';
  const unlock = dataDir.includes('://') ? () => undefined : lockDataDir(dataDir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dataDir);
  } catch (error) {
    unlock();
    throw error;
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    kind: 'pglite',
    poolStats: () => ({ total: 1, idle: 0, waiting: 0 }),
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
      unlock();
    },
  };
}

const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE', 'EAI_AGAIN']);

/**
 * Whether an error means the database cannot be reached (answer 503) rather than a bug (500).
 * SQLSTATE class 08 is connection exceptions; 57P0x is the server shutting down or starting;
 * 53300 is too many connections.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  // Duck-typed, not `instanceof Error`: socket errors may come from another realm (Jest's
  // VM sandbox, worker threads), where that check is false for a perfectly real Error.
  if (typeof error !== 'object' || error === null) return false;
  const { code, errors, message } = error as { code?: unknown; errors?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (UNAVAILABLE_ERRNOS.has(code) || code.startsWith('08') || /^57P0[1-4]$/.test(code) || code === '53300') return true;
  }
  // AggregateError: Node tried several addresses (IPv4 and IPv6) and each failed.
  if (Array.isArray(errors)) return errors.some(isDatabaseUnavailable);
  return (
    typeof message === 'string' &&
    /timeout exceeded when trying to connect|Connection terminated|connection timeout|Client has encountered a connection error/i.test(message)
  );
}

/** The constraint a unique violation (SQLSTATE 23505) broke, if this error is one. */
export function uniqueViolation(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, constraint } = error as { code?: unknown; constraint?: unknown };
  if (code !== '23505') return undefined;
  return typeof constraint === 'string' ? constraint : '';
}
