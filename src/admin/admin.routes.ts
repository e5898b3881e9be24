import { type RequestHandler, Router } from 'express';
import { requirePermission } from '../access/authenticate.middleware';
import { contextOf } from '../http/request-context';
import { parse } from '../http/validate';
import type { AdminService } from './admin.service';
import { listEventsQuery, listUsersQuery, setRolesBody } from './admin.schemas';

/** The RBAC-protected admin API: users, their roles and state, and the audit trail. */
export function adminRoutes({ admin, authenticate }: { admin: AdminService; authenticate: RequestHandler }): Router {
  const router = Router();
  const canReadUsers = requirePermission('users:read');
  const canWriteUsers = requirePermission('users:write');
  const canReadAudit = requirePermission('audit:read');

  router.get('/admin/users', authenticate, canReadUsers, async (req, res) => {
    res.json(await admin.listUsers(parse(listUsersQuery, req.query)));
  });

  router.put('/admin/users/:id/roles', authenticate, canWriteUsers, async (req, res) => {
    const { roles } = parse(setRolesBody, req.body);
    res.json(await admin.setRoles(req.auth!.userId, String(req.params.id), roles, contextOf(req)));
  });

  router.post('/admin/users/:id/disable', authenticate, canWriteUsers, async (req, res) => {
    res.json(await admin.disable(req.auth!.userId, String(req.params.id), contextOf(req)));
  });

  router.post('/admin/users/:id/enable', authenticate, canWriteUsers, async (req, res) => {
    res.json(await admin.enable(req.auth!.userId, String(req.params.id), contextOf(req)));
  });

  router.get('/admin/events', authenticate, canReadAudit, async (req, res) => {
    res.json(await admin.listEvents(parse(listEventsQuery, req.query)));
  });

  return router;
}
