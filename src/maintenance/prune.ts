import { type Kysely, type RawBuilder, sql } from 'kysely';
import { addSeconds } from '../clock';
import type { Database } from '../db/schema';

/** Rows per DELETE: small enough that each statement holds its row locks only briefly. */
export const DEFAULT_PRUNE_BATCH_SIZE = 1000;

export interface PruneOptions {
  now: Date;
  /** REFRESH_TOKEN_TTL, seconds: how long a revoked session is kept. */
  refreshTokenTtl: number;
  /** AUDIT_RETENTION_DAYS. */
  auditRetentionDays: number;
  /** LOCKOUT_DURATION, seconds: how long a failed-login counter matters. */
  lockoutDuration: number;
  /** Rows per DELETE statement; default {@link DEFAULT_PRUNE_BATCH_SIZE}. */
  batchSize?: number;
}

/** Rows deleted (or, on a dry run, that would be) per table. */
export interface PruneCounts {
  refreshTokens: number;
  sessions: number;
  auditEvents: number;
  loginFailures: number;
  oneTimeTokens: number;
  mailOutbox: number;
}

/** Each pruned table with the columns of its primary key, by which its batches are deleted. */
const KEYS = {
  refresh_tokens: ['id'],
  sessions: ['id'],
  audit_events: ['id'],
  login_failures: ['email', 'ip'],
  one_time_tokens: ['id'],
  mail_outbox: ['id'],
} as const;

type PrunedTable = keyof typeof KEYS;

/**
 * How long a message that was sent (or failed for good) is kept: longer than the hour the
 * RESET_MAX_PER_HOUR cap counts, so pruning never lets more messages through.
 */
export const MAIL_RETENTION_SECONDS = 24 * 60 * 60;

/** The moments before which rows are dead. */
export function pruneCutoffs(options: Pick<PruneOptions, 'now' | 'refreshTokenTtl' | 'auditRetentionDays' | 'lockoutDuration'>) {
  return {
    now: options.now,
    revokedBefore: addSeconds(options.now, -options.refreshTokenTtl),
    auditBefore: addSeconds(options.now, -options.auditRetentionDays * 24 * 60 * 60),
    failedBefore: addSeconds(options.now, -options.lockoutDuration),
    mailBefore: addSeconds(options.now, -MAIL_RETENTION_SECONDS),
  };
}

/** The conditions that make a row dead, shared by the deletes and the dry run's counts. */
function deadRows(options: PruneOptions) {
  const { now, revokedBefore, auditBefore, failedBefore, mailBefore } = pruneCutoffs(options);
  return {
    expiredToken: sql<boolean>`expires_at < ${now}::timestamptz`,
    expiredSession: sql<boolean>`expires_at < ${now}::timestamptz`,
    longRevokedSession: sql<boolean>`revoked_at < ${revokedBefore}::timestamptz`,
    oldEvent: sql<boolean>`created_at < ${auditBefore}::timestamptz`,
    // Sign-in starts such a count again anyway (a lock is set by the last failure and never outlasts it by more than LOCKOUT_DURATION).
    oldFailureCounter: sql<boolean>`last_failed_at < ${failedBefore}::timestamptz AND (locked_until IS NULL OR locked_until < ${failedBefore}::timestamptz)`,
    // A reset or verification token past its expiry can only be refused; used and superseded ones go with it.
    expiredOneTimeToken: sql<boolean>`expires_at < ${now}::timestamptz`,
    // A message still to be delivered is kept whatever its age: the dispatcher decides its fate.
    oldMail: sql<boolean>`created_at < ${mailBefore}::timestamptz AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)`,
  };
}

/**
 * What prune deletes, in the order it deletes it. Expired refresh tokens go first: every
 * token of an ended session has expired by then too (a token never outlives its session, and
 * none is issued after a revocation), so the session deletes that follow cascade to nothing
 * and the token count is the whole of it. A rotated token that has not expired is kept:
 * reuse detection needs it.
 */
