import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import type { DB } from '../../src/db/database';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { registerUser, uniqueEmail, uniqueUsername } from '../helpers/factories';
import { violationOf } from '../helpers/violations';

/** A syntactically valid bcrypt hash; these rows are never logged in with. */
const BCRYPT_LIKE = `$2a$04$${'a'.repeat(53)}`;

/** SQLSTATEs of PostgreSQL's integrity violations. */
const UNIQUE = '23505';
const CHECK = '23514';
const FOREIGN_KEY = '23503';

/** Inserts a user row directly, bypassing the service, to see what the schema alone allows. */
async function insertUserRow(db: DB, row: { email?: string; username?: string | null } = {}): Promise<string> {
  const inserted = await db
    .insertInto('users')
    .values({ email: row.email ?? uniqueEmail('schema'), username: row.username ?? null, password_hash: BCRYPT_LIKE })
    .returning('id')
    .executeTakeFirstOrThrow();
  return inserted.id;
}

describe.each(DATABASE_KINDS)('schema constraints (%s)', (kind) => {
  let h: Harness;
  let db: DB;
  beforeAll(async () => {
    h = await createHarness({ kind });
    db = h.database.db;
  });
  afterAll(async () => {
    await h.close();
  });

  describe('users', () => {
    it('when a user with a normalised email is inserted, then the schema accepts it', async () => {
      const email = uniqueEmail('plain');

      const id = await insertUserRow(db, { email });

      const row = await db.selectFrom('users').select(['email', 'is_active']).where('id', '=', id).executeTakeFirstOrThrow();
      expect(row).toEqual({ email, is_active: true });
    });

    it.each([
      ['upper case', (e: string) => e.replace(/^[a-z]/, (c) => c.toUpperCase())],
      ['all upper case', (e: string) => e.toUpperCase()],
      ['a leading space', (e: string) => ` ${e}`],
      ['a trailing space', (e: string) => `${e} `],
    ])('when an email with %s is inserted, then the CHECK refuses it', async (_what, denormalise) => {
      const violation = await violationOf(insertUserRow(db, { email: denormalise(uniqueEmail('check')) }));

      expect(violation).toEqual({ code: CHECK, constraint: 'users_email_check' });
    });

    it('when an email is inserted twice, then the unique index refuses the second', async () => {
      const email = uniqueEmail('dup');
      await insertUserRow(db, { email });

      const violation = await violationOf(insertUserRow(db, { email }));

      expect(violation).toEqual({ code: UNIQUE, constraint: 'users_email_key' });
    });

    it('when usernames differ only in case, then the unique index refuses the second', async () => {
      const suffix = randomBytes(8).toString('hex');
      await insertUserRow(db, { username: `Ann_${suffix}` });

      const violation = await violationOf(insertUserRow(db, { username: `ann_${suffix}` }));

      expect(violation).toEqual({ code: UNIQUE, constraint: 'users_username_key' });
    });

    it('when many users have no username, then the unique index does not mind', async () => {
      await insertUserRow(db, { username: null });

      expect(await violationOf(insertUserRow(db, { username: null }))).toBeUndefined();
    });

    it('when a failed-login counter (login_failures) is set below one failure, then the CHECK refuses it', async () => {
      const at = new Date();
      const counter = { email: uniqueEmail('counter'), ip: '203.0.113.1', failures: 0, first_failed_at: at, last_failed_at: at };

      const violation = await violationOf(db.insertInto('login_failures').values(counter).execute());

      expect(violation).toEqual({ code: CHECK, constraint: 'login_failures_failures_check' });
    });
  });

  describe('foreign keys', () => {
    it('when a user is given an unknown role, then the foreign key refuses it', async () => {
      const id = await insertUserRow(db);
      const role = `ghost_${randomBytes(4).toString('hex')}`;

      const violation = await violationOf(db.insertInto('user_roles').values({ user_id: id, role }).execute());

      expect(violation).toMatchObject({ code: FOREIGN_KEY });
    });

    it('when a session names a user that does not exist, then the foreign key refuses it', async () => {
      const at = new Date();

      const violation = await violationOf(
        db
          .insertInto('sessions')
          .values({ user_id: randomUUID(), created_at: at, last_used_at: at, expires_at: new Date(at.getTime() + 60_000) })
          .execute(),
      );

      expect(violation).toMatchObject({ code: FOREIGN_KEY });
    });

    it('when a user is deleted, then sessions, refresh tokens and roles cascade and audit events keep a null user', async () => {
      const user = await registerUser(h.app, { username: uniqueUsername() });
      // A rotation too, so the session holds a token chain (successor_id points within the table).
      await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken }).expect(200);
      const sessionIds = (await db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).map((s) => s.id);
      const eventIds = (await db.selectFrom('audit_events').select('id').where('user_id', '=', user.id).execute()).map((e) => e.id);
      const tokens = await db.selectFrom('refresh_tokens').select('id').where('session_id', 'in', sessionIds).execute();
      // Something to cascade, or the test proves nothing.
      expect(sessionIds).toHaveLength(1);
      expect(eventIds.length).toBeGreaterThan(0);
      expect(tokens).toHaveLength(2);

      await db.deleteFrom('users').where('id', '=', user.id).execute();

      expect(await db.selectFrom('sessions').select('id').where('id', 'in', sessionIds).execute()).toEqual([]);
      expect(await db.selectFrom('refresh_tokens').select('id').where('session_id', 'in', sessionIds).execute()).toEqual([]);
      expect(await db.selectFrom('user_roles').select('role').where('user_id', '=', user.id).execute()).toEqual([]);
      const events = await db.selectFrom('audit_events').select(['id', 'user_id']).where('id', 'in', eventIds).execute();
      expect(events).toHaveLength(eventIds.length);
      expect(events.every((e) => e.user_id === null)).toBe(true);
    });
  });

  describe('refresh tokens', () => {
    it.each([
      ['not hex', 'z'.repeat(64)],
      ['upper-case hex', 'A'.repeat(64)],
      ['too short', 'a'.repeat(63)],
      ['a raw token rather than a hash', randomBytes(32).toString('base64url')],
    ])('when token_hash is %s, then the CHECK refuses it', async (_what, tokenHash) => {
      const user = await registerUser(h.app);
      const session = await db.selectFrom('sessions').select('id').where('user_id', '=', user.id).executeTakeFirstOrThrow();

      const violation = await violationOf(
        db
          .insertInto('refresh_tokens')
          .values({ session_id: session.id, token_hash: tokenHash, expires_at: new Date(Date.now() + 60_000) })
          .execute(),
      );

      expect(violation).toMatchObject({ code: CHECK });
    });
  });

  describe('seeded roles', () => {
    it('when migrated, then the user and admin roles carry the contract’s permissions', async () => {
      const rows = await db.selectFrom('role_permissions').select(['role', 'permission']).where('role', 'in', ['user', 'admin']).execute();

      const byRole = (role: string) =>
        rows
          .filter((r) => r.role === role)
          .map((r) => r.permission)
          .sort();
      expect(byRole('user')).toEqual(['profile:read', 'profile:write']);
      expect(byRole('admin')).toEqual(['audit:read', 'profile:read', 'profile:write', 'users:read', 'users:write']);
    });
  });
});
