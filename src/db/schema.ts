import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** A timestamp the database returns as a Date and accepts as a Date. */
type Timestamp = ColumnType<Date, Date | undefined, Date>;
type NullableTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;

export interface RolesTable {
  name: string;
  description: string;
}

export interface RolePermissionsTable {
  role: string;
  permission: string;
}

/** One row: moves on every change to roles or role_permissions (a trigger), so caches know to reload. */
export interface RolePermissionsRevisionTable {
  id: Generated<boolean>;
  revision: ColumnType<string, never, never>;
}

export interface UsersTable {
  id: Generated<string>;
  /** Trimmed and lower-cased; a CHECK keeps it so, a unique index keeps it single. */
  email: string;
  username: string | null;
  password_hash: string;
  is_active: Generated<boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
  last_login_at: NullableTimestamp;
  /** When the owner proved the address; `emailVerified` is whether it is set. */
  email_verified_at: NullableTimestamp;
}

export interface UserRolesTable {
  user_id: string;
  role: string;
  created_at: Timestamp;
}

export interface SessionsTable {
  id: Generated<string>;
  user_id: string;
  created_at: Timestamp;
  last_used_at: Timestamp;
  /** Absolute end: created_at + SESSION_MAX_AGE, whatever the refreshes. */
  expires_at: Date;
  revoked_at: NullableTimestamp;
  revoked_reason: string | null;
  user_agent: string | null;
  ip: string | null;
}

export interface RefreshTokensTable {
  id: Generated<string>;
  session_id: string;
  /** Hex SHA-256 of the token; the token itself is never stored. */
  token_hash: string;
  created_at: Timestamp;
  expires_at: Date;
  rotated_at: NullableTimestamp;
  successor_id: string | null;
  /** The successor token, encrypted under a key derived from this token (see refresh-token.crypto.ts). */
  successor_box: string | null;
}

/**
 * Failed logins of one email (with or without an account) from one client address; the row
 * whose `ip` is `*` counts that email's failures from every address together.
 */
export interface LoginFailuresTable {
  /** As sign-in compares it: trimmed and lower-cased. */
  email: string;
  ip: string;
  failures: number;
  first_failed_at: Date;
  last_failed_at: Date;
  locked_until: Date | null;
}

export type OneTimeTokenPurpose = 'password_reset' | 'email_verification';

/** Password-reset and email-verification tokens: single use, a newer one supersedes the older. */
export interface OneTimeTokensTable {
  id: Generated<string>;
  user_id: string;
  purpose: OneTimeTokenPurpose;
  /** Hex SHA-256 of the token; the token itself is never stored here. */
  token_hash: string;
  created_at: Timestamp;
  expires_at: Date;
  used_at: NullableTimestamp;
  superseded_at: NullableTimestamp;
}

/** Each token purpose has its message: the kinds of mail are the purposes of one-time tokens. */
export type MailKind = OneTimeTokenPurpose;

/** Messages to send, written in the transaction of their token; see the migration for the life of a row. */
export interface MailOutboxTable {
  id: Generated<string>;
  kind: MailKind;
  recipient: string;
  user_id: string | null;
  /** The link with the token filled in; cleared once the message is sent or has failed for good. */
  link: string | null;
  expires_at: Date;
  created_at: Timestamp;
  attempts: Generated<number>;
  next_attempt_at: Timestamp;
  sent_at: NullableTimestamp;
  failed_at: NullableTimestamp;
  last_error: string | null;
}

export interface AuditEventsTable {
  id: Generated<string>;
  type: string;
  user_id: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  data: ColumnType<Record<string, unknown>, string, string>;
  created_at: Timestamp;
}

export interface Database {
  roles: RolesTable;
  role_permissions: RolePermissionsTable;
  role_permissions_revision: RolePermissionsRevisionTable;
  users: UsersTable;
  user_roles: UserRolesTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  login_failures: LoginFailuresTable;
  audit_events: AuditEventsTable;
  one_time_tokens: OneTimeTokensTable;
  mail_outbox: MailOutboxTable;
}

export type UserRow = Selectable<UsersTable>;
export type SessionRow = Selectable<SessionsTable>;
export type RefreshTokenRow = Selectable<RefreshTokensTable>;
export type NewAuditEvent = Insertable<AuditEventsTable>;
