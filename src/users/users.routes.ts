import { defineRoute, type RouteTable } from '../http/route';
import { toUserView } from './user.repository';
import { currentUserView } from './users.schemas';

/** GET /users/me: the caller's account, as authentication loaded it, and its permissions. */
export const usersRoutes: RouteTable<Record<string, never>> = [
  defineRoute({
    method: 'get',
    path: '/users/me',
    operationId: 'getCurrentUser',
    tag: 'users',
    summary: 'The caller’s account and permissions',
    bearer: true,
    permission: 'profile:read',
    response: { status: 200, description: 'The account with its effective permissions', schema: currentUserView },
    handler:
      () =>
      ({ auth: { userId, roles, permissions, account } }) => {
        const user = toUserView(
          {
            id: userId,
            email: account.email,
            username: account.username,
            created_at: account.createdAt,
            last_login_at: account.lastLoginAt,
            email_verified_at: account.emailVerifiedAt,
          },
          roles,
        );
        return { ...user, permissions: [...permissions] };
      },
  }),
];
