import { type RequestHandler, Router } from 'express';
import { requirePermission } from '../access/authenticate.middleware';
import { toUserView } from './user.repository';

/** GET /users/me: the caller's account, as authentication loaded it, and its permissions. */
export function usersRoutes({ authenticate }: { authenticate: RequestHandler }): Router {
  const router = Router();

  router.get('/users/me', authenticate, requirePermission('profile:read'), (req, res) => {
    const { userId, roles, permissions, account } = req.auth!;
    const user = toUserView(
      { id: userId, email: account.email, username: account.username, created_at: account.createdAt, last_login_at: account.lastLoginAt },
      roles,
    );
    res.json({ ...user, permissions });
  });

  return router;
}
