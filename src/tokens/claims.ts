/**
 * What makes a Gatehouse access token acceptable (CONTRACT.md section 4), declared once.
 *
 * Both verifiers use it: the service's own (`createAccessTokens().verify`, jsonwebtoken checks
 * the signature) and the published `gatehouse/verify` (jose checks the signature). Each calls
 * {@link readAccessToken} before it looks for a key, {@link checkAccessTokenClaims} after the
 * signature verified, and maps a refusal to its own error type. The libraries are asked for the
 * signature only, so that no rule here is also, slightly differently, a library option.
 *
 * It ships inside `gatehouse/verify`: node built-ins only, nothing of the server.
 */
import { isUuid } from '../uuid';
import { isCanonicalCompactJws } from './compact-jws';

/** RFC 9068 media type of JWT access tokens: an ID token or any other JWT is never taken for one. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';
/** The one signing algorithm; the header never chooses it (the alg=none and HS256-with-the-public-key attacks). */
export const ACCESS_TOKEN_ALGORITHM = 'RS256';
/** The most clock difference any verifier allows between the issuer and itself, and the default. */
export const CLOCK_TOLERANCE_SECONDS = 30;

/** The claims of a verified access token. */
export interface AccessTokenClaims {
  /** The issuer the verifier expected. */
  iss: string;
  /** The audience the verifier expected (a token may name it among others). */
  aud: string;
  /** The user id (a UUID). */
  sub: string;
  /** The session id (a UUID). */
  sid: string;
  jti: string;
  /** Unix seconds. */
  iat: number;
  /** Unix seconds. */
  exp: number;
  /** The user's roles when the token was issued; a change shows in the next token. */
  roles: string[];
}

/** Why a token is refused: `TOKEN_EXPIRED` only for a token that is otherwise good, so a refresh can help. */
export type AccessTokenFault = 'TOKEN_INVALID' | 'TOKEN_EXPIRED';

/** A rule's verdict. `reason` is for logs and never for the caller (security failures stay dull). */
export type Checked<T> = { ok: true; value: T } | { ok: false; code: AccessTokenFault; reason: string };

/** A token whose spelling and header passed; its payload is not to be trusted until the signature verified. */
export interface UnverifiedAccessToken {
  /** The key the token says it was signed with. */
  kid: string;
  header: Readonly<Record<string, unknown>>;
  payload: Readonly<Record<string, unknown>>;
}

/** What the claims are checked against. */
export interface ClaimExpectations {
  issuer: string;
  audience: string;
  /** The verifier's clock. */
  now: Date;
  /** Seconds, 0 to {@link CLOCK_TOLERANCE_SECONDS}; default {@link CLOCK_TOLERANCE_SECONDS}. */
  clockTolerance?: number;
  /**
   * Seconds: the longest lifetime (`exp − iat`) a token may have, the issuer's ACCESS_TOKEN_TTL.
   * A token that claims more, beyond the clock tolerance, was not issued under that policy.
   * Required: every verifier says what it expects.
   */
  maxTokenAge: number;
}

const invalid = (reason: string): Checked<never> => ({ ok: false, code: 'TOKEN_INVALID', reason });

// fatal: a segment that is not UTF-8 is refused, not read with replacement characters.
const utf8 = new TextDecoder('utf-8', { fatal: true });

function jsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(utf8.decode(Buffer.from(segment, 'base64url')));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** RFC 9068 section 4: `at+jwt`, or its full media type; media types compare case-insensitively. */
function isAccessTokenType(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === ACCESS_TOKEN_TYPE || lower === `application/${ACCESS_TOKEN_TYPE}`;
}

/**
 * The checks made before any key is looked up, so a token that cannot be ours never costs a
 * JWKS request: one spelling per token (see {@link isCanonicalCompactJws}), a JSON header with
 * alg RS256, typ at+jwt and a kid, no critical extension, a JSON object as payload.
 */
