import { z } from 'zod';
import { defineRoute, type RouteTable } from '../http/route';
import type { SessionsService } from './sessions.service';
import { sessionIdParam, sessionView } from './sessions.schemas';

export interface SessionsRoutesDeps {
  sessions: SessionsService;
}

/** GET /users/me/sessions and DELETE /users/me/sessions/{id}. */
export const sessionsRoutes: RouteTable<SessionsRoutesDeps> = [
  defineRoute({
    method: 'get',
    path: '/users/me/sessions',
    operationId: 'listSessions',
    tag: 'users',
    summary: 'The caller’s live sessions',
    bearer: true,
    permission: 'profile:read',
    response: { status: 200, description: 'Live sessions, the current one marked', schema: z.array(sessionView) },
    handler:
      ({ sessions }) =>
      ({ auth }) =>
        sessions.listSessions(auth.userId, auth.sessionId),
  }),

  defineRoute({
    method: 'delete',
    path: '/users/me/sessions/{id}',
    operationId: 'revokeSession',
    tag: 'users',
    summary: 'Revoke one of the caller’s sessions',
    description: "Another user's session is NOT_FOUND, like one that does not exist.",
    bearer: true,
    permission: 'profile:write',
    params: sessionIdParam,
    errors: ['NOT_FOUND'],
    response: { status: 204, description: 'Revoked' },
    handler:
      ({ sessions }) =>
      async ({ auth, params, context }) => {
        await sessions.revokeSession(auth.userId, params.id, context);
      },
  }),
];
