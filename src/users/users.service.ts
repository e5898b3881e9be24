import type { Clock } from '../clock';
import type { Config } from '../config';
import type { DB } from '../db/database';
import { recordEvent, type RequestContext } from '../audit/audit.repository';
import { AppError } from '../http/problem';
import type { PasswordHasher } from '../passwords/password-hasher';
import { checkPasswordPolicy } from '../passwords/password-policy';
import { listLiveSessions, revokeSession, revokeUserSessions } from '../auth/session.repository';
import type { z } from 'zod';
import { findUserById } from './user.repository';
import type { sessionView } from './users.schemas';
import { isUuid } from '../uuid';

export interface UsersServiceDeps {
  db: DB;
  config: Pick<Config, 'passwordMinLength'>;
  hasher: PasswordHasher;
  clock: Clock;
}

export type SessionView = z.infer<typeof sessionView>;

/** The signed-in user's own account: sessions and password. */
export function createUsersService(deps: UsersServiceDeps) {
  const { db, config, hasher, clock } = deps;

  return {
    async listSessions(userId: string, currentSessionId: string): Promise<SessionView[]> {
      const rows = await listLiveSessions(db, userId, clock());
      return rows.map((row) => ({
        id: row.id,
        createdAt: row.created_at.toISOString(),
        lastUsedAt: row.last_used_at.toISOString(),
        userAgent: row.user_agent,
        ip: row.ip,
        current: row.id === currentSessionId,
      }));
    },

    /** Revokes one of the user's own live sessions; anything else is NOT_FOUND, so ids of others' sessions leak nothing. */
    async revokeSession(userId: string, sessionId: string, context: RequestContext): Promise<void> {
      if (!isUuid(sessionId)) throw new AppError('NOT_FOUND', { detail: 'No such session' });
      const at = clock();
      await db.transaction().execute(async (trx) => {
        const owned = await trx
          .selectFrom('sessions')
          .select('id')
          .where('id', '=', sessionId)
          .where('user_id', '=', userId)
          .where('revoked_at', 'is', null)
          .where('expires_at', '>', at)
          .executeTakeFirst();
        if (!owned || !(await revokeSession(trx, sessionId, 'user_request', at))) {
          throw new AppError('NOT_FOUND', { detail: 'No such session' });
        }
        await recordEvent(trx, { type: 'session.revoked', userId, context, data: { sessionId }, at });
      });
    },

    /** Changes the password after checking the current one; every other session is revoked. */
    async changePassword(
      userId: string,
      currentSessionId: string,
      input: { currentPassword: string; newPassword: string },
      context: RequestContext,
    ): Promise<void> {
      const user = await findUserById(db, userId);
      if (!user || !(await hasher.verify(input.currentPassword, user.password_hash))) throw new AppError('INVALID_CREDENTIALS');
      const weaknesses = checkPasswordPolicy(input.newPassword, config.passwordMinLength, user, 'newPassword');
      if (input.newPassword === input.currentPassword) weaknesses.push({ path: 'newPassword', message: 'must differ from the current password' });
      if (weaknesses.length > 0) throw new AppError('WEAK_PASSWORD', { errors: weaknesses });

      const passwordHash = await hasher.hash(input.newPassword);
      const at = clock();
      await db.transaction().execute(async (trx) => {
        await trx.updateTable('users').set({ password_hash: passwordHash, updated_at: at }).where('id', '=', userId).execute();
        const revoked = await revokeUserSessions(trx, userId, 'password_changed', at, currentSessionId);
        await recordEvent(trx, { type: 'password.changed', userId, context, data: { revokedSessions: revoked }, at });
      });
    },
  };
}

export type UsersService = ReturnType<typeof createUsersService>;
