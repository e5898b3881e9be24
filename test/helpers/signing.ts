import { randomBytes } from 'node:crypto';
import type { Express } from 'express';
import request from 'supertest';
import { computeSignature, signRequest } from '../../src/signature/signer';
import type { Harness } from './harness';

/** An HMAC client as listed in HMAC_CLIENTS. */
export interface SigningClient {
  id: string;
  secret: string;
}

export type SignatureHeader = 'X-Client-Id' | 'X-Timestamp' | 'X-Nonce' | 'X-Signature';

export const SIGNATURE_HEADER_NAMES: readonly SignatureHeader[] = ['X-Client-Id', 'X-Timestamp', 'X-Nonce', 'X-Signature'];

/** Two clients with secrets of the allowed length, for HMAC_CLIENTS; made per test run, never committed. */
export function testClients(): { ios: SigningClient; android: SigningClient; hmacClients: string } {
  const ios = { id: 'ios', secret: randomBytes(24).toString('base64url') };
  const android = { id: 'android', secret: randomBytes(24).toString('base64url') };
  return { ios, android, hmacClients: `${ios.id}:${ios.secret},${android.id}:${android.secret}` };
}

/** A fresh nonce of the allowed shape (32 characters of base64url). */
export function newNonce(): string {
  return randomBytes(24).toString('base64url');
}

export interface SignedRequestOptions {
  /** Serialised with JSON.stringify once; those exact bytes are signed and sent. */
  body?: unknown;
  /** Bytes to sign and send as they are (takes the place of `body`), e.g. a test vector's body. */
  rawBody?: string;
  /** Unix seconds; defaults to `now`. */
  timestamp?: number | string;
  /** The time the client believes it is; defaults to the real clock. */
  now?: Date;
  nonce?: string;
  /** Sent instead of the computed signature. */
  signature?: string;
  /** Sign these instead of what is sent: a request altered after signing. */
  signed?: { method?: string; path?: string; body?: string };
  /** Signature headers to leave out. */
  omit?: readonly SignatureHeader[];
  /** Further headers, e.g. Authorization. */
  headers?: Record<string, string>;
}

type Method = 'get' | 'post' | 'put' | 'delete' | 'patch';

/**
 * Sends a signed request through supertest: the body is serialised once, its exact bytes
 * are signed with the service's own signRequest and sent as application/json.
 */
export function sendSigned(
  app: Express,
  client: SigningClient,
  method: string,
  path: string,
  options: SignedRequestOptions = {},
): request.Test {
  const bytes = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const now = options.now ?? new Date();
  const timestamp = String(options.timestamp ?? Math.floor(now.getTime() / 1000));
  const toSign = {
    clientId: client.id,
    secret: client.secret,
    method: options.signed?.method ?? method,
    path: options.signed?.path ?? path,
    body: options.signed?.body ?? bytes,
    nonce: options.nonce ?? newNonce(),
  };
  // signRequest takes Unix seconds as a number; a malformed timestamp (a test of the
  // header's shape) is signed as the exact text sent, so the shape is its only fault.
  const headers: Record<string, string> =
    String(Number(timestamp)) === timestamp
      ? signRequest({ ...toSign, timestamp: Number(timestamp) })
      : {
          'X-Client-Id': toSign.clientId,
          'X-Timestamp': timestamp,
          'X-Nonce': toSign.nonce,
          'X-Signature': computeSignature(toSign.secret, { ...toSign, timestamp }),
        };
  if (options.signature !== undefined) headers['X-Signature'] = options.signature;
  for (const name of options.omit ?? []) delete headers[name];

  let req = request(app)[method.toLowerCase() as Method](path).set(headers);
  if (options.headers) req = req.set(options.headers);
  if (bytes !== undefined) req = req.set('Content-Type', 'application/json').send(bytes);
  return req;
}

/** sendSigned bound to a harness and a client, with the client's clock at the harness's time. */
export function signedAs(h: Pick<Harness, 'app' | 'clock'>, client: SigningClient) {
  return (method: string, path: string, options: SignedRequestOptions = {}): request.Test =>
    sendSigned(h.app, client, method, path, { now: h.clock.now(), ...options });
}
