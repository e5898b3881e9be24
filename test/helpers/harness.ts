import type { Express } from 'express';
import { createApp } from '../../src/app';
import type { Clock } from '../../src/clock';
import { type Config, loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db/database';
import { createLogger, type Logger } from '../../src/logger';
import { createRecoveryQueue } from '../../src/recovery/recovery.queue';
import type { Redis } from '../../src/redis';
import type { NonceStore } from '../../src/signature/nonce-store';
import type { KeyStore } from '../../src/tokens/keys';
import { createTestClock, type TestClock } from './clock';
import { type DatabaseKind, openTestDatabase } from './databases';
import { testKeyStore } from './keys';

export interface Harness {
  app: Express;
  config: Config;
  database: DatabaseHandle;
  keys: KeyStore;
  clock: TestClock;
  /** Resolves once the recovery requests answered so far have done their work (forgot, resend verification). */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  kind?: DatabaseKind;
  /** Environment variables on top of the test defaults (cheap bcrypt, silent logs). */
  env?: Record<string, string>;
  keys?: KeyStore;
  /** Reuse an open database (for two apps over one database). */
  database?: DatabaseHandle;
  /** Share rate-limit counters and nonces through Redis, as instances in production do. */
  redis?: Redis;
  /** Where the app logs; by default nowhere. */
  logger?: Logger;
  /** Makes the app's nonce store on the harness's clock (a small one, to fill it); by default the app's own. */
  nonces?: (clock: Clock) => NonceStore;
}

/**
 * Test defaults: bcrypt at its cheapest, no logs, and rate limits out of the way
 * (every supertest request comes from one IP); the rate-limit suites set their own.
 */
export const TEST_ENV = {
  NODE_ENV: 'test',
  BCRYPT_COST: '4',
  LOG_LEVEL: 'silent',
  RATE_LIMIT_MAX: '1000000',
  AUTH_RATE_LIMIT_MAX: '1000000',
} as const;

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ ...TEST_ENV, ...env });
}

/** The whole app over a real database, with a frozen clock, driven in-process by supertest. */
export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const config = testConfig(options.env);
  const database = options.database ?? (await openTestDatabase(options.kind ?? 'pglite'));
  const keys = options.keys ?? testKeyStore().store;
  const clock = createTestClock();
  const logger = options.logger ?? createLogger('silent');
  const recoveryQueue = createRecoveryQueue({ logger });
  const app = createApp({
    config,
    db: database.db,
    keys,
    logger,
    clock: clock.now,
    poolStats: database.poolStats,
    recoveryQueue,
    ...(options.redis ? { redis: options.redis } : {}),
    ...(options.nonces ? { nonces: options.nonces(clock.now) } : {}),
  });
  return {
    app,
    config,
    database,
    keys,
    clock,
    settled: () => recoveryQueue.settled(),
    close: async () => {
      // Work still queued would otherwise meet a closed database.
      await recoveryQueue.settled();
      if (!options.database) await database.close();
    },
  };
}

/**
 * A second instance beside `first`, as a second server would be: on PostgreSQL with a pool of
 * its own; the embedded database is one process's, so there both apps share its handle. Same
 * signing keys, and its clock set to the first's; `env` as `first` was given it.
 */
export async function createSecondInstance(first: Harness, kind: DatabaseKind, env?: Record<string, string>): Promise<Harness> {
  const second = await createHarness({
    ...(kind === 'postgres' ? { kind } : { database: first.database }),
    keys: first.keys,
    ...(env ? { env } : {}),
  });
  second.clock.set(first.clock.now());
  return second;
}
