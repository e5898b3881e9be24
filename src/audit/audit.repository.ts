import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';
import type { RequestContext } from '../http/request-context';

/** The audit event types of CONTRACT.md section 8. */
export const AUDIT_EVENT_TYPES = [
  'user.registered',
  'user.logged_in',
  'auth.failed',
  'user.locked',
  'token.refreshed',
  'token.reuse_detected',
  'user.logged_out',
  'session.revoked',
  'password.changed',
  'user.roles_changed',
  'user.disabled',
  'user.enabled',
  'password.reset_requested',
  'password.reset',
  'user.email_verified',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export interface AuditEvent {
  type: AuditEventType;
  userId: string | null;
  context: RequestContext;
  /** Identifiers and reasons only: never a password, token, hash or secret. */
  data?: Record<string, string | number | boolean | null | string[]>;
  at: Date;
}

/**
 * Writes one audit event. Call it with the transaction that makes the change it records,
 * so the trail never tells of a change that was rolled back (nor misses one that was not).
 */
export async function recordEvent(db: Kysely<Database>, event: AuditEvent): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      type: event.type,
      user_id: event.userId,
      ip: event.context.ip,
      user_agent: event.context.userAgent,
      request_id: event.context.requestId,
      data: JSON.stringify(event.data ?? {}),
      created_at: event.at,
    })
    .execute();
}
