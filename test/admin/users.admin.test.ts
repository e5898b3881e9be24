import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { bearer, expectProblem, registerAdmin, registerUser, type RegisteredUser } from '../helpers/factories';

interface AdminUser {
  id: string;
  email: string;
  username: string | null;
  roles: string[];
  createdAt: string;
  lastLoginAt: string | null;
  emailVerified: boolean;
  isActive: boolean;
}

interface UsersPage {
  items: AdminUser[];
  nextCursor: string | null;
}

/** The fields of CONTRACT.md's User, plus isActive: nothing else (no hash, no failure counts). */
const ADMIN_USER_KEYS = ['createdAt', 'email', 'emailVerified', 'id', 'isActive', 'lastLoginAt', 'roles', 'username'];

/** A walk can never need more pages than this; reaching it means the cursor loops. */
const MAX_PAGES = 10_000;

async function getPage(h: Harness, admin: RegisteredUser, query: string): Promise<UsersPage> {
  const res = await request(h.app).get(`/admin/users${query}`).set(bearer(admin.accessToken));
  expect(res.status).toBe(200);
  return res.body as UsersPage;
}

const pageQuery = (limit: number, cursor: string | null) => `?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;

/**
 * Follows nextCursor from the first page. `between(n)` runs after page n is read, before the
 * next is asked for. With `ours`, the walk stops at the first page holding a user the test did
 * not create: the test put its users before every other row (see {@link beforeEveryone}), so
 * nothing of its own can follow, and the shared database's other rows need not be crossed.
 */
async function walk(
  h: Harness,
  admin: RegisteredUser,
  limit: number,
  options: { ours?: () => Set<string>; between?: (page: number) => Promise<void> } = {},
): Promise<UsersPage[]> {
  const pages: UsersPage[] = [];
  const seen = new Set<string>();
  let cursor: string | null = null;
  for (let n = 1; n <= MAX_PAGES; n += 1) {
    const page = await getPage(h, admin, pageQuery(limit, cursor));
    pages.push(page);
    // A page repeating what came before means the cursor went back: stop, the caller's checks will say so.
    const looped = page.items.some((item) => seen.has(item.id));
    for (const item of page.items) seen.add(item.id);
    const ours = options.ours?.();
    if (looped || page.nextCursor === null || (ours && page.items.some((item) => !ours.has(item.id)))) return pages;
    await options.between?.(n);
    cursor = page.nextCursor;
  }
  throw new Error(`no last page after ${MAX_PAGES} pages`);
}

const idsOf = (pages: UsersPage[]) => pages.flatMap((page) => page.items.map((item) => item.id));

/** How often each id appears. */
function tally(ids: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

function expectNoRepeats(ids: string[]): void {
  const repeated = [...tally(ids)].filter(([, count]) => count > 1).map(([id]) => id);
  expect(repeated).toEqual([]);
}

/**
 * Sets the test clock a day before the oldest user in the database, so the users the test
 * makes next come first in the oldest-first listing. On the shared PostgreSQL the first pages
 * then hold this test's users, whatever other suites have stored.
 */
async function beforeEveryone(h: Harness): Promise<Date> {
  const row = await h.database.db
    .selectFrom('users')
    .select((eb) => eb.fn.min('created_at').as('oldest'))
    .executeTakeFirst();
  const oldest = row?.oldest ? new Date(row.oldest) : h.clock.now();
  const at = new Date(oldest.getTime() - 24 * 60 * 60 * 1000);
  h.clock.set(at);
  return at;
}

async function registerMany(h: Harness, count: number, secondsApart: number): Promise<RegisteredUser[]> {
  const users: RegisteredUser[] = [];
  for (let i = 0; i < count; i += 1) {
    h.clock.advance(secondsApart);
    users.push(await registerUser(h.app));
  }
  return users;
}

describe.each(DATABASE_KINDS)('GET /admin/users (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  describe('items', () => {
    it('when an admin lists users, then each item is a User with isActive and nothing more', async () => {
      const at = await beforeEveryone(h);
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);

      const page = await getPage(h, admin, '?limit=10');

      expect(page.items.find((item) => item.id === user.id)).toEqual({
        id: user.id,
        email: user.email,
        username: null,
        roles: ['user'],
        createdAt: at.toISOString(),
        lastLoginAt: null,
        emailVerified: false,
        isActive: true,
      });
      expect(page.items.find((item) => item.id === admin.id)?.roles).toEqual(['admin', 'user']);
      for (const item of page.items) expect(Object.keys(item).sort()).toEqual(ADMIN_USER_KEYS);
    });

    it('when users are listed, then the response never carries a password hash', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const res = await request(h.app).get('/admin/users?limit=100').set(bearer(admin.accessToken));
      expect(res.status).toBe(200);
      expect(JSON.stringify(res.body)).not.toMatch(/\$2[aby]?\$/);
    });
  });

  describe('limit', () => {
    it.each(['0', '101', 'abc', '-1', '1.5', ''])('when limit is %p, then it answers 422 VALIDATION_FAILED on limit', async (limit) => {
      const admin = await registerAdmin(h.app, h.database.db);
      const res = await request(h.app).get(`/admin/users?limit=${limit}`).set(bearer(admin.accessToken));
      expectProblem(res, 422, 'VALIDATION_FAILED');
      expect(res.body.errors).toEqual([expect.objectContaining({ path: 'limit' })]);
    });

    it.each([1, 100])('when limit is %p, then a page holds at most that many users', async (limit) => {
      const admin = await registerAdmin(h.app, h.database.db);
      await registerUser(h.app);
      const page = await getPage(h, admin, `?limit=${limit}`);
      expect(page.items.length).toBeGreaterThanOrEqual(Math.min(limit, 2));
      expect(page.items.length).toBeLessThanOrEqual(limit);
    });

    it('when no limit is given and more than 50 users exist, then the page holds 50 and a cursor', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const row = await h.database.db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .executeTakeFirstOrThrow();
      await registerMany(h, Math.max(0, 51 - Number(row.count)), 0);

      const page = await getPage(h, admin, '');

      expect(page.items).toHaveLength(50);
      expect(page.nextCursor).toEqual(expect.any(String));
    });
  });

  describe('cursor', () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    it.each([
      ['not base64 JSON', 'garbage'],
      ['JSON of the wrong shape', encode({ at: '2026-01-01T00:00:00.000000Z', id: randomUUID() })],
      ['a millisecond timestamp', encode(['2026-01-01T00:00:00.000Z', randomUUID()])],
      ['an id that is not a uuid', encode(['2026-01-01T00:00:00.000000Z', 'not-a-uuid'])],
      ['an SQL fragment', encode(["2026-01-01T00:00:00.000000Z' or '1'='1", randomUUID()])],
      ['too long', 'a'.repeat(201)],
      // The right shape, but no instant: PostgreSQL refuses these mid-query, or reads them as another time.
      ['month 13', encode(['2026-13-01T00:00:00.000000Z', randomUUID()])],
      ['February 30', encode(['2026-02-30T00:00:00.000000Z', randomUUID()])],
      ['hour 25', encode(['2026-01-01T25:00:00.000000Z', randomUUID()])],
      ['hour 24', encode(['2026-01-01T24:00:00.000000Z', randomUUID()])],
      ['minute 60', encode(['2026-01-01T00:60:00.000000Z', randomUUID()])],
      ['second 60', encode(['2026-01-01T23:59:60.000000Z', randomUUID()])],
      ['day 00', encode(['2026-01-00T00:00:00.000000Z', randomUUID()])],
      ['year 0', encode(['0000-01-01T00:00:00.000000Z', randomUUID()])],
    ])('when the cursor is %s, then it answers 422 VALIDATION_FAILED on cursor', async (_name, cursor) => {
      const admin = await registerAdmin(h.app, h.database.db);
      const res = await request(h.app)
        .get(`/admin/users?cursor=${encodeURIComponent(cursor)}`)
        .set(bearer(admin.accessToken));
      expectProblem(res, 422, 'VALIDATION_FAILED');
      expect(res.body.errors).toEqual([expect.objectContaining({ path: 'cursor' })]);
    });

    it.each([
      ['the first instant of year 1', '0001-01-01T00:00:00.000000Z'],
      ['February 29 of a leap year', '2028-02-29T23:59:59.999999Z'],
      ['the last instant of year 9999', '9999-12-31T23:59:59.999999Z'],
    ])('when the cursor holds %s, then it is a real position and the page is answered', async (_name, at) => {
      const admin = await registerAdmin(h.app, h.database.db);
      const res = await request(h.app)
        .get(`/admin/users?cursor=${encode([at, randomUUID()])}`)
        .set(bearer(admin.accessToken));
      expect(res.status).toBe(200);
    });
  });

  describe('pagination', () => {
    it('when users are paged 2 at a time, then each of them is visited exactly once, in the order they were created', async () => {
      await beforeEveryone(h);
      const admin = await registerAdmin(h.app, h.database.db);
      const users = await registerMany(h, 7, 1);
      const ours = new Set([admin.id, ...users.map((u) => u.id)]);

      const pages = await walk(h, admin, 2, { ours: () => ours });

      const ids = idsOf(pages);
      expectNoRepeats(ids);
      expect(ids.filter((id) => ours.has(id))).toEqual([admin.id, ...users.map((u) => u.id)]);
      for (const page of pages) expect(page.items.length).toBeLessThanOrEqual(2);
      for (const page of pages.slice(0, -1)) expect(page.items).toHaveLength(2);
    });

    it('when users are created in the same millisecond, then paging still visits each exactly once, ordered by id', async () => {
      await beforeEveryone(h);
      // The frozen clock gives every registration the same created_at: only the id breaks the tie.
      const admin = await registerAdmin(h.app, h.database.db);
      const users = await registerMany(h, 6, 0);
      const ours = [admin.id, ...users.map((u) => u.id)];

      const pages = await walk(h, admin, 2, { ours: () => new Set(ours) });

      const ids = idsOf(pages);
      expectNoRepeats(ids);
      expect(ids.filter((id) => ours.includes(id))).toEqual([...ours].sort());
    });

    it('when created_at values differ only in microseconds, then paging neither repeats nor skips a user', async () => {
      await beforeEveryone(h);
      const admin = await registerAdmin(h.app, h.database.db);
      const users = await registerMany(h, 5, 0);
      // Rows written by another writer (a migration, an import) carry now()'s microseconds; a
      // cursor cut to JavaScript's milliseconds would land before them all and repeat them.
      // The microseconds run against id order, so an order by id alone would be caught too.
      const byIdDescending = [...users].sort((a, b) => (a.id < b.id ? 1 : -1));
      for (const [index, user] of byIdDescending.entries()) {
        await h.database.db
          .updateTable('users')
          .set({ created_at: sql<Date>`created_at + ${index + 1} * interval '1 microsecond'` })
          .where('id', '=', user.id)
          .execute();
      }
      const ours = [admin.id, ...byIdDescending.map((u) => u.id)];

      for (const limit of [1, 2, 3]) {
        const ids = idsOf(await walk(h, admin, limit, { ours: () => new Set(ours) }));
        expectNoRepeats(ids);
        expect(ids.filter((id) => ours.includes(id))).toEqual(ours);
      }
    });

    it.each([
      ['later', 1],
      ['the same', 0],
    ])(
      'when users are registered with %s timestamps between page fetches, then every user there at the start appears exactly once and none twice',
      async (_name, secondsApart) => {
        await beforeEveryone(h);
        const admin = await registerAdmin(h.app, h.database.db);
        const initial = await registerMany(h, 6, secondsApart);
        const added: RegisteredUser[] = [];
        const ours = () => new Set([admin.id, ...initial.map((u) => u.id), ...added.map((u) => u.id)]);

        const pages = await walk(h, admin, 2, {
          ours,
          between: async (page) => {
            if (page <= 2) added.push(...(await registerMany(h, 2, secondsApart)));
          },
        });

        expect(added).toHaveLength(4);
        const ids = idsOf(pages);
        expectNoRepeats(ids);
        const counts = tally(ids);
        for (const user of [admin, ...initial]) expect({ id: user.id, seen: counts.get(user.id) ?? 0 }).toEqual({ id: user.id, seen: 1 });
        if (secondsApart > 0) {
          // Created after the cursor's position, so they are still ahead of it.
          expect(ids.filter((id) => ours().has(id))).toEqual([admin, ...initial, ...added].map((u) => u.id));
        }
      },
    );

    it('when the whole table is paged, then every page holds users, no user repeats and the last page has no cursor', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const row = await h.database.db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .executeTakeFirstOrThrow();

      const pages = await walk(h, admin, 100);

      for (const page of pages) expect(page.items.length).toBeGreaterThan(0);
      expect(pages.at(-1)!.nextCursor).toBeNull();
      const ids = idsOf(pages);
      expectNoRepeats(ids);
      // Other suites may add users meanwhile on the shared database; none may go missing.
      expect(ids.length).toBeGreaterThanOrEqual(Number(row.count));
      expect(ids).toContain(admin.id);
    });
  });
});

describe('GET /admin/users page boundaries (pglite, a database of its own)', () => {
  let h: Harness;
  let admin: RegisteredUser;
  let users: RegisteredUser[];
  beforeAll(async () => {
    h = await createHarness();
    admin = await registerAdmin(h.app, h.database.db);
    users = await registerMany(h, 3, 1);
  });
  afterAll(async () => {
    await h.close();
  });

  it.each([
    [4, [4]],
    [2, [2, 2]],
    [3, [3, 1]],
    [5, [4]],
    [1, [1, 1, 1, 1]],
  ])('when 4 users are paged with limit %p, then the pages hold %p users and only the last has no cursor', async (limit, sizes) => {
    const pages = await walk(h, admin, limit);

    expect(pages.map((page) => page.items.length)).toEqual(sizes);
    expect(pages.map((page) => page.nextCursor === null)).toEqual(sizes.map((_, i) => i === sizes.length - 1));
    expect(idsOf(pages)).toEqual([admin, ...users].map((u) => u.id));
  });
});
