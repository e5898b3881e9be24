import type { z } from 'zod';
import { recordEvent } from '../audit/audit.repository';
import type { Clock } from '../clock';
import type { DB } from '../db/database';
import { AppError } from '../http/problem';
import type { RequestContext } from '../http/request-context';
import { isUuid } from '../uuid';
import { listLiveSessions, revokeOwnSession } from './session.repository';
import type { sessionView } from './sessions.schemas';

export type SessionView = z.infer<typeof sessionView>;

const noSuchSession = () => new AppError('NOT_FOUND', { detail: 'No such session' });

/** The signed-in user's own sessions: list them, end one. */
export function createSessionsService({ db, clock }: { db: DB; clock: Clock }) {
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
      if (!isUuid(sessionId)) throw noSuchSession();
      const at = clock();
      await db.transaction().execute(async (trx) => {
        if (!(await revokeOwnSession(trx, userId, sessionId, 'user_request', at))) throw noSuchSession();
        await recordEvent(trx, { type: 'session.revoked', userId, context, data: { sessionId }, at });
      });
    },
  };
}

export type SessionsService = ReturnType<typeof createSessionsService>;
