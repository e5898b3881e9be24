import { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { DB } from '../../src/db/database';
import type { ApiVerification, DatabaseSession, RedisKeyTtl } from './checks';
import { Stopped } from './http';
import { type LoadState, newSession, refreshRequest, type SoakSession, type SoakUser } from './load';
import { answerLabel } from './stats';

/**
 * After the load, through the API, for every user the soak registered: each live session's
 * chain head refreshes (so it was the live token), /users/me/sessions lists exactly the
 * sessions the soak holds live (none lost, none extra), and the password still logs in (that
 * session is logged out again). Stops at `deadline` (ms); users not reached are counted.
 */
export async function verifyThroughApi(state: LoadState, concurrency: number, deadline: number): Promise<ApiVerification> {
  const result: ApiVerification = {
    users: state.users.length,
    loggedIn: 0,
    heads: { same: 0, total: 0 },
    listings: { same: 0, total: 0 },
    notReached: 0,
    failures: [],
  };
  const queue = [...state.users];
  state.http.stopAt = deadline;
  const worker = async () => {
    for (let user = queue.shift(); user; user = queue.shift()) {
      try {
        await verifyUser(state, user, result);
      } catch (error) {
        if (!(error instanceof Stopped)) throw error;
        result.notReached += 1 + queue.length;
        queue.length = 0;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  state.http.stopAt = Infinity;
  return result;
}

async function verifyUser(state: LoadState, user: SoakUser, result: ApiVerification): Promise<void> {
  const { http } = state;
  // An uncertain session (a refresh that got a 5xx or no answer) is checked too: its head is
  // still live if that refresh never reached the rotation, and an honest retry brings the
  // successor if it did (within the grace window).
  for (const session of user.sessions.filter((s) => s.state === 'live' || s.state === 'uncertain')) {
    result.heads.total++;
    const answer = await http.send(refreshRequest('check: refresh', session.refreshToken));
    const body = answer.body as { accessToken?: string; refreshToken?: string } | undefined;
    if (answer.status === 200 && body?.accessToken && body.refreshToken) {
      result.heads.same++;
      session.state = 'live';
      session.accessToken = body.accessToken;
      session.refreshToken = body.refreshToken;
    } else {
      session.state = 'lost';
      result.failures.push(
        `session ${session.id} of ${user.email}: its chain head was refused (${answerLabel(answer.status, answer.code)})`,
      );
    }
  }

  const live = user.sessions.filter((s) => s.state === 'live');
  if (live.length > 0) {
    result.listings.total++;
    const answer = await http.send({
      kind: 'check: sessions',
      method: 'GET',
      path: '/users/me/sessions',
      token: live[0]!.accessToken,
      expect: [{ status: 200 }],
    });
    const listed = Array.isArray(answer.body) ? (answer.body as Array<{ id: string }>).map((s) => s.id).sort() : undefined;
    const expected = live.map((s) => s.id).sort();
    if (listed && listed.join() === expected.join()) result.listings.same++;
    else {
      const what = listed ? `${listed.length} listed, ${expected.length} expected` : answerLabel(answer.status, answer.code);
      result.failures.push(`sessions of ${user.email}: ${what}`);
    }
  }

  const login = await http.send({
    kind: 'check: login',
    method: 'POST',
    path: '/auth/login',
    body: { email: user.email, password: user.password },
    expect: [{ status: 200 }],
  });
  const tokens = login.body as { accessToken?: string; refreshToken?: string } | undefined;
  if (login.status !== 200 || !tokens?.accessToken || !tokens.refreshToken) {
    result.failures.push(`login of ${user.email}: ${answerLabel(login.status, login.code)}`);
    return;
  }
  result.loggedIn++;
  const session: SoakSession = newSession(user.id, { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken });
  user.sessions.push(session);
  const out = await http.send({
    kind: 'check: logout',
    method: 'POST',
    path: '/auth/logout',
    body: { refreshToken: session.refreshToken },
    expect: [{ status: 204 }],
  });
  if (out.status === 204) session.state = 'ended';
}

/** The soak's users' sessions as the database holds them, with their live refresh tokens counted. */
export async function databaseSessions(db: DB, userIds: readonly string[]): Promise<{ usersFound: number; rows: DatabaseSession[] }> {
  let usersFound = 0;
  const rows: DatabaseSession[] = [];
  for (let i = 0; i < userIds.length; i += 500) {
    const ids = userIds.slice(i, i + 500);
    const found = await sql<{ n: number }>`select count(*)::int as n from users where id = any(${ids}::uuid[])`.execute(db);
    usersFound += found.rows[0]?.n ?? 0;
    const sessions = await sql<{ id: string; user_id: string; revoked: boolean; live: number }>`
      select s.id, s.user_id, s.revoked_at is not null as revoked,
        (count(t.id) filter (
          where t.rotated_at is null and t.expires_at > now() and s.revoked_at is null and s.expires_at > now()
        ))::int as live
      from sessions s left join refresh_tokens t on t.session_id = s.id
      where s.user_id = any(${ids}::uuid[])
      group by s.id`.execute(db);
    for (const row of sessions.rows) rows.push({ id: row.id, userId: row.user_id, revoked: row.revoked, liveTokens: row.live });
  }
  return { usersFound, rows };
}

/** `*`, `?`, `[` and `\` stand for themselves in a SCAN pattern only when escaped. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * Every key under `prefix` with its PTTL, and whether `probeKey` (the key of the last nonce
 * the soak sent) exists: proof that the server keeps its nonces in this Redis.
 */
export async function redisKeyTtls(
  url: string,
  prefix: string,
  probeKey: string | undefined,
): Promise<{ keys: RedisKeyTtl[]; probed: boolean }> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, enableOfflineQueue: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const probed = probeKey !== undefined && (await redis.exists(probeKey)) === 1;
    const keys: RedisKeyTtl[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000);
      cursor = next;
      if (batch.length === 0) continue;
      const pipeline = redis.pipeline();
      for (const key of batch) pipeline.pttl(key);
      const ttls = (await pipeline.exec()) ?? [];
      batch.forEach((key, i) => keys.push({ key, pttl: Number(ttls[i]?.[1] ?? -2) }));
    } while (cursor !== '0');
    return { keys, probed };
  } finally {
    redis.disconnect();
  }
}
