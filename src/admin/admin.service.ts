import { type Kysely, sql } from 'kysely';
import type { z } from 'zod';
import type { Clock } from '../clock';
import type { DB } from '../db/database';
import type { Database } from '../db/schema';
import { type AuditEventType, recordEvent } from '../audit/audit.repository';
import { AppError } from '../http/problem';
import type { RequestContext } from '../http/request-context';
import {
  ADMIN_ROLE,
  countActiveAdmins,
  isAdmin,
  listRoleNames,
  lockAdminGrants,
  replaceUserRoles,
  rolesOf,
  userRoles,
} from '../roles/roles.repository';
import { revokeUserSessions } from '../sessions/session.repository';
import { normalizeEmail, toUserView } from '../users/user.repository';
import type { adminUserView, auditEventView, pageOf } from './admin.schemas';
import { type Cursor, cursorTimestamp, decodeCursor, encodeCursor } from './cursor';
import { isUuid } from '../uuid';

export type AdminUserView = z.infer<typeof adminUserView>;

export type AuditEventView = z.infer<typeof auditEventView>;

/** What a grant or revoke did: the user as it is now, and whether anything changed. */
export interface RoleChange {
  user: AdminUserView;
  changed: boolean;
}

export type Page<T> = z.infer<ReturnType<typeof pageOf<z.ZodType<T>>>>;

const noSuchUser = () => new AppError('NOT_FOUND', { detail: 'No such user' });
const lastAdmin = () => new AppError('LAST_ADMIN');

/** Selects a user row as the admin API shows it. */
function selectAdminUser(db: Kysely<Database>) {
  return db
    .selectFrom('users')
    .select([
      'id',
      'email',
      'username',
      'created_at',
      'last_login_at',
      'email_verified_at',
      'is_active',
      rolesOf('users.id').as('roles'),
      cursorTimestamp('users.created_at').as('cursor_at'),
    ]);
}

type AdminUserRow = {
  id: string;
  email: string;
  username: string | null;
  created_at: Date;
  last_login_at: Date | null;
  email_verified_at: Date | null;
  is_active: boolean;
  roles: string[];
};

function toAdminUserView(row: AdminUserRow): AdminUserView {
  return { ...toUserView(row, row.roles), isActive: row.is_active };
}

/** Keyset page: fetch one row more than asked, to know whether another page follows. */
function toPage<R extends { id: string; cursor_at: string }, T>(rows: R[], limit: number, view: (row: R) => T): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  const nextCursor = rows.length > limit && last ? encodeCursor({ at: last.cursor_at, id: last.id }) : null;
  return { items: items.map(view), nextCursor };
}

