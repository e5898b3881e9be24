import type { Kysely, Updateable } from 'kysely';
import type { Database, MailKind, MailOutboxTable } from '../db/schema';

/** A message to send: written in the transaction of the token its link carries. */
export interface OutboxMessage {
  kind: MailKind;
  recipient: string;
  userId: string;
  /** The link with the token filled in; the only place a usable token is kept. */
  link: string;
  /** When the token expires: the message says so, and a message sent later is pointless. */
  expiresAt: Date;
}

/** Writes a message to the outbox; call it inside the transaction that creates its token. */
export async function enqueueMail(trx: Kysely<Database>, message: OutboxMessage, now: Date): Promise<string> {
  const row = await trx
    .insertInto('mail_outbox')
    .values({
      kind: message.kind,
      recipient: message.recipient,
      user_id: message.userId,
      link: message.link,
      expires_at: message.expiresAt,
      created_at: now,
      next_attempt_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** Messages of one kind written to one address since `since`: the per-hour cap counts these. */
export async function countMailSince(db: Kysely<Database>, recipient: string, kind: MailKind, since: Date): Promise<number> {
  const row = await db
    .selectFrom('mail_outbox')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('recipient', '=', recipient)
    .where('kind', '=', kind)
    .where('created_at', '>', since)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** A message the dispatcher has claimed: its lease runs until the `next_attempt_at` it set. */
export interface ClaimedMail {
  id: string;
  kind: MailKind;
  recipient: string;
  link: string | null;
  expiresAt: Date;
  createdAt: Date;
  /** Counting this one. */
  attempts: number;
}

/**
 * Claims up to `limit` due messages for one sender: in one short statement (its own
 * transaction), locks them with `FOR UPDATE SKIP LOCKED` — rows another instance is claiming
 * are skipped, not waited for — counts the attempt and moves `next_attempt_at` to
 * `leaseUntil`. Until then no other instance takes them; if this sender dies before it
 * records the outcome, they are due again once the lease has run out.
 */
export async function claimDueMail(db: Kysely<Database>, now: Date, leaseUntil: Date, limit: number): Promise<ClaimedMail[]> {
  const due = db
    .selectFrom('mail_outbox')
    .select('id')
    .where('sent_at', 'is', null)
    .where('failed_at', 'is', null)
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .limit(limit)
    .forUpdate()
    .skipLocked();
  const rows = await db
    .updateTable('mail_outbox')
    .set((eb) => ({ next_attempt_at: leaseUntil, attempts: eb('attempts', '+', 1) }))
    .where('id', 'in', due)
    .returning(['id', 'kind', 'recipient', 'link', 'expires_at', 'created_at', 'attempts'])
    .execute();
  return rows
    .map((row) => ({
      id: row.id,
      kind: row.kind,
      recipient: row.recipient,
      link: row.link,
      expiresAt: new Date(row.expires_at),
      createdAt: new Date(row.created_at),
      attempts: row.attempts,
    }))
    .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

/**
 * Records a delivery and forgets the link (and with it the token), whoever holds the claim
 * now: a message that reached its receiver was delivered, even when the sender's lease ran out
 * and another sender gave it up meanwhile (that failure is undone: it did not happen).
 */
export async function markMailSent(db: Kysely<Database>, id: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('mail_outbox')
    .set({ sent_at: now, failed_at: null, link: null, last_error: null })
    .where('id', '=', id)
    .where('sent_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Schedules the next attempt, unless another sender has claimed the message since (its lease
 * ran out while this attempt lasted): `attempts` still being ours says it has not.
 */
export async function scheduleMailRetry(
  db: Kysely<Database>,
  id: string,
  attempts: number,
  nextAttemptAt: Date,
  error: string,
): Promise<boolean> {
  return updateIfStillClaimed(db, id, attempts, { next_attempt_at: nextAttemptAt, last_error: error });
}

/**
 * Gives a message up for good and forgets its link, unless another sender has claimed it since
 * (`attempts` no longer ours): that sender may be delivering it at this moment, and the row is
 * its to decide.
 */
export async function markMailFailed(db: Kysely<Database>, id: string, attempts: number, now: Date, error: string): Promise<boolean> {
  return updateIfStillClaimed(db, id, attempts, { failed_at: now, link: null, last_error: error });
}

/**
 * Updates a message still waiting and still claimed by the sender that counted `attempts`:
 * whether the update took. Another sender's later claim, or an outcome already recorded, wins.
 */
async function updateIfStillClaimed(
  db: Kysely<Database>,
  id: string,
  attempts: number,
  changes: Updateable<MailOutboxTable>,
): Promise<boolean> {
  const result = await db
    .updateTable('mail_outbox')
    .set(changes)
    .where('id', '=', id)
    .where('attempts', '=', attempts)
    .where('sent_at', 'is', null)
    .where('failed_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** When the oldest message still waiting to be sent was queued; undefined when none waits. */
export async function oldestUnsentMail(db: Kysely<Database>): Promise<Date | undefined> {
  const row = await db
    .selectFrom('mail_outbox')
    .select('created_at')
    .where('sent_at', 'is', null)
    .where('failed_at', 'is', null)
    .orderBy('created_at')
    .limit(1)
    .executeTakeFirst();
  return row ? new Date(row.created_at) : undefined;
}

/** The latest messages, newest first, for `npm run mail:show`: links included. */
export async function latestMail(db: Kysely<Database>, limit: number) {
  return db
    .selectFrom('mail_outbox')
    .select(['id', 'kind', 'recipient', 'link', 'expires_at', 'created_at', 'attempts', 'sent_at', 'failed_at', 'last_error'])
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(limit)
    .execute();
}
