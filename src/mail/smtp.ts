import nodemailer from 'nodemailer';
import { type MailTemplates, renderMail } from './templates';
import { MailSendError, type MailTransport, type OutgoingMail } from './transport';

export interface SmtpTransportOptions {
  /** `smtp://user:pass@host:587` or `smtps://user:pass@host:465` (SMTP_URL). */
  smtpUrl: string;
  /** MAIL_FROM. */
  from: string;
  productName: string;
  templates: MailTemplates;
  /** Bound on connecting, on the greeting and on each socket inactivity; 10 s by default. */
  timeoutMs?: number;
}

/**
 * nodemailer's error codes for which the server refused this very message (its sender,
 * recipients or content): with a 5xx reply, trying it again gets the same answer.
 */
const MESSAGE_REFUSED_CODES = new Set(['EENVELOPE', 'EMESSAGE']);

/** Sends each message through SMTP_URL with nodemailer: a plain-text and an HTML body from the templates. */
export function createSmtpTransport(options: SmtpTransportOptions): MailTransport {
  const timeout = options.timeoutMs ?? 10_000;
  const transporter = nodemailer.createTransport({
    url: options.smtpUrl,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    // nodemailer's own log would print the message, link included: never on.
    logger: false,
    debug: false,
  });
  return {
    name: 'smtp',
    async send(mail: OutgoingMail): Promise<void> {
      const minutes = Math.max(0, Math.round((mail.expiresAt.getTime() - mail.createdAt.getTime()) / 60_000));
      const rendered = renderMail(options.templates[mail.kind], {
        productName: options.productName,
        link: mail.link,
        to: mail.to,
        expiresAt: mail.expiresAt.toISOString(),
        expiresInMinutes: String(minutes),
      });
      try {
        await transporter.sendMail({
          from: options.from,
          to: mail.to,
          subject: rendered.subject,
          text: rendered.text,
          html: rendered.html,
          // The outbox id: the same on every attempt, so a duplicate can be recognised downstream.
          messageId: `<${mail.id}@gatehouse>`,
          headers: { 'X-Gatehouse-Message-Id': mail.id, 'X-Gatehouse-Kind': mail.kind },
        });
      } catch (error) {
        const { code, responseCode } = error as { code?: unknown; responseCode?: unknown };
        const reason = [typeof code === 'string' ? code : 'smtp error', typeof responseCode === 'number' ? responseCode : undefined]
          .filter((part) => part !== undefined)
          .join(' ');
        const permanent =
          typeof code === 'string' && MESSAGE_REFUSED_CODES.has(code) && typeof responseCode === 'number' && responseCode >= 500;
        // The server's reply text is left out: it may quote the message.
        throw new MailSendError(`smtp: ${reason}`, permanent);
      }
    },
    close(): Promise<void> {
      transporter.close();
      return Promise.resolve();
    },
  };
}
