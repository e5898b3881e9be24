import { sql } from 'kysely';
import { z } from 'zod';
import type { DB } from '../db/database';
import type { Redis } from '../redis';
import { AppError } from '../http/problem';
import { defineRoute, type RouteTable } from '../http/route';

/** How long /readyz waits for the database before calling it down. */
const READY_TIMEOUT_MS = 2000;
/** How long a client (or load balancer) should wait before asking /readyz again. */
const NOT_READY_RETRY_AFTER_SECONDS = 5;

/** Whether `check` resolves within `ms` (false when it rejects or is late; a late one is left to run). */
export async function answersWithin(check: Promise<unknown>, ms: number): Promise<boolean> {
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

export interface HealthRoutesDeps {
  db: DB;
  redis?: Redis | undefined;
}

/**
 * What /readyz checks, each true when it answered in time; `redis` only when it is configured.
 * A type, not an interface: the metrics take it as a record of dependencies.
 */
export type Readiness = { database: boolean; redis?: boolean };

/** The checks of /readyz, shared with the readiness gauge of /metrics so both say the same. */
export async function checkReadiness({ db, redis }: HealthRoutesDeps): Promise<Readiness> {
  const [database, cache] = await Promise.all([
    answersWithin(sql`select 1`.execute(db), READY_TIMEOUT_MS),
    redis ? answersWithin(redis.ping(), READY_TIMEOUT_MS) : Promise.resolve(undefined),
  ]);
  return cache === undefined ? { database } : { database, redis: cache };
}

const health = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });
const readiness = z
  .object({
    status: z.literal('ready'),
    checks: z.object({ database: z.literal('ok'), redis: z.literal('ok').optional().meta({ description: 'Only when REDIS_URL is set' }) }),
  })
  .meta({ id: 'Readiness' });

/** /healthz: the process runs. /readyz: it can serve: the database (and Redis, if configured) answers. */
export const healthRoutes: RouteTable<HealthRoutesDeps> = [
  defineRoute({
    method: 'get',
    path: '/healthz',
    operationId: 'checkLiveness',
    tag: 'operations',
    summary: 'Liveness: the process runs',
    description: 'Never signed, never rate limited.',
    response: { status: 200, description: 'Alive', schema: health },
    handler: () => () => ({ status: 'ok' }) as const,
  }),

  defineRoute({
    method: 'get',
    path: '/readyz',
    operationId: 'checkReadiness',
    tag: 'operations',
    summary: 'Readiness: the database (and Redis, if configured) answers',
    description: 'Never signed, never rate limited.',
    errors: ['UNAVAILABLE'],
    response: { status: 200, description: 'Ready to serve', schema: readiness },
    handler:
      ({ db, redis }) =>
      async () => {
        const { database, redis: cache } = await checkReadiness({ db, redis });
        const down = [database ? undefined : 'the database', cache === false ? 'Redis' : undefined].filter(Boolean);
        if (down.length > 0) {
          throw new AppError('UNAVAILABLE', {
            detail: `Not ready: ${down.join(' and ')} does not answer`,
            retryAfter: NOT_READY_RETRY_AFTER_SECONDS,
          });
        }
        return { status: 'ready', checks: { database: 'ok', ...(redis ? { redis: 'ok' } : {}) } } satisfies z.input<typeof readiness>;
      },
  }),
];
