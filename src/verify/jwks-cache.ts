/**
 * The verifier's copy of Gatehouse's JWKS, timed by the verifier's clock: fetched on first
 * use, again once it is older than `maxAgeMs`, and again when a token names a kid it does not
 * hold (at most once per `cooldownMs`, so made-up kids cost Gatehouse one request per period).
 *
 * jose's createRemoteJWKSet does the same on the system clock; this one follows the injected
 * clock, so a verifier's expiry checks and its key cache agree on what time it is (and a test
 * that moves the clock through a key rotation moves the cache with it).
 */
import { createLocalJWKSet, errors, type JSONWebKeySet } from 'jose';

export interface JwksCacheOptions {
  url: URL;
  clock: () => Date;
  maxAgeMs: number;
  cooldownMs: number;
  timeoutMs: number;
}

/** A key resolver for jose's compactVerify. */
export type KeyResolver = ReturnType<typeof createLocalJWKSet>;

/** The JWKS answer could not be used: Gatehouse's side, never the token's fault. */
export class JwksFetchError extends Error {
  override readonly name = 'JwksFetchError';
}

function isKeySet(value: unknown): value is JSONWebKeySet {
  return typeof value === 'object' && value !== null && Array.isArray((value as { keys?: unknown }).keys);
}

export function createJwksCache(options: JwksCacheOptions): KeyResolver {
  const { url, clock, maxAgeMs, cooldownMs, timeoutMs } = options;
  let resolver: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let pending: Promise<void> | undefined;

  async function fetchKeys(): Promise<void> {
    let response: Response;
    try {
      response = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    } catch (error) {
      throw new JwksFetchError(`the JWKS request failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new JwksFetchError(`the JWKS answered ${response.status}`);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new JwksFetchError('the JWKS answer is not JSON');
    }
    if (!isKeySet(body)) throw new JwksFetchError('the JWKS answer has no "keys" array');
    resolver = createLocalJWKSet(body);
    fetchedAt = clock().getTime();
  }

  /** One request at a time: concurrent verifications wait for the same answer. */
  function refresh(): Promise<void> {
    pending ??= fetchKeys().finally(() => {
      pending = undefined;
    });
    return pending;
  }

  return async (header, token) => {
    if (!resolver || clock().getTime() - fetchedAt >= maxAgeMs) await refresh();
    try {
      return await resolver!(header, token);
    } catch (error) {
      // An unknown kid after a rotation: the key may have been published since the last fetch.
      if (!(error instanceof errors.JWKSNoMatchingKey) || clock().getTime() - fetchedAt < cooldownMs) throw error;
      await refresh();
      return resolver!(header, token);
    }
  };
}
