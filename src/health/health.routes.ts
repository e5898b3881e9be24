import { Router } from 'express';
import { sql } from 'kysely';
import type { DB } from '../db/database';
import type { Redis } from '../redis';
import { AppError } from '../http/problem';

/** How long /readyz waits for the database before calling it down. */
const READY_TIMEOUT_MS = 2000;

async function answersWithin(check: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([check.then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** /healthz: the process runs. /readyz: it can serve: the database (and Redis, if configured) answers. */
export function healthRoutes({ db, redis }: { db: DB; redis?: Redis | undefined }): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const [database, cache] = await Promise.all([
      answersWithin(sql`select 1`.execute(db), READY_TIMEOUT_MS),
      redis ? answersWithin(redis.ping(), READY_TIMEOUT_MS) : Promise.resolve(undefined),
    ]);
    const down = [database ? undefined : 'the database', cache === false ? 'Redis' : undefined].filter(Boolean);
    if (down.length > 0) {
      throw new AppError('UNAVAILABLE', { detail: `Not ready: ${down.join(' and ')} does not answer`, headers: { 'Retry-After': '5' } });
    }
    res.json({ status: 'ready', checks: { database: 'ok', ...(redis ? { redis: 'ok' } : {}) } });
  });

  return router;
}
