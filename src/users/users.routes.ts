import { type RequestHandler, Router } from 'express';
import { requirePermission } from '../auth/authenticate.middleware';
import { contextOf } from '../http/request-context';
import { parse } from '../http/validate';
import type { UsersService } from './users.service';
import { changePasswordBody } from './users.schemas';

/** GET /users/me, its sessions, and its password. */
export function usersRoutes({ users, authenticate }: { users: UsersService; authenticate: RequestHandler }): Router {
  const router = Router();
  const canRead = requirePermission('profile:read');
  const canWrite = requirePermission('profile:write');

  router.get('/users/me', authenticate, canRead, (req, res) => {
    const { user, permissions } = req.auth!;
    res.json({ ...user, permissions });
  });

  router.get('/users/me/sessions', authenticate, canRead, async (req, res) => {
    res.json(await users.listSessions(req.auth!.userId, req.auth!.sessionId));
  });

  router.delete('/users/me/sessions/:id', authenticate, canWrite, async (req, res) => {
    await users.revokeSession(req.auth!.userId, String(req.params.id), contextOf(req));
    res.status(204).end();
  });

  router.post('/users/me/password', authenticate, canWrite, async (req, res) => {
    const input = parse(changePasswordBody, req.body);
    await users.changePassword(req.auth!.userId, req.auth!.sessionId, input, contextOf(req));
    res.status(204).end();
  });

  return router;
}
