import type { DB } from '../../src/db/database';
import type { MailKind } from '../../src/db/schema';

/** The outbox rows to one address, oldest first, as the dispatcher would read them. */
export function messagesTo(db: DB, recipient: string, kind?: MailKind) {
  let query = db
    .selectFrom('mail_outbox')
    .select(['id', 'kind', 'recipient', 'user_id', 'link', 'expires_at', 'created_at'])
    .where('recipient', '=', recipient);
  if (kind) query = query.where('kind', '=', kind);
  return query.orderBy('created_at').orderBy('id').execute();
}

/** The token the newest message of `kind` to `recipient` carries, read from its link as the recipient would. */
export async function tokenFromLatestMessage(db: DB, recipient: string, kind: MailKind): Promise<string> {
  const messages = await messagesTo(db, recipient, kind);
  const link = messages.at(-1)?.link;
  if (!link) throw new Error(`no ${kind} message to ${recipient}`);
  const token = new URL(link).searchParams.get('token');
  if (!token) throw new Error(`no token in the link ${link}`);
  return token;
}

/** Every token of each message of `kind` to `recipient`, oldest first. */
export async function tokensOfMessages(db: DB, recipient: string, kind: MailKind): Promise<string[]> {
  return (await messagesTo(db, recipient, kind)).map((message) => new URL(message.link!).searchParams.get('token')!);
}
