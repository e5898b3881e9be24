import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Clock } from '../clock';
import type { Config } from '../config';
import { AppError } from '../http/problem';
import type { NonceStore } from './nonce-store';
import { computeSignature, SIGNATURE_HEADERS } from './signer';

export interface SignatureOptions {
  mode: Config['hmacMode'];
  clients: Config['hmacClients'];
  /** Seconds X-Timestamp may differ from our clock. */
  maxSkew: number;
  nonces: NonceStore;
  clock: Clock;
  /** Told why each refused request failed (for metrics); never the secret or signature. */
  onFailure?: (code: SignatureFailure) => void;
  /** Told each time the nonce store could not record a nonce and the request was refused (for metrics). */
  onStoreError?: () => void;
}

export type SignatureFailure = 'SIGNATURE_MISSING' | 'SIGNATURE_INVALID' | 'SIGNATURE_EXPIRED' | 'SIGNATURE_REPLAYED';

// Up to 16 digits, so that a timestamp in milliseconds (13) reaches the window check and is
// answered SIGNATURE_EXPIRED with a hint, not SIGNATURE_INVALID; still a safe integer's length.
const TIMESTAMP = /^\d{1,16}$/;
/**
 * 10^12 seconds is 33,658 AD; a timestamp that large is a clock read in milliseconds (or finer),
 * the usual first mistake (`Date.now()`, `System.currentTimeMillis()`).
 */
const MILLISECONDS_FROM = 1e12;
const SEND_SECONDS =
  'X-Timestamp must be Unix seconds; this one looks like milliseconds. Send whole seconds since 1970 (milliseconds / 1000, rounded down).';
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/**
 * Verifies the HMAC request signature of CONTRACT.md section 5. Checks, cheapest first:
 * all four headers, their shapes, a known client, the clock window, the HMAC (constant
 * time), and only then the nonce, so forged requests cannot fill the replay store.
 */
export function verifySignature(options: SignatureOptions): RequestHandler {
  const { mode, clients, maxSkew, nonces, clock } = options;
  // A nonce must be remembered as long as its timestamp can pass the window: up to maxSkew
  // ahead of our clock now, and valid until maxSkew after that. The window is inclusive and
  // our clock is floored to whole seconds, so one more second: at exactly 2 × maxSkew the
  // timestamp still passes, and the nonce must still be known.
  const nonceTtl = maxSkew * 2 + 1;

  const refuse = (code: SignatureFailure, detail?: string): AppError => {
    options.onFailure?.(code);
    return new AppError(code, { detail });
  };

  return async (req, _res, next) => {
    if (mode === 'off') return next();
    const clientId = req.get(SIGNATURE_HEADERS.clientId);
    const timestamp = req.get(SIGNATURE_HEADERS.timestamp);
    const nonce = req.get(SIGNATURE_HEADERS.nonce);
    const signature = req.get(SIGNATURE_HEADERS.signature);

    if (clientId === undefined && timestamp === undefined && nonce === undefined && signature === undefined) {
      if (mode === 'optional') return next();
      throw refuse('SIGNATURE_MISSING');
    }
    if (clientId === undefined || timestamp === undefined || nonce === undefined || signature === undefined) {
      throw refuse('SIGNATURE_MISSING');
    }
    if (!TIMESTAMP.test(timestamp) || !NONCE.test(nonce) || !SIGNATURE.test(signature)) throw refuse('SIGNATURE_INVALID');
    const secret = clients.get(clientId);
    if (secret === undefined) throw refuse('SIGNATURE_INVALID');

    const now = Math.floor(clock().getTime() / 1000);
    const sent = Number(timestamp);
    // Told only to a known client: a stranger learns nothing from its timestamp.
    if (Math.abs(now - sent) > maxSkew) throw refuse('SIGNATURE_EXPIRED', sent >= MILLISECONDS_FROM ? SEND_SECONDS : undefined);

    const expected = computeSignature(secret, {
      method: req.method,
      // originalUrl is the request line's target, untouched by routers mounted on a path.
      path: req.originalUrl,
      timestamp,
      nonce,
      body: req.rawBody,
    });
    // timingSafeEqual: === leaks how many leading bytes matched. Both are 71 ASCII bytes here.
    if (!timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) throw refuse('SIGNATURE_INVALID');

    let fresh: boolean;
    try {
      fresh = await nonces.remember(clientId, nonce, nonceTtl);
    } catch (error) {
      // The request is refused (503) either way; counted, since every signed route fails with it.
      options.onStoreError?.();
      throw error;
    }
    if (!fresh) throw refuse('SIGNATURE_REPLAYED');
    next();
  };
}
