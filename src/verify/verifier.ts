/**
 * `gatehouse/verify`: checks Gatehouse access tokens in another service, offline, against
 * the keys Gatehouse publishes at /.well-known/jwks.json (CONTRACT.md section 4).
 *
 * It ships to other services, so it depends on `jose` at run time and on Express's types
 * only; of the service, only the dependency-free token-spelling check.
 */
import type { RequestHandler } from 'express';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import { isCanonicalCompactJws } from '../tokens/compact-jws';

/** RFC 9068 media type of JWT access tokens: an ID token or any other JWT is never taken for one. */
const ACCESS_TOKEN_TYPE = 'at+jwt';
const ALGORITHM = 'RS256';

/** The claims of a verified Gatehouse access token. */
export interface AccessTokenClaims {
  iss: string;
  aud: string | string[];
  /** The user id. */
  sub: string;
  /** The session id. */
  sid: string;
  jti: string | undefined;
  iat: number | undefined;
  /** Unix seconds. */
  exp: number;
  /** The user's roles when the token was issued; a change shows in the next token. */
  roles: string[];
}

export type VerifyErrorCode = 'TOKEN_MISSING' | 'TOKEN_INVALID' | 'TOKEN_EXPIRED';

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
  /** Seconds of clock difference allowed on `exp`; default 30, as Gatehouse allows itself. */
  clockTolerance?: number;
  /**
   * Seconds after a fetch during which a token with an unknown `kid` does not trigger
   * another fetch (default 30): a flood of made-up kids costs Gatehouse one request per period.
   */
  cooldownSeconds?: number;
  /** Seconds the keys are used before they are fetched again anyway; default 300, Gatehouse's `max-age`. */
  cacheMaxAgeSeconds?: number;
  /** Seconds to wait for the JWKS; default 5. */
  timeoutSeconds?: number;
  /** The current time (tests); defaults to the system clock. */
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

function seconds(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`createVerifier: ${name} must be a number of seconds, at least 0`);
  }
  return value;
}

function nonEmpty(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`createVerifier: ${name} must be a non-empty string`);
  return value;
}

function isAccessTokenType(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === ACCESS_TOKEN_TYPE || lower === `application/${ACCESS_TOKEN_TYPE}`;
}

/** jose's errors that mean "this token is no good"; anything else is about getting the keys. */
const TOKEN_FAULTS = [
  errors.JWTClaimValidationFailed,
  errors.JWSSignatureVerificationFailed,
  errors.JWSInvalid,
  errors.JWTInvalid,
  errors.JOSEAlgNotAllowed,
  errors.JOSENotSupported,
  errors.JWKSNoMatchingKey,
  errors.JWKSMultipleMatchingKeys,
];

