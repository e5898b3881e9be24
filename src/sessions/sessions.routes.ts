import { type RequestHandler, Router } from 'express';
import { requirePermission } from '../access/authenticate.middleware';
import { contextOf } from '../http/request-context';
import type { SessionsService } from './sessions.service';

/** GET /users/me/sessions and DELETE /users/me/sessions/:id. */
export function sessionsRoutes({ sessions, authenticate }: { sessions: SessionsService; authenticate: RequestHandler }): Router {
  const router = Router();

  router.get('/users/me/sessions', authenticate, requirePermission('profile:read'), async (req, res) => {
    res.json(await sessions.listSessions(req.auth!.userId, req.auth!.sessionId));
  });

  router.delete('/users/me/sessions/:id', authenticate, requirePermission('profile:write'), async (req, res) => {
    await sessions.revokeSession(req.auth!.userId, String(req.params.id), contextOf(req));
    res.status(204).end();
  });

  return router;
}
