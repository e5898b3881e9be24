import type { Kysely } from 'kysely';
import { recordEvent } from '../audit/audit.repository';
import { forgetFailures } from '../auth/login-failures.repository';
import { addSeconds, type Clock } from '../clock';
import type { Config } from '../config';
import type { DB } from '../db/database';
import type { Database, OneTimeTokenPurpose } from '../db/schema';
import { AppError, type ProblemCode } from '../http/problem';
import type { RequestContext } from '../http/request-context';
import { countMailSince, enqueueMail } from '../mail/outbox.repository';
import type { PasswordHasher } from '../passwords/password-hasher';
import { checkPasswordPolicy } from '../passwords/password-policy';
import type { RecoveryQueue } from './recovery.queue';
import { revokeUserSessions } from '../sessions/session.repository';
import { findUserById } from '../users/user.repository';
import {
  findOneTimeToken,
  hashOneTimeToken,
  insertOneTimeToken,
  lockUserByEmail,
  lockUserById,
  markTokenUsed,
  newOneTimeToken,
  NOBODY,
  supersedeLiveTokens,
} from './one-time-token.repository';

export interface RecoveryServiceDeps {
  db: DB;
  config: Pick<
    Config,
    'passwordResetUrl' | 'passwordResetTtl' | 'emailVerifyUrl' | 'emailVerifyTtl' | 'resetMaxPerHour' | 'passwordMinLength'
  >;
  hasher: PasswordHasher;
  clock: Clock;
  /** Told after a commit that queued a message, of its kind: counts it and wakes the mail dispatcher. */
  onMailQueued?: ((kind: OneTimeTokenPurpose) => void) | undefined;
  /** Where the requests by email run, after their answer. */
  queue: RecoveryQueue;
}

/** What each purpose's token is for: its link, lifetime, and the codes a bad one is answered with. */
interface Purpose {
  purpose: OneTimeTokenPurpose;
  link: string;
  ttl: number;
  invalid: ProblemCode;
  expired: ProblemCode;
}

/** The hourly cap counts the outbox rows of one kind to one address over this window (RESET_MAX_PER_HOUR). */
const CAP_WINDOW_SECONDS = 60 * 60;

/** A token as the message carries it, and as the database stores it. */
interface Minted {
  token: string;
  tokenHash: string;
}

/** A user row as the flows here lock it. */
type Recipient = { id: string; email: string; email_verified_at: Date | null };

/**
 * Password reset and email verification (CONTRACT.md section 9). Each message is written to
 * the outbox in the transaction that makes its token; delivery happens after the commit
 * (mail/). The requests that take an email answer alike for every email, and at once: their
 * work is queued (recovery.queue.ts) and runs after the answer, so that neither the answer nor
 * its time tells whether the email has an account. The work itself still hashes a token and
 * sends the database the same statements up to the point where an account is needed.
 */