export function readAccessToken(token: string): Checked<UnverifiedAccessToken> {
  if (typeof token !== 'string' || !isCanonicalCompactJws(token)) return invalid('not a canonical compact JWS');
  const [headerSegment, payloadSegment, signature] = token.split('.') as [string, string, string];
  const header = jsonObject(headerSegment);
  if (!header) return invalid('the header is not a JSON object');
  if (header.alg !== ACCESS_TOKEN_ALGORITHM) return invalid(`alg must be ${ACCESS_TOKEN_ALGORITHM}`);
  if (!isAccessTokenType(header.typ)) return invalid(`typ must be ${ACCESS_TOKEN_TYPE}`);
  if (typeof header.kid !== 'string' || header.kid === '') return invalid('kid is missing');
  // RFC 7515 section 4.1.11: an extension we do not understand must not be ignored, and we understand none.
  if (header.crit !== undefined) return invalid('crit is not supported');
  if (signature === '') return invalid('the signature is missing');
  const payload = jsonObject(payloadSegment);
  if (!payload) return invalid('the payload is not a JSON object');
  return { ok: true, value: { kid: header.kid, header, payload } };
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * The claims rules, applied to the payload of a token whose signature verified: iss and aud
 * as expected; sub and sid UUIDs (they reach database queries); jti, iat, exp and roles
 * present with their types; iat not in the future and `exp − iat` at most `maxTokenAge`,
 * nbf, if any, reached and exp not passed, all within the clock tolerance. Every other fault
 * is found before expiry, so `TOKEN_EXPIRED` is only said of a token that was good.
 *
 * A tolerance outside 0..{@link CLOCK_TOLERANCE_SECONDS}, or a `maxTokenAge` that is not a
 * positive number of seconds, is a caller bug: a TypeError.
 */
export function checkAccessTokenClaims(
  payload: Readonly<Record<string, unknown>>,
  expected: ClaimExpectations,
): Checked<AccessTokenClaims> {
  const tolerance = expected.clockTolerance ?? CLOCK_TOLERANCE_SECONDS;
  if (!(Number.isFinite(tolerance) && tolerance >= 0 && tolerance <= CLOCK_TOLERANCE_SECONDS)) {
    throw new TypeError(`clockTolerance must be 0 to ${CLOCK_TOLERANCE_SECONDS} seconds`);
  }
  const { maxTokenAge } = expected;
  if (!(typeof maxTokenAge === 'number' && Number.isFinite(maxTokenAge) && maxTokenAge > 0)) {
    throw new TypeError('maxTokenAge must be a positive number of seconds');
  }
  const now = Math.floor(expected.now.getTime() / 1000);
  const { iss, aud, sub, sid, jti, iat, exp, nbf, roles } = payload;

  if (iss !== expected.issuer) return invalid('iss is not the expected issuer');
  // RFC 7519 section 4.1.3: aud is one string or a list of them; ours must be among them.
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (!isStringList(audiences) || !audiences.includes(expected.audience)) return invalid('aud does not name the expected audience');
  if (typeof sub !== 'string' || !isUuid(sub)) return invalid('sub is not a UUID');
  if (typeof sid !== 'string' || !isUuid(sid)) return invalid('sid is not a UUID');
  if (typeof jti !== 'string' || jti === '') return invalid('jti is missing');
  if (!isNumericDate(iat)) return invalid('iat is not a number');
  if (!isNumericDate(exp)) return invalid('exp is not a number');
  if (nbf !== undefined && !isNumericDate(nbf)) return invalid('nbf is not a number');
  if (!isStringList(roles)) return invalid('roles is not a list of strings');
  // A token issued in the future was minted ahead of its use (a signing key in other hands, an
  // issuer's clock gone wrong); one that lasts longer than the issuer's TTL was not issued under
  // its policy. Either way a stolen copy would stay good for longer than any token should.
  if (iat > now + tolerance) return invalid('the token was issued in the future (iat)');
  if (exp - iat > maxTokenAge + tolerance) return invalid('the token lives longer than the maximum token age (exp - iat)');
  if (nbf !== undefined && nbf > now + tolerance) return invalid('the token is not valid yet (nbf)');
  // Expired at exp + tolerance itself, as jsonwebtoken and jose count it.
  if (now >= exp + tolerance) return { ok: false, code: 'TOKEN_EXPIRED', reason: 'the token has expired' };

  return { ok: true, value: { iss: expected.issuer, aud: expected.audience, sub, sid, jti, iat, exp, roles: [...roles] } };
}
