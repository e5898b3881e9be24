import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AppError } from '../http/problem';
import type { Clock } from '../clock';
import {
  ACCESS_TOKEN_ALGORITHM,
  ACCESS_TOKEN_TYPE,
  type AccessTokenClaims,
  checkAccessTokenClaims,
  CLOCK_TOLERANCE_SECONDS,
  readAccessToken,
} from './claims';
import { asKeyRing, type KeyRing, type KeyStore } from './keys';

// The rules live in claims.ts, shared with gatehouse/verify; re-exported for this module's importers.
export { ACCESS_TOKEN_TYPE, CLOCK_TOLERANCE_SECONDS };
export type { AccessTokenClaims };

export interface AccessTokenOptions {
  /** The instance's key ring (re-read while it runs), or a fixed key set. */
  keys: KeyRing | KeyStore;
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

/** Signs and verifies RS256 access tokens; the only place that touches jsonwebtoken. */
export function createAccessTokens(options: AccessTokenOptions): AccessTokens {
  const { issuer, audience, ttl, clock } = options;
  const keys = asKeyRing(options.keys);

  return {
    sign({ userId, sessionId, roles }) {
      const now = clock();
      const iat = Math.floor(now.getTime() / 1000);
      // Per token: a key generated with an activation time starts signing at that instant.
      const signing = keys.signingKey(now);
      const payload = {
        iss: issuer,
        aud: audience,
        sub: userId,
        sid: sessionId,
        jti: randomUUID(),
        iat,
        exp: iat + ttl,
        roles: [...roles],
      };
      const token = jwt.sign(payload, signing.privateKey, {
        algorithm: ACCESS_TOKEN_ALGORITHM,
        header: { alg: ACCESS_TOKEN_ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid: signing.kid },
      });
      return { token, expiresIn: ttl };
    },

    verify(token) {
      // Spelling and header first (claims.ts): the algorithm pinned, the type required, the key ours.
      const read = readAccessToken(token);
      if (!read.ok) throw new AppError(read.code);
      // Every published key verifies, a pending one too: another instance may have read it first.
      const key = keys.current().published.get(read.value.kid);
      if (!key) throw invalid();

      // jsonwebtoken checks the signature only: every claim rule is claims.ts's, so the two
      // verifiers cannot drift apart on one of them (expiry and nbf included).
      try {
        jwt.verify(token, key.publicKey, { algorithms: [ACCESS_TOKEN_ALGORITHM], ignoreExpiration: true, ignoreNotBefore: true });
      } catch {
        // A jsonwebtoken error never travels further than tokens/.
        throw invalid();
      }

      const checked = checkAccessTokenClaims(read.value.payload, {
        issuer,
        audience,
        now: clock(),
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        // What this service issues (ACCESS_TOKEN_TTL); anything longer is not one of its tokens.
        maxTokenAge: ttl,
      });
      if (!checked.ok) throw new AppError(checked.code);
      return checked.value;
    },
  };
}
