import { createHash, randomUUID } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import type { DB } from '../../src/db/database';

/** A password that passes the policy. */
export const GOOD_PASSWORD = 'correct horse battery staple';

export function uniqueEmail(prefix = 'user'): string {
  return `${prefix}-${randomUUID()}@example.test`;
}

export function uniqueUsername(): string {
  return `u_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
}

export interface RegisteredUser {
  id: string;
  email: string;
  password: string;
  username: string | null;
  accessToken: string;
  refreshToken: string;
}

/** Registers a user through the API (the only way a test makes a user) and returns its credentials. */
export async function registerUser(
  app: Express,
  overrides: { email?: string; password?: string; username?: string } = {},
): Promise<RegisteredUser> {
  const email = overrides.email ?? uniqueEmail();
  const password = overrides.password ?? GOOD_PASSWORD;
  const body: Record<string, string> = { email, password };
  if (overrides.username) body.username = overrides.username;
  const res = await request(app).post('/auth/register').send(body);
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(res.body)}`);
  return {
    id: res.body.user.id,
    email: res.body.user.email,
    password,
    username: res.body.user.username,
    accessToken: res.body.accessToken,
    refreshToken: res.body.refreshToken,
  };
}

/** Asserts a problem+json response with a given status and code. */
export function expectProblem(res: request.Response, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.code }).toEqual({ status, code });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toEqual(
    expect.objectContaining({
      type: expect.any(String),
      title: expect.any(String),
      status,
      detail: expect.any(String),
      requestId: expect.any(String),
    }),
  );
}

/**
 * Makes a registered user an admin, as `npm run user:grant` would: one row in user_roles.
 * Permissions are read from the database on every request, so the user's existing token
 * carries the new rights at once.
 */
export async function makeAdmin(db: DB, userId: string): Promise<void> {
  await db
    .insertInto('user_roles')
    .values({ user_id: userId, role: 'admin' })
    .onConflict((oc) => oc.columns(['user_id', 'role']).doNothing())
    .execute();
}

/** Registers a user and makes it an admin. */
export async function registerAdmin(app: Express, db: DB): Promise<RegisteredUser> {
  const admin = await registerUser(app, { email: uniqueEmail('admin') });
  await makeAdmin(db, admin.id);
  return admin;
}

/** The `Authorization` header for an access token. */
export function bearer(accessToken: string): { Authorization: string } {
  return { Authorization: `Bearer ${accessToken}` };
}

/** Hex SHA-256, computed here rather than with the service's own helper. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The session id (`sid` claim) of an access token the service issued. */
export function sessionIdOf(accessToken: string): string {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string };
  return payload.sid;
}

/** The hashes of a session's refresh tokens that have not been rotated: its live ones. */
export async function liveRefreshTokenHashes(db: DB, sessionId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('refresh_tokens')
    .select('token_hash')
    .where('session_id', '=', sessionId)
    .where('rotated_at', 'is', null)
    .execute();
  return rows.map((row) => row.token_hash);
}