export function createRecoveryService(deps: RecoveryServiceDeps) {
  const { db, config, hasher, clock, onMailQueued, queue } = deps;

  const RESET: Purpose = {
    purpose: 'password_reset',
    link: config.passwordResetUrl,
    ttl: config.passwordResetTtl,
    invalid: 'RESET_TOKEN_INVALID',
    expired: 'RESET_TOKEN_EXPIRED',
  };
  const VERIFY: Purpose = {
    purpose: 'email_verification',
    link: config.emailVerifyUrl,
    ttl: config.emailVerifyTtl,
    invalid: 'VERIFY_TOKEN_INVALID',
    expired: 'VERIFY_TOKEN_EXPIRED',
  };

  /** `{token}` filled in; split and join rather than replace, whose `$` patterns a template could trip. */
  const linkOf = (template: string, token: string) => template.split('{token}').join(token);

  /**
   * A new token and its hash, made by every request before anything is known of the account,
   * so that requests for emails with and without one do the same work.
   */
  function mint(): Minted {
    const token = newOneTimeToken();
    return { token, tokenHash: hashOneTimeToken(token) };
  }

  /**
   * Stores a token of `kind` for `user` and queues its message, in the caller's transaction
   * (which has superseded the user's live token of that kind, in {@link decide}).
   */
  async function issue(trx: Kysely<Database>, kind: Purpose, user: Recipient, minted: Minted, at: Date): Promise<void> {
    const expiresAt = addSeconds(at, kind.ttl);
    await insertOneTimeToken(trx, { userId: user.id, purpose: kind.purpose, tokenHash: minted.tokenHash, at, expiresAt });
    const link = linkOf(kind.link, minted.token);
    await enqueueMail(trx, { kind: kind.purpose, recipient: user.email, userId: user.id, link, expiresAt }, at);
  }

  /**
   * The part of a request for a message that every request does alike, whoever it names: the
   * account's row locked (so that two requests for one account are decided one after the
   * other: together they never pass the cap nor leave two live tokens), the messages of the
   * last hour counted, and the live token superseded when a new one will be sent. Returns
   * whether to send: an account, `wanted` by the flow, and under RESET_MAX_PER_HOUR.
   */
  async function decide(
    trx: Kysely<Database>,
    kind: Purpose,
    email: string,
    user: Recipient | undefined,
    wanted: (user: Recipient) => boolean,
    at: Date,
  ): Promise<boolean> {
    const sent = await countMailSince(trx, email, kind.purpose, addSeconds(at, -CAP_WINDOW_SECONDS));
    const send = user !== undefined && sent < config.resetMaxPerHour && wanted(user);
    await supersedeLiveTokens(trx, send ? user.id : NOBODY, kind.purpose, at);
    return send;
  }

  /** Runs a request for a message of `kind` in a transaction; tells of it after the commit when one was queued. */
  async function queueing(kind: Purpose, work: (trx: Kysely<Database>) => Promise<boolean>): Promise<void> {
    if (await db.transaction().execute(work)) onMailQueued?.(kind.purpose);
  }

  /**
   * {@link queueing}, after the answer: on the queue, which logs and counts a failure (the
   * caller has had its 202 already). The token and the time are taken now, at the request.
   */
  function later(kind: Purpose, requestId: string | null, work: (trx: Kysely<Database>) => Promise<boolean>): void {
    queue.push({ kind: kind.purpose, requestId, run: () => queueing(kind, work) });
  }

  const always = () => true;
  const unverified = (user: Recipient) => user.email_verified_at === null;

  /**
   * Finds the token of `kind` with this hash, locked when in a transaction, and refuses it unless
   * it is live: unknown, used or superseded is `invalid`; past its expiry (and otherwise valid) `expired`.
   */
  async function liveToken(handle: Kysely<Database>, kind: Purpose, tokenHash: string, at: Date, lock: boolean) {
    const row = await findOneTimeToken(handle, tokenHash, kind.purpose, lock);
    if (!row || row.used_at !== null || row.superseded_at !== null) throw new AppError(kind.invalid);
    if (at >= row.expires_at) throw new AppError(kind.expired);
    return row;
  }

  return {
    /**
     * POST /auth/password/forgot: queues a reset message for an account, answering alike for
     * every email. Audited (`password.reset_requested`) for an existing account only. Returns
     * before the work is done (on the queue); a failure then is logged, not thrown.
     */
    forgotPassword(email: string, context: RequestContext): void {
      const minted = mint();
      const at = clock();
      later(RESET, context.requestId, async (trx) => {
        const user = await lockUserByEmail(trx, email);
        const send = await decide(trx, RESET, email, user, always, at);
        if (!user) return false;
        if (send) await issue(trx, RESET, user, minted, at);
        // Never the token nor the link; `messageQueued: false` is a request over RESET_MAX_PER_HOUR.
        await recordEvent(trx, { type: 'password.reset_requested', userId: user.id, context, data: { messageQueued: send }, at });
        return send;
      });
    },

    /**
     * POST /auth/password/reset: sets a new password with a live reset token, which it uses up.
     * Every session is revoked, the failed-login counters of the email are cleared, and the
     * email counts as verified (the token came through it). A disabled account stays disabled.
     */
    async resetPassword(input: { token: string; newPassword: string }, context: RequestContext): Promise<void> {
      const at = clock();
      const tokenHash = hashOneTimeToken(input.token);
      // Looked at first without a lock, so a bad token or a weak password costs no bcrypt work.
      const found = await liveToken(db, RESET, tokenHash, at, false);
      const user = await findUserById(db, found.user_id);
      // The foreign key cascades: a token without its account is one we cannot honour.
      if (!user) throw new AppError(RESET.invalid);
      const weaknesses = checkPasswordPolicy(input.newPassword, config.passwordMinLength, user, 'newPassword');
      if (weaknesses.length > 0) throw new AppError('WEAK_PASSWORD', { errors: weaknesses });
      const passwordHash = await hasher.hash(input.newPassword);

      await db.transaction().execute(async (trx) => {
        // Decided again under the token's row lock: of two resets with one token, one wins.
        const row = await liveToken(trx, RESET, tokenHash, at, true);
        await markTokenUsed(trx, row.id, at);
        await trx
          .updateTable('users')
          .set((eb) => ({
            password_hash: passwordHash,
            updated_at: at,
            email_verified_at: eb.fn.coalesce('email_verified_at', eb.val(at)),
          }))
          .where('id', '=', row.user_id)
          .execute();
        const revoked = await revokeUserSessions(trx, row.user_id, 'password_reset', at);
        const failuresCleared = await forgetFailures(trx, user.email);
        await recordEvent(trx, {
          type: 'password.reset',
          userId: row.user_id,
          context,
          data: { revokedSessions: revoked, failuresCleared },
          at,
        });
      });
    },

    /**
     * POST /users/me/email/verification: a new verification message to the caller, unless
     * verified already or capped. Done before the answer: the caller is known, and its time
     * tells it nothing it does not know of its own account; a failure is its 5xx to retry.
     */
    async requestVerification(userId: string): Promise<void> {
      const minted = mint();
      const at = clock();
      await queueing(VERIFY, async (trx) => {
        const user = await lockUserById(trx, userId);
        if (!user) return false;
        const send = await decide(trx, VERIFY, user.email, user, unverified, at);
        if (send) await issue(trx, VERIFY, user, minted, at);
        return send;
      });
    },

    /**
     * POST /auth/email/verification: the same, by email and without a session, answering alike
     * for every email; after the answer, on the queue, as {@link forgotPassword}.
     */
    resendVerification(email: string, context: RequestContext): void {
      const minted = mint();
      const at = clock();
      later(VERIFY, context.requestId, async (trx) => {
        const user = await lockUserByEmail(trx, email);
        const send = await decide(trx, VERIFY, email, user, unverified, at);
        if (send && user) await issue(trx, VERIFY, user, minted, at);
        return send;
      });
    },

    /** POST /auth/email/verify: marks the email verified with a live verification token, which it uses up. */
    async verifyEmail(token: string, context: RequestContext): Promise<void> {
      const at = clock();
      await db.transaction().execute(async (trx) => {
        const row = await liveToken(trx, VERIFY, hashOneTimeToken(token), at, true);
        await markTokenUsed(trx, row.id, at);
        const verified = await trx
          .updateTable('users')
          .set({ email_verified_at: at, updated_at: at })
          .where('id', '=', row.user_id)
          .where('email_verified_at', 'is', null)
          .executeTakeFirst();
        // Verifying a verified address again is not an error, and not a new event.
        if (Number(verified.numUpdatedRows) > 0) {
          await recordEvent(trx, { type: 'user.email_verified', userId: row.user_id, context, data: {}, at });
        }
      });
    },

    /**
     * The verification message of a new account, written in the registration's transaction
     * (auth/ calls it through the hook app.ts wires). Returns the kind it queued: the caller
     * tells of it after its commit.
     */
    async queueVerificationOnRegister(trx: Kysely<Database>, user: { id: string; email: string }, at: Date): Promise<OneTimeTokenPurpose> {
      await issue(trx, VERIFY, { ...user, email_verified_at: null }, mint(), at);
      return VERIFY.purpose;
    },
  };
}

export type RecoveryService = ReturnType<typeof createRecoveryService>;