/** User administration and the audit trail (CONTRACT.md sections 3 and 8). */
export function createAdminService({ db, clock }: { db: DB; clock: Clock }) {
  async function findAdminUser(trx: Kysely<Database>, id: string): Promise<AdminUserView> {
    const row = await selectAdminUser(trx).where('id', '=', id).executeTakeFirst();
    if (!row) throw noSuchUser();
    return toAdminUserView(row);
  }

  /** Locks the user's row for the rest of the transaction; NOT_FOUND when there is none. */
  async function lockUser(trx: Kysely<Database>, id: string) {
    if (!isUuid(id)) throw noSuchUser();
    const row = await trx.selectFrom('users').select(['id', 'is_active']).where('id', '=', id).forUpdate().executeTakeFirst();
    if (!row) throw noSuchUser();
    return row;
  }

  /** Unknown roles are a validation failure naming the roles there are. */
  async function assertRolesExist(roles: readonly string[], pathOf: (index: number) => string): Promise<void> {
    const known = await listRoleNames(db);
    const unknown = roles.map((role, index) => ({ role, index })).filter(({ role }) => !known.includes(role));
    if (unknown.length > 0) {
      throw new AppError('VALIDATION_FAILED', {
        errors: unknown.map(({ index }) => ({ path: pathOf(index), message: `is not a role; roles are: ${known.join(', ')}` })),
      });
    }
  }

  async function userIdByEmail(email: string): Promise<string> {
    const row = await db.selectFrom('users').select('id').where('email', '=', normalizeEmail(email)).executeTakeFirst();
    if (!row) throw noSuchUser();
    return row.id;
  }

  /**
   * The one place roles change. The user's row lock serialises changes to one user, so
   * `next` sees the roles as they are; the admin-grant lock, taken first, serialises
   * removals of admins, so two cannot together remove the last active one.
   */
  async function changeRoles(
    actorId: string,
    userId: string,
    context: RequestContext,
    next: (current: string[]) => string[],
  ): Promise<RoleChange> {
    const at = clock();
    return db.transaction().execute(async (trx) => {
      await lockAdminGrants(trx);
      const user = await lockUser(trx, userId);
      const { added, removed } = await replaceUserRoles(trx, userId, next(await userRoles(trx, userId)), at);
      // An inactive admin's removal leaves the count of active admins as it was.
      if (removed.includes(ADMIN_ROLE) && user.is_active && (await countActiveAdmins(trx)) === 0) throw lastAdmin();
      const changed = added.length > 0 || removed.length > 0;
      if (changed) {
        await trx.updateTable('users').set({ updated_at: at }).where('id', '=', userId).execute();
        await recordEvent(trx, { type: 'user.roles_changed', userId, context, data: { added, removed, by: actorId }, at });
      }
      return { user: await findAdminUser(trx, userId), changed };
    });
  }

  async function setActive(actorId: string, userId: string, active: boolean, context: RequestContext): Promise<AdminUserView> {
    const at = clock();
    return db.transaction().execute(async (trx) => {
      if (!active) await lockAdminGrants(trx);
      const user = await lockUser(trx, userId);
      if (user.is_active !== active) {
        await trx.updateTable('users').set({ is_active: active, updated_at: at }).where('id', '=', userId).execute();
        const type: AuditEventType = active ? 'user.enabled' : 'user.disabled';
        const data: Record<string, string | number> = { by: actorId };
        if (!active) {
          if ((await isAdmin(trx, userId)) && (await countActiveAdmins(trx)) === 0) throw lastAdmin();
          // A disabled user's sessions end with it, in the same transaction.
          data.revokedSessions = await revokeUserSessions(trx, userId, 'account_disabled', at);
        }
        await recordEvent(trx, { type, userId, context, data, at });
      }
      return findAdminUser(trx, userId);
    });
  }

  return {
    /** Every user, oldest first: rows added while paging land after the cursor, so none repeats or is skipped. */
    async listUsers(query: { limit: number; cursor?: string | undefined }): Promise<Page<AdminUserView>> {
      let select = selectAdminUser(db)
        .orderBy('created_at')
        .orderBy('id')
        .limit(query.limit + 1);
      if (query.cursor) {
        const cursor: Cursor = decodeCursor(query.cursor);
        select = select.where(sql<boolean>`(created_at, id) > (${cursor.at}::timestamptz, ${cursor.id}::uuid)`);
      }
      return toPage(await select.execute(), query.limit, toAdminUserView);
    },

    /** Replaces a user's roles. Unknown roles are a 422; removing the last active admin a 409. */
    async setRoles(actorId: string, userId: string, roles: string[], context: RequestContext): Promise<AdminUserView> {
      await assertRolesExist(roles, (index) => `roles.${index}`);
      return (await changeRoles(actorId, userId, context, () => roles)).user;
    },

    /**
     * Gives a user one more role, by email: `npm run user:grant`. The same rules, lock and
     * audit event as {@link setRoles}; `actor` is recorded as `by` (the CLI passes "cli").
     */
    async grantRole(actor: string, email: string, role: string, context: RequestContext): Promise<RoleChange> {
      await assertRolesExist([role], () => 'role');
      return changeRoles(actor, await userIdByEmail(email), context, (current) => [...new Set([...current, role])]);
    },

    /** Takes one role from a user, by email: `npm run user:revoke`. Never the last active admin's. */
    async revokeRole(actor: string, email: string, role: string, context: RequestContext): Promise<RoleChange> {
      await assertRolesExist([role], () => 'role');
      return changeRoles(actor, await userIdByEmail(email), context, (current) => current.filter((r) => r !== role));
    },

    disable: (actorId: string, userId: string, context: RequestContext) => setActive(actorId, userId, false, context),
    enable: (actorId: string, userId: string, context: RequestContext) => setActive(actorId, userId, true, context),

    /** Audit events, newest first, optionally for one user and of one type. */
    async listEvents(query: {
      limit: number;
      cursor?: string | undefined;
      userId?: string | undefined;
      type?: string | undefined;
    }): Promise<Page<AuditEventView>> {
      let select = db
        .selectFrom('audit_events')
        .select([
          'id',
          'type',
          'user_id',
          'ip',
          'user_agent',
          'request_id',
          'created_at',
          'data',
          cursorTimestamp('audit_events.created_at').as('cursor_at'),
        ])
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(query.limit + 1);
      if (query.userId) select = select.where('user_id', '=', query.userId);
      if (query.type) select = select.where('type', '=', query.type);
      if (query.cursor) {
        const cursor = decodeCursor(query.cursor);
        select = select.where(sql<boolean>`(created_at, id) < (${cursor.at}::timestamptz, ${cursor.id}::uuid)`);
      }
      return toPage(await select.execute(), query.limit, (row) => ({
        id: row.id,
        type: row.type,
        userId: row.user_id,
        ip: row.ip,
        userAgent: row.user_agent,
        requestId: row.request_id,
        createdAt: row.created_at.toISOString(),
        data: row.data,
      }));
    },
  };
}

export type AdminService = ReturnType<typeof createAdminService>;
