import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MailSendError, type OutgoingMail } from '../../src/mail/transport';
import { createWebhookTransport, MAX_DISCARDED_BODY_BYTES } from '../../src/mail/webhook';

/*
 * Whatever answers at MAIL_WEBHOOK_URL (a misbehaving receiver, or whoever took its address)
 * decides its answer. The status is all the dispatcher needs: the body is read only up to a
 * small bound, then the connection is dropped, never buffered whole; and a redirect is never
 * followed, so the event (and the link in it) goes to MAIL_WEBHOOK_URL's host and nowhere else.
 */

function outgoing(): OutgoingMail {
  const now = new Date();
  return {
    id: '0b9f4c3e-2a47-4f7e-9a55-3c2f0d5f8a11',
    kind: 'password_reset',
    to: 'ada@example.com',
    link: 'https://app.example.test/reset?token=abc',
    expiresAt: new Date(now.getTime() + 60_000),
    createdAt: now,
    attempt: 1,
  };
}

const HUGE = 32 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

describe('the webhook answer body', () => {
  let server: Server;
  let url: string;
  let written = 0;
  let closed: Promise<void>;

  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        written = 0;
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        // As fast as the client reads it (backpressure), up to HUGE bytes.
        const pump = () => {
          while (written < HUGE && !res.destroyed) {
            written += CHUNK.length;
            if (!res.write(CHUNK)) return void res.once('drain', pump);
          }
          if (!res.destroyed) res.end();
        };
        pump();
      });
      closed = new Promise<void>((resolve) => res.on('close', () => resolve()));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('when the receiver answers 2xx with an endless body, then the send succeeds and the body is cut off, not read whole', async () => {
    const transport = createWebhookTransport({
      url,
      secret: randomBytes(32).toString('base64url'),
      productName: 'Acme',
      timeoutMs: 20_000,
    });
    await transport.send(outgoing());
    await closed;
    // What the client read plus what the sockets' buffers held when it hung up.
    expect(written).toBeGreaterThan(MAX_DISCARDED_BODY_BYTES);
    expect(written).toBeLessThan(HUGE / 2);
  });
});

describe('a webhook that redirects', () => {
  it('when the receiver answers 307 to another address, then the event is not sent there and the message is refused for good', async () => {
    let elsewhere = 0;
    const other = createServer((req, res) => {
      elsewhere += 1;
      req.resume();
      res.writeHead(200).end();
    });
    const redirecting = createServer((req, res) => {
      req.resume();
      const { port } = other.address() as AddressInfo;
      res.writeHead(307, { location: `http://127.0.0.1:${port}/steal` }).end();
    });
    await Promise.all([other, redirecting].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
    try {
      const url = `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}/hook`;
      const transport = createWebhookTransport({ url, secret: randomBytes(32).toString('base64url'), productName: 'Acme' });

      const outcome = await transport.send(outgoing()).then(
        () => undefined,
        (error: unknown) => error,
      );

      expect(outcome).toBeInstanceOf(MailSendError);
      expect(outcome).toMatchObject({ reason: 'webhook: HTTP 307', permanent: true });
      expect(elsewhere).toBe(0);
    } finally {
      await Promise.all([other, redirecting].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    }
  });
});
