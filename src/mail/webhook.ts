import { type Clock, systemClock } from '../clock';
import { signRequest } from '../signature/signer';
import { MailSendError, type MailTransport, type OutgoingMail } from './transport';

/** The client id the webhook's requests are signed as (`X-Client-Id`). */
export const WEBHOOK_CLIENT_ID = 'gatehouse';

/** The JSON body of one webhook event. */
export interface MailEvent {
  /** The message's kind. */
  type: OutgoingMail['kind'];
  /** The outbox id: the same on every attempt; a receiver drops an id it has already handled. */
  id: string;
  to: string;
  link: string;
  /** ISO 8601 UTC. */
  expiresAt: string;
  /** ISO 8601 UTC: when the message was queued. */
  createdAt: string;
  productName: string;
  /** 1 on the first attempt. */
  attempt: number;
}

export interface WebhookTransportOptions {
  /** MAIL_WEBHOOK_URL. */
  url: string;
  /** MAIL_WEBHOOK_SECRET. */
  secret: string;
  productName: string;
  /** Bound on the whole request, answer included; 10 s by default. */
  timeoutMs?: number;
  /** For X-Timestamp: the receiver compares it with its own clock. */
  clock?: Clock;
}

/** The most of a webhook answer's body read (and thrown away) before the answer is cut off. */
export const MAX_DISCARDED_BODY_BYTES = 64 * 1024;

/** Reads and drops up to `limit` bytes of a body, then cancels the rest (closing the connection). */
async function discardBody(response: Response, limit: number): Promise<void> {
  const reader: ReadableStreamDefaultReader<Uint8Array> | undefined = response.body?.getReader();
  if (!reader) return;
  let read = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
      if (read > limit) break;
    }
  } catch {
    return; // The timeout, or the receiver closing: the status is what counts.
  }
  await reader.cancel().catch(() => undefined);
}

/**
 * Statuses worth another try: the receiver is busy or failed on its side (5xx), timed out
 * (408) or asks us to slow down (429). Any other answer that is not 2xx (a redirect, 4xx) says
 * the receiver refuses this event as it is: sending it again would get the same answer.
 */
function isRetryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/**
 * POSTs each message as a JSON event to MAIL_WEBHOOK_URL, signed with MAIL_WEBHOOK_SECRET in
 * the scheme apps sign their requests to Gatehouse with (CONTRACT.md section 5): the receiver
 * checks it with `gatehouse/signer`. A 2xx answer is delivery; redirects are not followed.
 */
export function createWebhookTransport(options: WebhookTransportOptions): MailTransport {
  const url = new URL(options.url);
  // The path and query exactly as fetch sends them on the request line.
  const signedPath = `${url.pathname}${url.search}`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const clock = options.clock ?? systemClock;
  return {
    name: 'webhook',
    async send(mail: OutgoingMail): Promise<void> {
      const event: MailEvent = {
        type: mail.kind,
        id: mail.id,
        to: mail.to,
        link: mail.link,
        expiresAt: mail.expiresAt.toISOString(),
        createdAt: mail.createdAt.toISOString(),
        productName: options.productName,
        attempt: mail.attempt,
      };
      const body = JSON.stringify(event);
      const headers = signRequest({
        clientId: WEBHOOK_CLIENT_ID,
        secret: options.secret,
        method: 'POST',
        path: signedPath,
        body,
        timestamp: Math.floor(clock().getTime() / 1000),
      });
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers: { ...headers, 'Content-Type': 'application/json', 'X-Gatehouse-Event': mail.kind, 'X-Gatehouse-Event-Id': mail.id },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        const name = error instanceof Error ? error.name : 'Error';
        const cause = (error as { cause?: { code?: unknown } }).cause?.code;
        const reason = name === 'TimeoutError' ? 'timeout' : typeof cause === 'string' ? cause : name;
        throw new MailSendError(`webhook: ${reason}`, false);
      }
      // The answer's body is not needed: a short one is read away so the connection can be
      // reused; anything longer is cut off, so a receiver (or whatever answers at its address)
      // cannot make us buffer an endless answer for the length of the timeout.
      await discardBody(response, MAX_DISCARDED_BODY_BYTES);
      if (response.status >= 200 && response.status < 300) return;
      throw new MailSendError(`webhook: HTTP ${response.status}`, !isRetryable(response.status));
    },
    close: () => Promise.resolve(),
  };
}
