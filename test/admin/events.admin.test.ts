import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { bearer, expectProblem, registerAdmin, registerUser, type RegisteredUser } from '../helpers/factories';

interface AuditEvent {
  id: string;
  type: string;
  userId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  createdAt: string;
  data: Record<string, unknown>;
}

interface EventsPage {
  items: AuditEvent[];
  nextCursor: string | null;
}

const EVENT_KEYS = ['createdAt', 'data', 'id', 'ip', 'requestId', 'type', 'userAgent', 'userId'];
const WRONG_PASSWORD = 'certainly not the password';
const MAX_PAGES = 1_000;

async function getEvents(h: Harness, admin: RegisteredUser, query: Record<string, string | number>): Promise<EventsPage> {
  const res = await request(h.app).get('/admin/events').query(query).set(bearer(admin.accessToken));
  expect(res.status).toBe(200);
  return res.body as EventsPage;
}

/** Follows nextCursor to the last page. */
async function walk(h: Harness, admin: RegisteredUser, query: Record<string, string | number>): Promise<EventsPage[]> {
  const pages: EventsPage[] = [];
  let cursor: string | null = null;
  for (let n = 0; n < MAX_PAGES; n += 1) {
    const page = await getEvents(h, admin, cursor ? { ...query, cursor } : query);
    pages.push(page);
    if (page.nextCursor === null) return pages;
    cursor = page.nextCursor;
  }
  throw new Error(`no last page after ${MAX_PAGES} pages`);
}

/**
 * One user's story, a second apart so "newest first" has one right answer:
 * registered, logged in, a failed login, a refresh, a logout. Returns the types newest first.
 */
async function story(h: Harness): Promise<{ user: RegisteredUser; newestFirst: string[] }> {
  const user = await registerUser(h.app);
  h.clock.advance(1);
  const login = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
  expect(login.status).toBe(200);
  h.clock.advance(1);
  expect((await request(h.app).post('/auth/login').send({ email: user.email, password: WRONG_PASSWORD })).status).toBe(401);
  h.clock.advance(1);
  const refreshed = await request(h.app).post('/auth/refresh').send({ refreshToken: login.body.refreshToken });
  expect(refreshed.status).toBe(200);
  h.clock.advance(1);
  expect((await request(h.app).post('/auth/logout').send({ refreshToken: refreshed.body.refreshToken })).status).toBe(204);
  h.clock.advance(1);
  return { user, newestFirst: ['user.logged_out', 'token.refreshed', 'auth.failed', 'user.logged_in', 'user.registered'] };
}

