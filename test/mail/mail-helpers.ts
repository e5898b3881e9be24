import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { DB } from '../../src/db/database';
import type { MailKind } from '../../src/db/schema';
import { createLogger, type Logger } from '../../src/logger';
import { enqueueMail } from '../../src/mail/outbox.repository';
import { computeSignature } from '../../src/signature/signer';
import { uniqueEmail } from '../helpers/factories';

// --- A real SMTP server on loopback --------------------------------------------------------

export interface ReceivedMail {
  envelopeTo: string[];
  parsed: ParsedMail;
  raw: string;
}

export interface SmtpReceiver {
  /** `smtp://127.0.0.1:<port>` */
  url: string;
  port: number;
  received: ReceivedMail[];
  /** The next `count` messages are refused at DATA with `code` (e.g. 451 retry later, 550 refused). */
  refuseNext(count: number, code: number): void;
  close(): Promise<void>;
}

/**
 * smtp-server listening on 127.0.0.1 (no TLS, no auth, as a local relay), parsing every
 * message it accepts with mailparser. `port` 0 picks a free one; a port given again restarts
 * a receiver where a stopped one was.
 */
export async function startSmtpReceiver(port = 0): Promise<SmtpReceiver> {
  const received: ReceivedMail[] = [];
  let refusals: { count: number; code: number } = { count: 0, code: 0 };
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    closeTimeout: 100,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (refusals.count > 0) {
          refusals = { count: refusals.count - 1, code: refusals.code };
          const error = new Error('refused by the test') as Error & { responseCode: number };
          error.responseCode = refusals.code;
          callback(error);
          return;
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        simpleParser(raw).then(
          (parsed) => {
            received.push({ envelopeTo: session.envelope.rcptTo.map((r) => r.address), parsed, raw });
            callback();
          },
          (error: Error) => callback(error),
        );
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  server.on('error', () => undefined);
  const actual = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${actual}`,
    port: actual,
    received,
    refuseNext(count, code) {
      refusals = { count, code };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// --- A real HTTP receiver for the webhook ----------------------------------------------------

export interface WebhookDelivery {
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  /** Whether X-Signature matched, checked as a receiver would with gatehouse/signer. */
  signatureValid: boolean;
  status: number;
}

export interface WebhookReceiver {
  url: string;
  deliveries: WebhookDelivery[];
  /** Event ids handled once each, as a receiver dropping duplicates keeps them. */
  handledIds: Set<string>;
  /** The next `count` requests are answered `status` (500: retry; 400: refused). */
  answerNext(count: number, status: number): void;
  close(): Promise<void>;
}

/**
 * The mail service's side: checks the section 5 signature with gatehouse/signer's
 * computeSignature (constant-time compare, timestamp within 300 s), answers 401 to a bad one,
 * and drops an event id it has already handled (answering 200: at-least-once delivery).
 */
export async function startWebhookReceiver(secret: string, clientId = 'gatehouse'): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  const handledIds = new Set<string>();
  let answers = { count: 0, status: 200 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const header = (name: string) => String(req.headers[name] ?? '');
      const expected = computeSignature(secret, {
        method: req.method ?? '',
        path: req.url ?? '',
        timestamp: header('x-timestamp'),
        nonce: header('x-nonce'),
        body: raw,
      });
      const given = Buffer.from(header('x-signature'));
      const signatureValid =
        header('x-client-id') === clientId &&
        given.length === Buffer.byteLength(expected) &&
        timingSafeEqual(given, Buffer.from(expected)) &&
        Math.abs(Date.now() / 1000 - Number(header('x-timestamp'))) <= 300;
      let status = 200;
      if (!signatureValid) status = 401;
      else if (answers.count > 0) {
        answers = { count: answers.count - 1, status: answers.status };
        status = answers.status;
      }
      const body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      if (status === 200) handledIds.add(String(body.id));
      deliveries.push({ headers: req.headers, body, signatureValid, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/mail?source=gatehouse`,
    deliveries,
    handledIds,
    answerNext(count, status) {
      answers = { count, status };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// --- Outbox rows and logs ----------------------------------------------------------------------

/** A user row of its own (the outbox row references one) and its address. */
export async function insertRecipient(db: DB, now: Date): Promise<{ id: string; email: string }> {
  const email = uniqueEmail('mail');
  const row = await db
    .insertInto('users')
    .values({ email, password_hash: '$2b$04$notarealhashnotarealhashnotarealhashnotarealhas', created_at: now, updated_at: now })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, email };
}

export interface QueuedMail {
  id: string;
  to: string;
  link: string;
  token: string;
}

/** Queues a message as the recovery flows do: committed in a transaction of its own. */
export async function queueMail(
  db: DB,
  now: Date,
  options: { kind?: MailKind; ttlSeconds?: number; to?: { id: string; email: string } } = {},
): Promise<QueuedMail> {
  const recipient = options.to ?? (await insertRecipient(db, now));
  const token = createHash('sha256').update(randomUUID()).digest('base64url');
  const link = `https://app.example.test/reset?token=${token}`;
  const id = await db.transaction().execute((trx) =>
    enqueueMail(
      trx,
      {
        kind: options.kind ?? 'password_reset',
        recipient: recipient.email,
        userId: recipient.id,
        link,
        expiresAt: new Date(now.getTime() + (options.ttlSeconds ?? 1800) * 1000),
      },
      now,
    ),
  );
  return { id, to: recipient.email, link, token };
}

export async function outboxRow(db: DB, id: string) {
  return db.selectFrom('mail_outbox').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/**
 * Ends every message still pending (marks it failed): the rows a test leaves behind on a
 * shared database must not be delivered by the next test's dispatcher.
 */
export async function settleOutbox(db: DB): Promise<void> {
  await db
    .updateTable('mail_outbox')
    .set({ failed_at: new Date(), link: null, last_error: 'test cleanup' })
    .where('sent_at', 'is', null)
    .where('failed_at', 'is', null)
    .execute();
}

/** A logger at debug level whose JSON lines the test reads. */
export function capturedLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger('debug', destination), lines };
}
