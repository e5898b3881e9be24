/**
 * `gatehouse/verify`: checks Gatehouse access tokens in another service, offline, against
 * the keys Gatehouse publishes at /.well-known/jwks.json (CONTRACT.md section 4).
 *
 * It ships to other services, so it depends on `jose` (the signature) at run time and on
 * Express's types only. Of the service it takes only dependency-free modules: the token rules
 * Gatehouse itself verifies with (tokens/claims.ts), the Bearer header parser, and the
 * problem catalogue, so a token and its refusal read the same here as at Gatehouse.
 */
import type { RequestHandler } from 'express';
import { compactVerify, errors } from 'jose';
import { PROBLEMS, type ProblemCode, problemType } from '../problems/catalogue';
import { parseBearer } from '../tokens/bearer';
import {
  ACCESS_TOKEN_ALGORITHM,
  type AccessTokenClaims,
  type AccessTokenFault,
  checkAccessTokenClaims,
  CLOCK_TOLERANCE_SECONDS,
  readAccessToken,
} from '../tokens/claims';
import { createJwksCache } from './jwks-cache';

/** The claims of a verified Gatehouse access token, as Gatehouse's own verifier returns them. */
export type { AccessTokenClaims };

export type VerifyErrorCode = 'TOKEN_MISSING' | AccessTokenFault;

/**
 * The token was refused. `code` is what a caller acts on (a client refreshes on
 * `TOKEN_EXPIRED`); `reason` says why, for logs, and is never sent to the caller.
 */
export class VerifyError extends Error {
  override readonly name = 'VerifyError';

  constructor(
    readonly code: VerifyErrorCode,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${reason}`, options);
  }
}

/**
 * The keys could not be fetched (Gatehouse unreachable, a timeout, a bad JWKS answer).
 * Not the token's fault: the middleware answers 503, never a 401 that would sign a user out.
 */
export class KeysUnavailableError extends Error {
  override readonly name = 'KeysUnavailableError';
}

export interface VerifierOptions {
  /** Gatehouse's `/.well-known/jwks.json`, e.g. `https://gatehouse.internal/.well-known/jwks.json`. */
  jwksUrl: string | URL;
  /** Gatehouse's `JWT_ISSUER`. */
  issuer: string;
  /** Gatehouse's `JWT_AUDIENCE`. */
  audience: string;
  /** Seconds of clock difference allowed on `exp`, `nbf` and `iat`: 0 to 30 (CONTRACT.md section 4); default 30, as Gatehouse allows itself. */
  clockTolerance?: number;
  /**
   * Seconds: the longest lifetime (`exp − iat`) a token may claim; set it to Gatehouse's
   * `ACCESS_TOKEN_TTL`. Default 900, the contract's default `ACCESS_TOKEN_TTL`.
   *
   * A token that claims more (beyond `clockTolerance`) is refused with `TOKEN_INVALID`, as
   * Gatehouse refuses it itself: Gatehouse never issues one, so it was minted by someone
   * else holding a key, or by a misconfigured issuer, and a stolen copy would stay good too
   * long. If Gatehouse's `ACCESS_TOKEN_TTL` is raised, raise this with it, or every token is
   * refused (the safe way to be wrong); lowering the TTL needs no change here.
   */
  maxTokenAge?: number;
  /**
   * Seconds after a fetch during which a token with an unknown `kid` does not trigger
   * another fetch (default 30): a flood of made-up kids costs Gatehouse one request per period.
   */
  cooldownSeconds?: number;
  /** Seconds the keys are used before they are fetched again anyway; default 300, Gatehouse's `max-age`. */
  cacheMaxAgeSeconds?: number;
  /** Seconds to wait for the JWKS; default 5. */
  timeoutSeconds?: number;
  /** The current time, for the token's times and the key cache's; defaults to the system clock. */
  clock?: () => Date;
}

export interface Verifier {
  /** Verifies a compact access token; rejects with {@link VerifyError} or {@link KeysUnavailableError}. */
  verify(token: string): Promise<AccessTokenClaims>;
  /**
   * Express middleware: takes the token from `Authorization: Bearer …`, puts its claims on
   * `res.locals.auth` and calls the next handler, or answers a problem+json 401
   * (`TOKEN_MISSING`, `TOKEN_INVALID`, `TOKEN_EXPIRED`) or 503 `UNAVAILABLE`.
   */
  middleware(): RequestHandler;
}

/** `Response<any, AuthLocals>` types `res.locals.auth` in a handler after the middleware. */
export interface AuthLocals extends Record<string, unknown> {
  auth: AccessTokenClaims;
}

/** The contract's default ACCESS_TOKEN_TTL (CONTRACT.md section 1), the default `maxTokenAge`. */
const DEFAULT_MAX_TOKEN_AGE_SECONDS = 900;

function seconds(name: string, value: number | undefined, fallback: number, max = Infinity): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
    throw new TypeError(`createVerifier: ${name} must be a number of seconds, at least 0${max < Infinity ? ` and at most ${max}` : ''}`);
  }
  return value;
}

function nonEmpty(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`createVerifier: ${name} must be a non-empty string`);
  return value;
}

