import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import { recordEvent } from '../audit/audit.repository';
import { addSeconds, type Clock, secondsUntil } from '../clock';
import type { Config } from '../config';
import { type DB, uniqueViolation } from '../db/database';
import type { Database, MailKind } from '../db/schema';
import { AppError } from '../http/problem';
import type { RequestContext } from '../http/request-context';
import type { PasswordHasher } from '../passwords/password-hasher';
import { normalizePassword } from '../passwords/password-normalization';
import { checkPasswordPolicy } from '../passwords/password-policy';
import { DEFAULT_ROLE } from '../roles/roles.repository';
import { findSessionWithUser, insertSession, revokeSession, revokeUserSessions, touchSession } from '../sessions/session.repository';
import type { AccessTokens } from '../tokens/access-token';
import { findUserByEmail, findUserById, insertUser, normalizeEmail, toUserView } from '../users/user.repository';
import type { authResultView, tokenPairView } from './auth.schemas';
import { addressKey, clearFailures, countFailure, EVERY_ADDRESS, findLock, recordLoginSuccess } from './login-failures.repository';
import { hashRefreshToken, isWellFormedRefreshToken, newRefreshToken, openSuccessor, sealSuccessor } from './refresh-token.crypto';
import {
  findTokenWithSession,
  insertRefreshToken,
  lockRefreshToken,
  lockRefreshTokenState,
  markRotated,
  rotateLiveToken,
} from './refresh-token.repository';

export interface AuthServiceDeps {
  db: DB;
  config: Pick<
    Config,
    | 'accessTokenTtl'
    | 'refreshTokenTtl'
    | 'sessionMaxAge'
    | 'refreshReuseGrace'
    | 'passwordMinLength'
    | 'loginMaxFailures'
    | 'lockoutDuration'
    | 'accountMaxFailures'
    | 'requireVerifiedEmail'
  >;
  hasher: PasswordHasher;
  accessTokens: AccessTokens;
  clock: Clock;
  /** Told, after the commit, of what operators count: lockouts and refresh-token reuse. */
  events?: AuthEvents;
  /**
   * Writes the new account's email-verification message in the registration's transaction
   * (recovery/, wired by app.ts: sign-in does not know how messages are made).
   */
  onRegister?: ((trx: Kysely<Database>, user: { id: string; email: string }, at: Date) => Promise<MailKind>) | undefined;
  /** Told after a commit that queued a message (the registration's), of its kind: counts it and wakes the mail dispatcher. */
  onMailQueued?: ((kind: MailKind) => void) | undefined;
}

export interface AuthEvents {
  accountLocked(): void;
  refreshTokenReused(): void;
}

/** What one `auth.failed` event says of the failure: why, and where it came from. */
type FailureData = { reason: 'unknown_email' | 'wrong_password' } | { reason: 'wrong_current_password'; sessionId: string };

/** A lock a failure set: on one email from one address, or from every address (ACCOUNT_MAX_FAILURES). */
interface NewLock {
  scope: 'address' | 'account';
  failures: number;
  lockedUntil: Date;
}

export type TokenPair = z.infer<typeof tokenPairView>;

export type AuthResult = z.infer<typeof authResultView>;

