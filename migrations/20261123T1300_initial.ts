import { type Kysely, sql } from 'kysely';

/**
 * Accounts, roles, sessions, refresh tokens and the audit trail.
 * Integrity lives here, not only in code: normalised unique emails, case-insensitive
 * unique usernames, cascading foreign keys, NOT NULLs and CHECKs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const statements = [
    sql`CREATE TABLE roles (
      name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
      description text NOT NULL
    )`,
    sql`CREATE TABLE role_permissions (
      role text NOT NULL REFERENCES roles (name) ON DELETE CASCADE ON UPDATE CASCADE,
      permission text NOT NULL CHECK (permission ~ '^[a-z]+:[a-z]+$'),
      PRIMARY KEY (role, permission)
    )`,
    sql`CREATE TABLE users (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      email text NOT NULL CHECK (email = lower(btrim(email)) AND length(email) BETWEEN 3 AND 254),
      username text CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
      password_hash text NOT NULL CHECK (password_hash LIKE '$2%'),
      is_active boolean NOT NULL DEFAULT true,
      failed_login_count integer NOT NULL DEFAULT 0 CHECK (failed_login_count >= 0),
      locked_until timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      last_login_at timestamptz
    )`,
    sql`CREATE UNIQUE INDEX users_email_key ON users (email)`,
    sql`CREATE UNIQUE INDEX users_username_key ON users (lower(username))`,
    sql`CREATE INDEX users_created_at_id_idx ON users (created_at, id)`,
    sql`CREATE TABLE user_roles (
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      role text NOT NULL REFERENCES roles (name) ON DELETE RESTRICT ON UPDATE CASCADE,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_id, role)
    )`,
    sql`CREATE TABLE sessions (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      created_at timestamptz NOT NULL DEFAULT now(),
      last_used_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      revoked_at timestamptz,
      revoked_reason text CHECK (revoked_reason IS NULL OR revoked_at IS NOT NULL),
      user_agent text CHECK (length(user_agent) <= 512),
      ip text CHECK (length(ip) <= 64),
      CHECK (expires_at > created_at)
    )`,
    sql`CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE revoked_at IS NULL`,
    sql`CREATE INDEX sessions_expires_at_idx ON sessions (expires_at)`,
    sql`CREATE TABLE refresh_tokens (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
      token_hash text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      rotated_at timestamptz,
      successor_id uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
      successor_box text,
      CHECK (expires_at > created_at),
      CHECK (successor_box IS NULL OR rotated_at IS NOT NULL)
    )`,
    sql`CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash)`,
    sql`CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id)`,
    sql`CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at)`,
    sql`CREATE TABLE audit_events (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      type text NOT NULL CHECK (type ~ '^[a-z]+\\.[a-z_]+$'),
      user_id uuid REFERENCES users (id) ON DELETE SET NULL,
      ip text,
      user_agent text,
      request_id text,
      data jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
      created_at timestamptz NOT NULL DEFAULT now()
    )`,
    sql`CREATE INDEX audit_events_created_at_id_idx ON audit_events (created_at, id)`,
    sql`CREATE INDEX audit_events_user_id_idx ON audit_events (user_id, created_at)`,
    sql`CREATE INDEX audit_events_type_idx ON audit_events (type, created_at)`,
    sql`INSERT INTO roles (name, description) VALUES
      ('user', 'Every account: reads and edits its own profile'),
      ('admin', 'Manages users and reads the audit trail')`,
    sql`INSERT INTO role_permissions (role, permission) VALUES
      ('user', 'profile:read'), ('user', 'profile:write'),
      ('admin', 'profile:read'), ('admin', 'profile:write'),
      ('admin', 'users:read'), ('admin', 'users:write'), ('admin', 'audit:read')`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['audit_events', 'refresh_tokens', 'sessions', 'user_roles', 'users', 'role_permissions', 'roles']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
  }
}
