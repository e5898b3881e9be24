/**
 * The verifier's copy of Gatehouse's JWKS, timed by the verifier's clock: fetched on first
 * use, again once it is older than `maxAgeMs`, and again when a token names a kid it does not
 * hold (at most once per `cooldownMs` from the last request, answered or failed, so made-up
 * kids cost Gatehouse one request per period). After a failed request, verifications that need
 * keys fail with its error for a second rather than each sending another.
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

/**
 * After a failed fetch, how soon a verification may try again when it has no usable keys (none
 * yet, or older than `maxAgeMs`): meanwhile it fails with that fetch's error, without a request.
 * Short, so a blip costs a second of refusals; but a JWKS endpoint that answers errors quickly
 * is not hit once per verification.
 */
const RETRY_AFTER_FAILURE_MS = 1000;

export function createJwksCache(options: JwksCacheOptions): KeyResolver {
  const { url, clock, maxAgeMs, cooldownMs, timeoutMs } = options;
  let resolver: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  /** When the last request started, and how it failed (undefined: it succeeded, or is under way). */
  let attemptedAt = Number.NEGATIVE_INFINITY;
  let lastFailure: JwksFetchError | undefined;
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
    pending ??= (async () => {
      attemptedAt = clock().getTime();
      lastFailure = undefined;
      try {
        await fetchKeys();
      } catch (error) {
        lastFailure = error instanceof JwksFetchError ? error : new JwksFetchError(String(error), { cause: error });
        throw lastFailure;
      }
    })().finally(() => {
      pending = undefined;
    });
    return pending;
  }

  return async (header, token) => {
    if (!resolver || clock().getTime() - fetchedAt >= maxAgeMs) {
      // A fetch that just failed is not repeated for every token: that would turn a stream of
      // requests (made-up kids or not) into a stream of JWKS requests while Gatehouse struggles.
      if (lastFailure && !pending && clock().getTime() - attemptedAt < Math.min(RETRY_AFTER_FAILURE_MS, cooldownMs)) throw lastFailure;
      await refresh();
    }
    try {
      return await resolver!(header, token);
    } catch (error) {
      // An unknown kid after a rotation: the key may have been published since the last fetch.
      // At most one request per cooldown, counted from the last attempt, failed or not.
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (clock().getTime() - attemptedAt < cooldownMs) throw lastFailure ?? error;
      await refresh();
      return resolver!(header, token);
    }
  };
}
