import { defineRoute, type RouteTable } from '../http/route';
import type { AdminService } from './admin.service';
import {
  adminUserPageView,
  adminUserView,
  auditEventPageView,
  listEventsQuery,
  listUsersQuery,
  setRolesBody,
  userIdParam,
} from './admin.schemas';

export interface AdminRoutesDeps {
  admin: AdminService;
}

/** The RBAC-protected admin API: users, their roles and state, and the audit trail. */
export const adminRoutes: RouteTable<AdminRoutesDeps> = [
  defineRoute({
    method: 'get',
    path: '/admin/users',
    operationId: 'listUsers',
    tag: 'admin',
    summary: 'List users, oldest first',
    bearer: true,
    permission: 'users:read',
    query: listUsersQuery,
    response: { status: 200, description: 'One page of users', schema: adminUserPageView },
    handler:
      ({ admin }) =>
      ({ query }) =>
        admin.listUsers(query),
  }),

  defineRoute({
    method: 'put',
    path: '/admin/users/{id}/roles',
    operationId: 'setUserRoles',
    tag: 'admin',
    summary: 'Replace a user’s roles',
    description: 'An unknown role is VALIDATION_FAILED; removing the last active admin is LAST_ADMIN.',
    bearer: true,
    permission: 'users:write',
    params: userIdParam,
    body: setRolesBody,
    errors: ['NOT_FOUND', 'LAST_ADMIN'],
    response: { status: 200, description: 'The user with its new roles', schema: adminUserView },
    handler:
      ({ admin }) =>
      ({ auth, params, body, context }) =>
        admin.setRoles(auth.userId, params.id, body.roles, context),
  }),

  defineRoute({
    method: 'post',
    path: '/admin/users/{id}/disable',
    operationId: 'disableUser',
    tag: 'admin',
    summary: 'Disable a user',
    description:
      'Every session of the user is revoked; its logins and tokens are refused until enabled. Disabling the last active admin is LAST_ADMIN.',
    bearer: true,
    permission: 'users:write',
    params: userIdParam,
    errors: ['NOT_FOUND', 'LAST_ADMIN'],
    response: { status: 200, description: 'The user, now inactive', schema: adminUserView },
    handler:
      ({ admin }) =>
      ({ auth, params, context }) =>
        admin.disable(auth.userId, params.id, context),
  }),

  defineRoute({
    method: 'post',
    path: '/admin/users/{id}/enable',
    operationId: 'enableUser',
    tag: 'admin',
    summary: 'Enable a disabled user',
    bearer: true,
    permission: 'users:write',
    params: userIdParam,
    errors: ['NOT_FOUND'],
    response: { status: 200, description: 'The user, now active', schema: adminUserView },
    handler:
      ({ admin }) =>
      ({ auth, params, context }) =>
        admin.enable(auth.userId, params.id, context),
  }),

  defineRoute({
    method: 'get',
    path: '/admin/events',
    operationId: 'listAuditEvents',
    tag: 'admin',
    summary: 'The audit trail, newest first',
    bearer: true,
    permission: 'audit:read',
    query: listEventsQuery,
    response: { status: 200, description: 'One page of audit events', schema: auditEventPageView },
    handler:
      ({ admin }) =>
      ({ query }) =>
        admin.listEvents(query),
  }),
];
