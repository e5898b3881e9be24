import { z } from 'zod';
import { AUDIT_EVENT_TYPES } from '../audit/audit.repository';
import { userView } from '../users/users.schemas';

export const PAGE_LIMIT_DEFAULT = 50;
export const PAGE_LIMIT_MAX = 100;

const limit = z.coerce.number().int().min(1).max(PAGE_LIMIT_MAX).default(PAGE_LIMIT_DEFAULT);
const cursor = z.string().min(1).max(200).optional();

export const listUsersQuery = z.object({ limit, cursor });

export const listEventsQuery = z.object({
  limit,
  cursor,
  userId: z.uuid({ message: 'must be a user id' }).optional(),
  type: z.enum(AUDIT_EVENT_TYPES).optional(),
});

export const setRolesBody = z.object({
  roles: z
    .array(z.string().min(1).max(32))
    .min(1, 'must name at least one role')
    .max(16)
    .refine((roles) => new Set(roles).size === roles.length, 'must not repeat a role'),
});

export const userIdParam = z.object({ id: z.string() });

/*
 * Response shapes: the admin service's view types are inferred from these, and the
 * OpenAPI document is generated from them.
 */

/** A user as the admin API shows it: with its state. */
export const adminUserView = userView
  .extend({ isActive: z.boolean().meta({ description: 'False once disabled: every login and token of the user is refused' }) })
  .meta({ id: 'AdminUser', description: 'An account and whether it is active' });

/** One entry of the audit trail (CONTRACT.md section 8). */
export const auditEventView = z
  .object({
    id: z.uuid(),
    type: z.string().meta({ description: `One of: ${AUDIT_EVENT_TYPES.join(', ')}`, example: 'user.logged_in' }),
    userId: z.uuid().nullable(),
    ip: z.string().nullable(),
    userAgent: z.string().nullable(),
    requestId: z.string().nullable(),
    createdAt: z.iso.datetime().meta({ description: 'ISO 8601 UTC' }),
    data: z.record(z.string(), z.unknown()).meta({ description: 'Identifiers and reasons; never a password or a token' }),
  })
  .meta({ id: 'AuditEvent', description: 'An audit event' });

/** A keyset page of items; `nextCursor` is null on the last page. */
export function pageOf<T extends z.ZodType>(item: T, id: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last one' }),
    })
    .meta({ id, description: 'One page; follow nextCursor for the next' });
}

export const adminUserPageView = pageOf(adminUserView, 'AdminUserPage');
export const auditEventPageView = pageOf(auditEventView, 'AuditEventPage');