/** Register, login, refresh and logout: the flows of CONTRACT.md sections 3 and 4. */
export function createAuthService(deps: AuthServiceDeps) {
  const { db, config, hasher, accessTokens, clock, events, onRegister, onMailQueued } = deps;

  /** Opens a session with its first refresh token; runs inside the caller's transaction. */
  async function startSession(trx: Kysely<Database>, userId: string, roles: string[], context: RequestContext, at: Date) {
    const session = await insertSession(trx, { userId, context, at, expiresAt: addSeconds(at, config.sessionMaxAge) });
    const refreshToken = newRefreshToken();
    await insertRefreshToken(trx, {
      sessionId: session.id,
      tokenHash: hashRefreshToken(refreshToken),
      at,
      expiresAt: refreshExpiry(at, session.expires_at),
    });
    return { sessionId: session.id, tokens: issueTokens(userId, session.id, roles, refreshToken) };
  }

  /** Sliding refresh lifetime, never past the session's absolute end. */
  function refreshExpiry(at: Date, sessionExpiresAt: Date): Date {
    const sliding = addSeconds(at, config.refreshTokenTtl);
    return sliding < sessionExpiresAt ? sliding : sessionExpiresAt;
  }

  function issueTokens(userId: string, sessionId: string, roles: string[], refreshToken: string): TokenPair {
    const { token, expiresIn } = accessTokens.sign({ userId, sessionId, roles });
    return { accessToken: token, refreshToken, tokenType: 'Bearer', expiresIn };
  }

  /**
   * The common case of a refresh, in two round trips: read the token with its session, and if
   * all is live, rotate it in one statement (refresh-token.repository.ts). Undefined when the
   * token is not plainly live, or stopped being so before the statement locked it.
   */
  async function rotateIfLive(refreshToken: string, tokenHash: string, context: RequestContext, at: Date) {
    const found = await findTokenWithSession(db, tokenHash);
    if (!found || found.rotatedAt !== null || at >= found.expiresAt) return undefined;
    if (!found.isActive || found.sessionRevokedAt !== null || at >= found.sessionExpiresAt) return undefined;
    const successor = newRefreshToken();
    const successorId = randomUUID();
    const rotated = await rotateLiveToken(db, {
      id: found.id,
      at,
      successorId,
      successorHash: hashRefreshToken(successor),
      successorBox: sealSuccessor(refreshToken, found.id, successor),
      successorExpiresAt: refreshExpiry(at, found.sessionExpiresAt),
      userId: found.userId,
      context,
      data: JSON.stringify({ sessionId: found.sessionId }),
    });
    return rotated ? { refreshToken: successor, userId: found.userId, sessionId: found.sessionId, roles: found.roles } : undefined;
  }

  /**
   * Whether a rotated token is still honoured as an idempotent retry (CONTRACT.md section 4):
   * rotated within REFRESH_REUSE_GRACE, its successor not used since. Locks the successor's
   * row, so a concurrent rotation of the successor waits for this transaction.
   */
  async function honouredAsRetry(
    trx: Kysely<Database>,
    row: { rotated_at: Date | null; successor_id: string | null },
    at: Date,
  ): Promise<boolean> {
    if (config.refreshReuseGrace <= 0 || row.rotated_at === null || row.successor_id === null) return false;
    if (at.getTime() - row.rotated_at.getTime() > config.refreshReuseGrace * 1000) return false;
    const next = await lockRefreshTokenState(trx, row.successor_id);
    return next !== undefined && next.rotated_at === null;
  }

  function lockedError(lockedUntil: Date, now: Date): AppError {
    return new AppError('ACCOUNT_LOCKED', { retryAfter: secondsUntil(lockedUntil, now) });
  }

  /** The counters that can lock `email` for a caller at `ip`: its own, and (when on) the one of every address. */
  function lockingCounters(ip: string): string[] {
    return config.accountMaxFailures > 0 ? [ip, EVERY_ADDRESS] : [ip];
  }

  /**
   * Refuses a sign-in of `email` from this address while a lock holds on it (CONTRACT.md
   * section 7), whatever the password, and before any bcrypt work. It depends on the email
   * and address alone, never on whether the account exists.
   */
  async function refuseIfLocked(email: string, context: RequestContext): Promise<void> {
    const now = clock();
    const lockedUntil = await findLock(db, email, lockingCounters(addressKey(context.ip)), now);
    if (lockedUntil) throw lockedError(lockedUntil, now);
  }

  /**
   * A failed sign-in of `email` (an unknown email, a wrong password, a wrong current password):
   * counted for this address and, with ACCOUNT_MAX_FAILURES, for every address; audited as
   * `auth.failed`, and as `user.locked` for each lock it sets, in one transaction. Answers
   * 423 once a lock holds, else 401: the same for emails with and without an account.
   */
  async function failSignIn(email: string, userId: string | null, data: FailureData, context: RequestContext): Promise<never> {
    const at = clock();
    const ip = addressKey(context.ip);
    const common = { now: at, lockUntil: addSeconds(at, config.lockoutDuration), forgetBefore: addSeconds(at, -config.lockoutDuration) };
    const locks = await db.transaction().execute(async (trx): Promise<NewLock[] | 'already locked'> => {
      await recordEvent(trx, { type: 'auth.failed', userId, context, data, at });
      const here = await countFailure(trx, { email, ip }, { ...common, maxFailures: config.loginMaxFailures, measure: 'consecutive' });
      // Undefined: a parallel failure locked the counter after refuseIfLocked looked; nothing more is counted.
      if (!here) return 'already locked';
      const everywhere =
        config.accountMaxFailures > 0
          ? await countFailure(trx, { email, ip: EVERY_ADDRESS }, { ...common, maxFailures: config.accountMaxFailures, measure: 'window' })
          : { failures: 0, lockedUntil: null };
      if (!everywhere) return 'already locked';

      const set: NewLock[] = [];
      if (here.lockedUntil) set.push({ scope: 'address', failures: here.failures, lockedUntil: here.lockedUntil });
      if (everywhere.lockedUntil) set.push({ scope: 'account', failures: everywhere.failures, lockedUntil: everywhere.lockedUntil });
      for (const lock of set) {
        await recordEvent(trx, {
          type: 'user.locked',
          userId,
          context,
          data: { scope: lock.scope, failures: lock.failures, lockedUntil: lock.lockedUntil.toISOString() },
          at,
        });
      }
      return set;
    });

    if (locks === 'already locked') {
      const lockedUntil = await findLock(db, email, lockingCounters(ip), at);
      if (lockedUntil) throw lockedError(lockedUntil, at);
    } else if (locks.length > 0) {
      for (let i = 0; i < locks.length; i += 1) events?.accountLocked();
      throw lockedError(new Date(Math.max(...locks.map((lock) => lock.lockedUntil.getTime()))), at);
    }
    throw new AppError('INVALID_CREDENTIALS');
  }

  return {
    async register(
      input: { email: string; password: string; username?: string | null | undefined },
      context: RequestContext,
    ): Promise<AuthResult> {
      const email = normalizeEmail(input.email);
      const username = input.username ?? null;
      const weaknesses = checkPasswordPolicy(input.password, config.passwordMinLength, { email, username });
      if (weaknesses.length > 0) throw new AppError('WEAK_PASSWORD', { errors: weaknesses });

      const passwordHash = await hasher.hash(input.password);
      const at = clock();
      try {
        const result = await db.transaction().execute(async (trx) => {
          const roles = [DEFAULT_ROLE];
          const user = await insertUser(trx, { email, username, passwordHash, roles, at });
          const { sessionId, tokens } = await startSession(trx, user.id, roles, context, at);
          await recordEvent(trx, { type: 'user.registered', userId: user.id, context, data: { sessionId }, at });
          const queued = await onRegister?.(trx, user, at);
          return { queued, result: { user: toUserView(user, roles), ...tokens } };
        });
        if (result.queued) onMailQueued?.(result.queued);
        return result.result;
      } catch (error) {
        // The unique indexes decide races between two registrations, not a prior SELECT.
        const constraint = uniqueViolation(error);
        if (constraint === 'users_email_key') throw new AppError('EMAIL_TAKEN');
        if (constraint === 'users_username_key') throw new AppError('USERNAME_TAKEN');
        throw error;
      }
    },

    async login(input: { email: string; password: string }, context: RequestContext): Promise<AuthResult> {
      const email = normalizeEmail(input.email);
      await refuseIfLocked(email, context);
      const user = await findUserByEmail(db, email);
      if (!user) {
        // Same bcrypt work as a real account, same counting, same answer: no way to tell which emails exist.
        await hasher.verifyNobody(input.password);
        return failSignIn(email, null, { reason: 'unknown_email' }, context);
      }

      if (!(await hasher.verify(input.password, user.password_hash))) {
        return failSignIn(email, user.id, { reason: 'wrong_password' }, context);
      }
      const at = clock();

      // Only a caller who knows the password learns that the account is disabled.
      if (!user.is_active) {
        await recordEvent(db, { type: 'auth.failed', userId: user.id, context, data: { reason: 'account_disabled' }, at });
        throw new AppError('ACCOUNT_DISABLED');
      }
      // REQUIRE_VERIFIED_EMAIL, told like a disabled account: only after the right password.
      if (config.requireVerifiedEmail && user.email_verified_at === null) {
        await recordEvent(db, { type: 'auth.failed', userId: user.id, context, data: { reason: 'email_not_verified' }, at });
        throw new AppError('EMAIL_NOT_VERIFIED');
      }

      return db.transaction().execute(async (trx) => {
        const updated = await recordLoginSuccess(trx, {
          userId: user.id,
          email,
          ip: addressKey(context.ip),
          at,
          checkedHash: user.password_hash,
        });
        // The password was reset or changed while bcrypt compared it with the old hash: it is no
        // longer this account's password, and a session opened now would outlive the reset.
        if (!updated) throw new AppError('INVALID_CREDENTIALS');
        const { sessionId, tokens } = await startSession(trx, user.id, user.roles, context, at);
        await recordEvent(trx, { type: 'user.logged_in', userId: user.id, context, data: { sessionId }, at });
        return { user: toUserView(updated, user.roles), ...tokens };
      });
    },

    /**
     * Rotates a refresh token (CONTRACT.md section 4). The token's row lock serialises
     * concurrent refreshes: the first rotates; the others, inside the grace window and
     * while the successor is unused, get that same successor back. Anything else
     * presenting a rotated token is reuse and revokes the whole session.
     */
    async refresh(refreshToken: string, context: RequestContext): Promise<TokenPair> {
      if (!isWellFormedRefreshToken(refreshToken)) throw new AppError('REFRESH_TOKEN_INVALID');
      const at = clock();
      const tokenHash = hashRefreshToken(refreshToken);

      const rotated = await rotateIfLive(refreshToken, tokenHash, context, at);
      if (rotated) return issueTokens(rotated.userId, rotated.sessionId, rotated.roles, rotated.refreshToken);

      // Anything else (a retry, reuse, an ended session, a race lost to a concurrent refresh)
      // is decided again under the token's row lock.
      const outcome = await db.transaction().execute(async (trx) => {
        const row = await lockRefreshToken(trx, tokenHash);
        if (!row) return { kind: 'invalid' as const };
        const session = await findSessionWithUser(trx, row.session_id);
        // The foreign key keeps a token's session; a missing one is a token we cannot honour.
        if (!session) return { kind: 'invalid' as const };
        if (!session.isActive) return { kind: 'disabled' as const };
        if (session.revokedAt) return { kind: 'invalid' as const };
        if (at >= session.expiresAt) return { kind: 'expired' as const };
        const subject = { userId: session.userId, sessionId: session.sessionId, roles: session.roles };

        if (row.rotated_at === null) {
          if (at >= row.expires_at) return { kind: 'expired' as const };
          const successor = newRefreshToken();
          const successorId = await insertRefreshToken(trx, {
            sessionId: row.session_id,
            tokenHash: hashRefreshToken(successor),
            at,
            expiresAt: refreshExpiry(at, session.expiresAt),
          });
          await markRotated(trx, row.id, { at, successorId, successorBox: sealSuccessor(refreshToken, row.id, successor) });
          await touchSession(trx, row.session_id, at);
          await recordEvent(trx, { type: 'token.refreshed', userId: session.userId, context, data: { sessionId: row.session_id }, at });
          return { kind: 'issued' as const, refreshToken: successor, ...subject };
        }

        if (row.successor_box && (await honouredAsRetry(trx, row, at))) {
          const successor = openSuccessor(refreshToken, row.id, row.successor_box);
          if (successor) {
            await recordEvent(trx, {
              type: 'token.refreshed',
              userId: session.userId,
              context,
              data: { sessionId: row.session_id, retry: true },
              at,
            });
            return { kind: 'issued' as const, refreshToken: successor, ...subject };
          }
        }

        await revokeSession(trx, row.session_id, 'refresh_token_reused', at);
        await recordEvent(trx, { type: 'token.reuse_detected', userId: session.userId, context, data: { sessionId: row.session_id }, at });
        return { kind: 'reused' as const };
      });

      switch (outcome.kind) {
        case 'invalid':
          throw new AppError('REFRESH_TOKEN_INVALID');
        case 'expired':
          throw new AppError('REFRESH_TOKEN_EXPIRED');
        case 'disabled':
          throw new AppError('ACCOUNT_DISABLED');
        case 'reused':
          events?.refreshTokenReused();
          // Thrown after the commit: the revocation must stick although the request fails.
          throw new AppError('REFRESH_TOKEN_REUSED');
        case 'issued':
          return issueTokens(outcome.userId, outcome.sessionId, outcome.roles, outcome.refreshToken);
      }
    },

    /**
     * Ends the session of a live refresh token, or of one a refresh would still honour as a
     * retry. Unknown or spent tokens are not an error.
     */
    async logout(refreshToken: string | undefined, context: RequestContext): Promise<void> {
      if (!refreshToken || !isWellFormedRefreshToken(refreshToken)) return;
      const at = clock();
      await db.transaction().execute(async (trx) => {
        const row = await lockRefreshToken(trx, hashRefreshToken(refreshToken));
        if (!row) return;
        // A spent token cannot end the session: whoever holds an old copy must not log the user
        // out. One within the retry grace is not spent: refresh would hand its holder the
        // successor. And a logout racing its own client's refresh (a tab logging out while another
        // refreshes) must not be undone by the refresh that rotated the token first.
        if (row.rotated_at !== null && !(await honouredAsRetry(trx, row, at))) return;
        const session = await findSessionWithUser(trx, row.session_id);
        if (session && (await revokeSession(trx, row.session_id, 'logout', at))) {
          await recordEvent(trx, { type: 'user.logged_out', userId: session.userId, context, data: { sessionId: row.session_id }, at });
        }
      });
    },

    /**
     * Changes the password after checking the current one; every other session is revoked.
     * A credential check like login's, so it lives with sign-in: a wrong current password is a
     * failed login of the account's email from this address, and a lock refuses the change.
     */
    async changePassword(
      userId: string,
      currentSessionId: string,
      input: { currentPassword: string; newPassword: string },
      context: RequestContext,
    ): Promise<void> {
      const user = await findUserById(db, userId);
      if (!user) throw new AppError('INVALID_CREDENTIALS');
      await refuseIfLocked(user.email, context);
      if (!(await hasher.verify(input.currentPassword, user.password_hash))) {
        return failSignIn(user.email, user.id, { reason: 'wrong_current_password', sessionId: currentSessionId }, context);
      }
      const weaknesses = checkPasswordPolicy(input.newPassword, config.passwordMinLength, user, 'newPassword');
      // Compared as the hasher sees them: the other Unicode spelling of the same password is the same password.
      if (normalizePassword(input.newPassword) === normalizePassword(input.currentPassword))
        weaknesses.push({ path: 'newPassword', message: 'must differ from the current password' });
      if (weaknesses.length > 0) throw new AppError('WEAK_PASSWORD', { errors: weaknesses });

      const passwordHash = await hasher.hash(input.newPassword);
      const at = clock();
      await db.transaction().execute(async (trx) => {
        // Only over the hash the current password was checked against: a reset that committed
        // meanwhile must not be undone by whoever knew the old password.
        const changed = await trx
          .updateTable('users')
          .set({ password_hash: passwordHash, updated_at: at })
          .where('id', '=', userId)
          .where('password_hash', '=', user.password_hash)
          .executeTakeFirst();
        if (changed.numUpdatedRows === 0n) throw new AppError('INVALID_CREDENTIALS');
        // The current password was right: this address's count starts again, as after a login.
        await clearFailures(trx, { email: user.email, ip: addressKey(context.ip) }, at);
        const revoked = await revokeUserSessions(trx, userId, 'password_changed', at, currentSessionId);
        await recordEvent(trx, { type: 'password.changed', userId, context, data: { revokedSessions: revoked }, at });
      });
    },

    /** Revokes every session of the user. */
    async logoutAll(userId: string, sessionId: string, context: RequestContext): Promise<void> {
      const at = clock();
      await db.transaction().execute(async (trx) => {
        const revoked = await revokeUserSessions(trx, userId, 'logout_all', at);
        await recordEvent(trx, {
          type: 'user.logged_out',
          userId,
          context,
          data: { sessionId, allSessions: true, revokedSessions: revoked },
          at,
        });
      });
    },
  };
}

export type AuthService = ReturnType<typeof createAuthService>;
