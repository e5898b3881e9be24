import type { MailKind } from '../db/schema';

/** One message as the dispatcher hands it to a transport. */
export interface OutgoingMail {
  /** The outbox row's id: the same on every attempt, so a receiver can drop duplicates. */
  id: string;
  kind: MailKind;
  to: string;
  /** The link with the token. Transports send it and never log it. */
  link: string;
  expiresAt: Date;
  createdAt: Date;
  /** 1 on the first attempt. */
  attempt: number;
}

/** Where messages leave Gatehouse: the webhook or SMTP. */
export interface MailTransport {
  /** `webhook` or `smtp`, for logs. */
  readonly name: string;
  /** Resolves once the message is accepted; rejects with a {@link MailSendError} otherwise. */
  send(mail: OutgoingMail): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
}

/**
 * A delivery that did not happen. `reason` is short and safe to log and store (a status, an
 * error code): never the link, never a server's free text that might quote the message.
 * `permanent`: the receiver refused this message, and sending it again would get the same answer.
 */
export class MailSendError extends Error {
  override readonly name = 'MailSendError';
  constructor(
    readonly reason: string,
    readonly permanent: boolean,
  ) {
    super(reason);
  }
}

/** A short, link-free description of any error a transport let through. */
export function sendFailure(error: unknown): MailSendError {
  if (error instanceof MailSendError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const name = error instanceof Error ? error.name : 'Error';
  return new MailSendError(typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : name, false);
}