function toVerifyError(error: unknown): Error {
  // First: an expired token is the one claim failure a client fixes by refreshing.
  if (error instanceof errors.JWTExpired) return new VerifyError('TOKEN_EXPIRED', 'the token has expired', { cause: error });
  if (error instanceof errors.JWKSNoMatchingKey) return new VerifyError('TOKEN_INVALID', 'no published key has this kid', { cause: error });
  if (TOKEN_FAULTS.some((fault) => error instanceof fault)) {
    return new VerifyError('TOKEN_INVALID', (error as Error).message, { cause: error });
  }
  return new KeysUnavailableError(`could not get Gatehouse's keys: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}

function stringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function toClaims(payload: JWTPayload): AccessTokenClaims {
  const { iss, aud, sub, sid, jti, iat, exp, roles } = payload as JWTPayload & { sid?: unknown; roles?: unknown };
  // jose has checked iss, aud and exp against the options; these are Gatehouse's own claims.
  if (typeof sub !== 'string' || sub === '') throw new VerifyError('TOKEN_INVALID', 'sub is not a string');
  if (typeof sid !== 'string' || sid === '') throw new VerifyError('TOKEN_INVALID', 'sid is not a string');
  if (roles !== undefined && !stringArray(roles)) throw new VerifyError('TOKEN_INVALID', 'roles is not a list of strings');
  if (jti !== undefined && typeof jti !== 'string') throw new VerifyError('TOKEN_INVALID', 'jti is not a string');
  return { iss: iss!, aud: aud!, sub, sid, jti, iat, exp: exp!, roles: roles ?? [] };
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
  const clockTolerance = seconds('clockTolerance', options.clockTolerance, 30);
  const clock = options.clock ?? (() => new Date());

  const keys = createRemoteJWKSet(url, {
    cooldownDuration: seconds('cooldownSeconds', options.cooldownSeconds, 30) * 1000,
    cacheMaxAge: seconds('cacheMaxAgeSeconds', options.cacheMaxAgeSeconds, 300) * 1000,
    timeoutDuration: seconds('timeoutSeconds', options.timeoutSeconds, 5) * 1000,
  });

  async function verify(token: string): Promise<AccessTokenClaims> {
    if (typeof token !== 'string' || token === '') throw new VerifyError('TOKEN_MISSING', 'no token');

    if (!isCanonicalCompactJws(token)) throw new VerifyError('TOKEN_INVALID', 'not a canonical compact JWS');

    // The header decides before any key is fetched: a token that cannot be ours never
    // costs a JWKS request (a made-up kid still may, once per cooldown).
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch (error) {
      throw new VerifyError('TOKEN_INVALID', 'not a compact JWS', { cause: error });
    }
    if (header.alg !== ALGORITHM) throw new VerifyError('TOKEN_INVALID', `alg must be ${ALGORITHM}`);
    if (!isAccessTokenType(header.typ)) throw new VerifyError('TOKEN_INVALID', `typ must be ${ACCESS_TOKEN_TYPE}`);
    if (typeof header.kid !== 'string' || header.kid === '') throw new VerifyError('TOKEN_INVALID', 'kid is missing');

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: [ALGORITHM],
        typ: ACCESS_TOKEN_TYPE,
        issuer,
        audience,
        clockTolerance,
        currentDate: clock(),
        requiredClaims: ['exp', 'sub', 'sid'],
      }));
    } catch (error) {
      throw toVerifyError(error);
    }
    return toClaims(payload);
  }

  return {
    verify,
    middleware: () => requireAccessToken(verify),
  };
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)$/i;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The same titles and `type` URIs Gatehouse answers with, so a client handles both alike. */
const PROBLEMS = {
  TOKEN_MISSING: { status: 401, title: 'An access token is required' },
  TOKEN_INVALID: { status: 401, title: 'The access token is not valid' },
  TOKEN_EXPIRED: { status: 401, title: 'The access token has expired' },
  UNAVAILABLE: { status: 503, title: 'The service is temporarily unavailable' },
} as const;

/** How long a caller should wait when Gatehouse's keys could not be fetched. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

function requireAccessToken(verify: (token: string) => Promise<AccessTokenClaims>): RequestHandler {
  return async (req, res, next) => {
    const answer = (code: keyof typeof PROBLEMS, headers: Record<string, string>) => {
      const { status, title } = PROBLEMS[code];
      const incomingId = req.get('x-request-id');
      const body: Record<string, unknown> = {
        type: `urn:gatehouse:problem:${code.toLowerCase().replace(/_/g, '-')}`,
        title,
        status,
        // Fixed and dull: why a token failed is for our logs (VerifyError.reason), not the caller.
        detail: title,
        code,
      };
      if (incomingId !== undefined && REQUEST_ID.test(incomingId)) body.requestId = incomingId;
      res.status(status).set(headers).type('application/problem+json').send(JSON.stringify(body));
    };

    const header = req.get('authorization');
    // RFC 6750 section 3: name the scheme; say "invalid_token" when a token was sent.
    if (header === undefined || header.trim() === '') return answer('TOKEN_MISSING', { 'WWW-Authenticate': 'Bearer' });
    const match = BEARER.exec(header.trim());
    if (!match) return answer('TOKEN_INVALID', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });

    let claims: AccessTokenClaims;
    try {
      claims = await verify(match[1]!);
    } catch (error) {
      if (error instanceof VerifyError) return answer(error.code, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
      if (error instanceof KeysUnavailableError) return answer('UNAVAILABLE', { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) });
      return next(error);
    }
    res.locals.auth = claims;
    next();
  };
}