function passes(options: PruneOptions): Array<{ table: PrunedTable; count: keyof PruneCounts; where: RawBuilder<boolean> }> {
  const dead = deadRows(options);
  return [
    { table: 'refresh_tokens', count: 'refreshTokens', where: dead.expiredToken },
    // Two passes rather than one OR, so that the first can use sessions_expires_at_idx.
    { table: 'sessions', count: 'sessions', where: dead.expiredSession },
    { table: 'sessions', count: 'sessions', where: dead.longRevokedSession },
    { table: 'audit_events', count: 'auditEvents', where: dead.oldEvent },
    { table: 'login_failures', count: 'loginFailures', where: dead.oldFailureCounter },
    { table: 'one_time_tokens', count: 'oneTimeTokens', where: dead.expiredOneTimeToken },
    { table: 'mail_outbox', count: 'mailOutbox', where: dead.oldMail },
  ];
}

function batchSizeOf(options: PruneOptions): number {
  const size = options.batchSize ?? DEFAULT_PRUNE_BATCH_SIZE;
  if (!Number.isSafeInteger(size) || size < 1) throw new TypeError(`batchSize must be a positive integer, got ${size}`);
  return size;
}

/**
 * Deletes the rows of `tableName` that match `where`, `batchSize` at a time, each batch its
 * own statement (and so its own transaction): a table is never locked for long, and an
 * interrupted run keeps what it did. SKIP LOCKED leaves a row that a request holds at this
 * moment to the next run rather than waiting for it.
 */
async function deleteInBatches(
  db: Kysely<Database>,
  tableName: PrunedTable,
  where: RawBuilder<boolean>,
  batchSize: number,
): Promise<number> {
  const table = sql.table(tableName);
  const key = sql.join(KEYS[tableName].map((column) => sql.ref(column)));
  let total = 0;
  for (;;) {
    const result = await sql`
      DELETE FROM ${table} WHERE (${key}) IN (
        SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${batchSize} FOR UPDATE SKIP LOCKED
      )`.execute(db);
    const deleted = Number(result.numAffectedRows ?? 0n);
    total += deleted;
    if (deleted < batchSize) return total;
  }
}

/**
 * Deletes what is past its use: refresh tokens that have expired; sessions that have ended
 * (expired, or revoked more than REFRESH_TOKEN_TTL ago); audit events older than
 * AUDIT_RETENTION_DAYS; failed-login counters whose last failure and lock are both older than
 * LOCKOUT_DURATION; reset and verification tokens past their expiry; outbox messages sent or
 * failed more than a day ago. Live sessions and their unexpired tokens are left alone.
 * Run it outside a transaction: each batch commits on its own.
 */
export async function prune(db: Kysely<Database>, options: PruneOptions): Promise<PruneCounts> {
  const batchSize = batchSizeOf(options);
  const counts: PruneCounts = { refreshTokens: 0, sessions: 0, auditEvents: 0, loginFailures: 0, oneTimeTokens: 0, mailOutbox: 0 };
  for (const pass of passes(options)) counts[pass.count] += await deleteInBatches(db, pass.table, pass.where, batchSize);
  return counts;
}

/** What {@link prune} would delete now, deleting nothing (`--dry-run`). */
export async function countPrunable(db: Kysely<Database>, options: PruneOptions): Promise<PruneCounts> {
  const dead = deadRows(options);
  const count = async (table: PrunedTable, where: RawBuilder<boolean>) => {
    const result = await sql<{ count: string }>`SELECT count(*) AS count FROM ${sql.table(table)} WHERE ${where}`.execute(db);
    return Number(result.rows[0]?.count ?? 0);
  };
  return {
    refreshTokens: await count('refresh_tokens', dead.expiredToken),
    // One OR here: a session both expired and long revoked is deleted once, by the first pass.
    sessions: await count('sessions', sql<boolean>`${dead.expiredSession} OR ${dead.longRevokedSession}`),
    auditEvents: await count('audit_events', dead.oldEvent),
    loginFailures: await count('login_failures', dead.oldFailureCounter),
    oneTimeTokens: await count('one_time_tokens', dead.expiredOneTimeToken),
    mailOutbox: await count('mail_outbox', dead.oldMail),
  };
}
