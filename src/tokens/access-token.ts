import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AppError } from '../http/problem';
import type { Clock } from '../clock';
import type { KeyStore } from './keys';
import { isUuid } from '../uuid';
import { isCanonicalCompactJws } from './compact-jws';

/** RFC 9068 media type of JWT access tokens; `typ` is checked so an ID token or other JWT is never taken for one. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';
/** Allowed clock difference between us and whoever made or checks a token. */
export const CLOCK_TOLERANCE_SECONDS = 30;

export interface AccessTokenClaims {
  iss: string;
  aud: string;
  sub: string;
  sid: string;
  jti: string;
  iat: number;
  exp: number;
  roles: string[];
}

export interface AccessTokenOptions {
  keys: KeyStore;
  issuer: string;
  audience: string;
  /** Seconds. */
  ttl: number;
  clock: Clock;
}

export interface AccessTokens {
  sign(subject: { userId: string; sessionId: string; roles: readonly string[] }): { token: string; expiresIn: number };
  /** Verifies a token; throws AppError TOKEN_INVALID or TOKEN_EXPIRED. */
  verify(token: string): AccessTokenClaims;
}

const invalid = () => new AppError('TOKEN_INVALID');
function isTypAccessToken(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === ACCESS_TOKEN_TYPE || lower === `application/${ACCESS_TOKEN_TYPE}`;
}

/** Signs and verifies RS256 access tokens; the only place that touches jsonwebtoken. */
export function createAccessTokens(options: AccessTokenOptions): AccessTokens {
  const { keys, issuer, audience, ttl, clock } = options;

  return {
    sign({ userId, sessionId, roles }) {
      const iat = Math.floor(clock().getTime() / 1000);
      const payload = { iss: issuer, aud: audience, sub: userId, sid: sessionId, jti: randomUUID(), iat, exp: iat + ttl, roles: [...roles] };
      const token = jwt.sign(payload, keys.signing.privateKey, {
        algorithm: 'RS256',
        header: { alg: 'RS256', typ: ACCESS_TOKEN_TYPE, kid: keys.signing.kid },
      });
      return { token, expiresIn: ttl };
    },

    verify(token) {
      // One spelling per token (see isCanonicalCompactJws), then the header before any crypto:
      // the algorithm is pinned, the type required, the key ours.
      if (!isCanonicalCompactJws(token)) throw invalid();
      const decoded = jwt.decode(token, { complete: true });
      if (!decoded || typeof decoded.payload === 'string') throw invalid();
      const { header } = decoded;
      if (header.alg !== 'RS256' || !isTypAccessToken(header.typ) || typeof header.kid !== 'string') throw invalid();
      const key = keys.published.get(header.kid);
      if (!key) throw invalid();

      let payload: jwt.JwtPayload;
      try {
        const verified = jwt.verify(token, key.publicKey, {
          algorithms: ['RS256'],
          issuer,
          audience,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          clockTimestamp: Math.floor(clock().getTime() / 1000),
        });
        if (typeof verified === 'string') throw invalid();
        payload = verified;
      } catch (error) {
        if (error instanceof jwt.TokenExpiredError) throw new AppError('TOKEN_EXPIRED');
        throw invalid();
      }

      // jsonwebtoken accepts a token without `exp`; we never do.
      const { sub, sid, jti, iat, exp, roles } = payload;
      if (typeof exp !== 'number' || typeof iat !== 'number') throw invalid();
      if (typeof sub !== 'string' || typeof sid !== 'string' || typeof jti !== 'string') throw invalid();
      if (!isUuid(sub) || !isUuid(sid)) throw invalid();
      if (!Array.isArray(roles) || !roles.every((r): r is string => typeof r === 'string')) throw invalid();
      return { iss: issuer, aud: audience, sub, sid, jti, iat, exp, roles };
    },
  };
}
