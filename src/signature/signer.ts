/**
 * Gatehouse request signing (CONTRACT.md section 5), for servers and for clients.
 * Depends on node:crypto only, so a client can import `gatehouse/signer` without the service.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';

export const SIGNATURE_HEADERS = {
  clientId: 'x-client-id',
  timestamp: 'x-timestamp',
  nonce: 'x-nonce',
  signature: 'x-signature',
} as const;

export interface CanonicalRequest {
  /** HTTP method; upper-cased when signed. */
  method: string;
  /** Path and query exactly as sent on the request line, e.g. `/admin/users?limit=10`. */
  path: string;
  /** Unix seconds, as sent in X-Timestamp. */
  timestamp: string;
  nonce: string;
  /** The raw body bytes (or the string that will be sent as UTF-8); empty or absent for no body. */
  body?: Uint8Array | string | undefined;
}

/** Hex SHA-256 of the body bytes; of the empty string when there is no body. */
export function bodyHash(body: Uint8Array | string | undefined): string {
  return createHash('sha256')
    .update(body ?? '')
    .digest('hex');
}

/** The five lines that are signed, joined by `\n`, with no trailing newline. */
export function canonicalString(request: CanonicalRequest): string {
  return [request.method.toUpperCase(), request.path, request.timestamp, request.nonce, bodyHash(request.body)].join('\n');
}

/** `sha256=<lowercase hex HMAC-SHA256 of the canonical string>`. */
export function computeSignature(secret: string, request: CanonicalRequest): string {
  return 'sha256=' + createHmac('sha256', secret).update(canonicalString(request)).digest('hex');
}

export interface SignOptions {
  clientId: string;
  secret: string;
  method: string;
  path: string;
  body?: Uint8Array | string | undefined;
  /** Defaults to now. */
  timestamp?: number;
  /** Defaults to 24 random bytes, base64url (32 characters). */
  nonce?: string;
}

/** The four headers that sign one request. Send the body exactly as signed. */
export function signRequest(options: SignOptions): Record<'X-Client-Id' | 'X-Timestamp' | 'X-Nonce' | 'X-Signature', string> {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = options.nonce ?? randomBytes(24).toString('base64url');
  return {
    'X-Client-Id': options.clientId,
    'X-Timestamp': timestamp,
    'X-Nonce': nonce,
    'X-Signature': computeSignature(options.secret, { method: options.method, path: options.path, timestamp, nonce, body: options.body }),
  };
}
