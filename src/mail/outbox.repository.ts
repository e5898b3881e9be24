import type { Kysely } from 'kysely';
import type { Database, MailKind } from '../db/schema';

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