describe.each(DATABASE_KINDS)('GET /admin/events (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  describe('filters', () => {
    it('when filtered by userId, then it lists exactly that user’s events, newest first', async () => {
      const { user, newestFirst } = await story(h);
      await story(h);
      const admin = await registerAdmin(h.app, h.database.db);

      const page = await getEvents(h, admin, { userId: user.id });

      expect(page.items.map((event) => event.type)).toEqual(newestFirst);
      for (const event of page.items) expect(event.userId).toBe(user.id);
      const times = page.items.map((event) => Date.parse(event.createdAt));
      expect(times).toEqual([...times].sort((a, b) => b - a));
      expect(new Set(times).size).toBe(times.length);
      expect(page.nextCursor).toBeNull();
    });

    it('when events are listed, then each has exactly the fields of CONTRACT.md section 8', async () => {
      const { user } = await story(h);
      const admin = await registerAdmin(h.app, h.database.db);

      const page = await getEvents(h, admin, { userId: user.id });

      for (const event of page.items) {
        expect(Object.keys(event).sort()).toEqual(EVENT_KEYS);
        expect(event.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
        expect(event.data).toEqual(expect.any(Object));
      }
    });

    it('when filtered by userId and type, then only that user’s events of that type come back', async () => {
      const { user } = await story(h);
      const admin = await registerAdmin(h.app, h.database.db);

      const page = await getEvents(h, admin, { userId: user.id, type: 'auth.failed' });

      expect(page.items).toEqual([expect.objectContaining({ userId: user.id, type: 'auth.failed', data: { reason: 'wrong_password' } })]);
    });

    it.each(['user.registered', 'token.refreshed', 'user.logged_out'])(
      'when filtered by type %p alone, then every item is of that type',
      async (type) => {
        await story(h);
        const admin = await registerAdmin(h.app, h.database.db);

        const page = await getEvents(h, admin, { type, limit: 100 });

        expect(page.items.length).toBeGreaterThan(0);
        for (const event of page.items) expect(event.type).toBe(type);
      },
    );

    it('when filtered by a user id nobody has, then the list is empty and has no cursor', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      expect(await getEvents(h, admin, { userId: randomUUID() })).toEqual({ items: [], nextCursor: null });
    });
  });

  describe('validation', () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    it.each([
      ['type', 'user.exploded'],
      ['type', 'USER.REGISTERED'],
      ['type', ''],
      ['userId', 'nope'],
      ['userId', '12345'],
      ['userId', `${randomUUID()}x`],
      ['limit', '0'],
      ['limit', '101'],
      ['limit', 'abc'],
      ['cursor', 'garbage'],
      ['cursor', encode(['2026-01-01T00:00:00.000Z', randomUUID()])],
      // The right shape, but no instant: PostgreSQL refuses these mid-query, or reads them as another time.
      ['cursor', encode(['2026-13-01T00:00:00.000000Z', randomUUID()])],
      ['cursor', encode(['2026-02-30T00:00:00.000000Z', randomUUID()])],
      ['cursor', encode(['2026-01-01T25:00:00.000000Z', randomUUID()])],
      ['cursor', encode(['2026-01-01T24:00:00.000000Z', randomUUID()])],
      ['cursor', encode(['2026-01-01T23:59:60.000000Z', randomUUID()])],
      ['cursor', encode(['0000-01-01T00:00:00.000000Z', randomUUID()])],
    ])('when %s is %p, then it answers 422 VALIDATION_FAILED on that parameter', async (name, value) => {
      const admin = await registerAdmin(h.app, h.database.db);

      const res = await request(h.app)
        .get('/admin/events')
        .query({ [name]: value })
        .set(bearer(admin.accessToken));

      expectProblem(res, 422, 'VALIDATION_FAILED');
      expect(res.body.errors).toEqual([expect.objectContaining({ path: name })]);
    });
  });

  describe('pagination', () => {
    it('when a user’s events are paged 2 at a time, then each is visited exactly once, in the order of the unpaged list', async () => {
      const { user } = await story(h);
      // Three more failures at one instant: equal timestamps, which only the id orders.
      for (let i = 0; i < 3; i += 1) {
        expect((await request(h.app).post('/auth/login').send({ email: user.email, password: WRONG_PASSWORD })).status).toBe(401);
      }
      const admin = await registerAdmin(h.app, h.database.db);
      const all = await getEvents(h, admin, { userId: user.id, limit: 100 });
      expect(all.items).toHaveLength(8);

      const pages = await walk(h, admin, { userId: user.id, limit: 2 });

      expect(pages.map((page) => page.items.length)).toEqual([2, 2, 2, 2]);
      expect(pages.flatMap((page) => page.items.map((event) => event.id))).toEqual(all.items.map((event) => event.id));
    });

    it('when paging with a type filter, then the cursor keeps the filter', async () => {
      const { user } = await story(h);
      for (let i = 0; i < 2; i += 1) {
        h.clock.advance(1);
        expect((await request(h.app).post('/auth/login').send({ email: user.email, password: WRONG_PASSWORD })).status).toBe(401);
      }
      const admin = await registerAdmin(h.app, h.database.db);

      const pages = await walk(h, admin, { userId: user.id, type: 'auth.failed', limit: 2 });

      expect(pages.map((page) => page.items.length)).toEqual([2, 1]);
      const items = pages.flatMap((page) => page.items);
      for (const event of items) expect(event).toEqual(expect.objectContaining({ userId: user.id, type: 'auth.failed' }));
      expect(new Set(items.map((event) => event.id)).size).toBe(3);
    });

    it('when new events arrive between page fetches, then the pages already begun neither repeat nor skip an older event', async () => {
      const { user } = await story(h);
      const admin = await registerAdmin(h.app, h.database.db);
      const before = await getEvents(h, admin, { userId: user.id, limit: 100 });

      const first = await getEvents(h, admin, { userId: user.id, limit: 2 });
      // Newer than everything listed: it belongs before the first page, not in the rest.
      expect((await request(h.app).post('/auth/login').send({ email: user.email, password: user.password })).status).toBe(200);
      const rest = await walk(h, admin, { userId: user.id, limit: 2, cursor: first.nextCursor! });

      const ids = [...first.items, ...rest.flatMap((page) => page.items)].map((event) => event.id);
      expect(ids).toEqual(before.items.map((event) => event.id));
    });
  });
});