/** jose's errors that mean "this token is no good"; anything else is about getting the keys. */
const TOKEN_FAULTS = [
  errors.JWSSignatureVerificationFailed,
  errors.JWSInvalid,
  errors.JOSEAlgNotAllowed,
  errors.JOSENotSupported,
  errors.JWKSNoMatchingKey,
  errors.JWKSMultipleMatchingKeys,
];

function toVerifyError(error: unknown): Error {
  if (error instanceof errors.JWKSNoMatchingKey) return new VerifyError('TOKEN_INVALID', 'no published key has this kid', { cause: error });
  if (TOKEN_FAULTS.some((fault) => error instanceof fault)) {
    return new VerifyError('TOKEN_INVALID', (error as Error).message, { cause: error });
  }
  return new KeysUnavailableError(`could not get Gatehouse's keys: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}

/**
 * Creates a verifier of Gatehouse access tokens. The JWKS is fetched on first use and
 * cached; a token signed by a key the cache does not know (after a key rotation) makes it
 * fetch again, at most once per `cooldownSeconds`, so a rotation needs no restart here.
 *
 * Bad options are a TypeError now, not a 401 later.
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = nonEmpty('issuer', options.issuer);
  const audience = nonEmpty('audience', options.audience);
  let url: URL;
  try {
    url = new URL(String(options.jwksUrl));
  } catch {
    throw new TypeError('createVerifier: jwksUrl must be an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('createVerifier: jwksUrl must be http(s)');
  const clockTolerance = seconds('clockTolerance', options.clockTolerance, CLOCK_TOLERANCE_SECONDS, CLOCK_TOLERANCE_SECONDS);
  const maxTokenAge = seconds('maxTokenAge', options.maxTokenAge, DEFAULT_MAX_TOKEN_AGE_SECONDS);
  // seconds() refuses negative and infinite values; a lifetime of 0 would refuse every token.
  if (maxTokenAge === 0) throw new TypeError('createVerifier: maxTokenAge must be more than 0 seconds');
  const clock = options.clock ?? (() => new Date());

  const keys = createJwksCache({
    url,
    clock,
    cooldownMs: seconds('cooldownSeconds', options.cooldownSeconds, 30) * 1000,
    maxAgeMs: seconds('cacheMaxAgeSeconds', options.cacheMaxAgeSeconds, 300) * 1000,
    timeoutMs: seconds('timeoutSeconds', options.timeoutSeconds, 5) * 1000,
  });

  async function verify(token: string): Promise<AccessTokenClaims> {
    if (typeof token !== 'string' || token === '') throw new VerifyError('TOKEN_MISSING', 'no token');

    // Spelling and header before any key is fetched (tokens/claims.ts): a token that cannot
    // be ours never costs a JWKS request (a made-up kid still may, once per cooldown).
    const read = readAccessToken(token);
    if (!read.ok) throw new VerifyError(read.code, read.reason);

    // jose checks the signature only (a JWS, not a JWT): the claim rules are the shared ones.
    try {
      await compactVerify(token, keys, { algorithms: [ACCESS_TOKEN_ALGORITHM] });
    } catch (error) {
      throw toVerifyError(error);
    }

    const checked = checkAccessTokenClaims(read.value.payload, { issuer, audience, now: clock(), clockTolerance, maxTokenAge });
    if (!checked.ok) throw new VerifyError(checked.code, checked.reason);
    return checked.value;
  }

  return {
    verify,
    middleware: () => requireAccessToken(verify),
  };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** How long a caller should wait when Gatehouse's keys could not be fetched. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

function requireAccessToken(verify: (token: string) => Promise<AccessTokenClaims>): RequestHandler {
  return async (req, res, next) => {
    // The same titles and `type` URIs Gatehouse answers with (one catalogue), so a client handles both alike.
    const answer = (code: VerifyErrorCode | Extract<ProblemCode, 'UNAVAILABLE'>, headers: Record<string, string>) => {
      const { status, title } = PROBLEMS[code];
      const incomingId = req.get('x-request-id');
      const body: Record<string, unknown> = {
        type: problemType(code),
        title,
        status,
        // Fixed and dull: why a token failed is for our logs (VerifyError.reason), not the caller.
        detail: title,
        code,
      };
      if (incomingId !== undefined && REQUEST_ID.test(incomingId)) body.requestId = incomingId;
      res.status(status).set(headers).type('application/problem+json').send(JSON.stringify(body));
    };

    // RFC 6750 section 3: name the scheme; say "invalid_token" when a token was sent.
    const bearer = parseBearer(req.get('authorization'));
    if (!bearer.ok) {
      return answer(bearer.code, { 'WWW-Authenticate': bearer.code === 'TOKEN_MISSING' ? 'Bearer' : 'Bearer error="invalid_token"' });
    }

    let claims: AccessTokenClaims;
    try {
      claims = await verify(bearer.token);
    } catch (error) {
      if (error instanceof VerifyError) return answer(error.code, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
      if (error instanceof KeysUnavailableError) return answer('UNAVAILABLE', { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) });
      return next(error);
    }
    res.locals.auth = claims;
    next();
  };
}
