import type { RequestHandler } from 'express';
import { type Options, rateLimit, type Store } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import type { Redis } from 'ioredis';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { AppError } from './problem';

/**
 * rate-limit-redis loads its Lua script once; if Redis was down at that moment the failed
 * load would fail every later call too. Reload it after any error, so counting resumes
 * when Redis comes back.
 */
class RecoveringRedisStore extends RedisStore {
  override async increment(key: string) {
    try {
      return await super.increment(key);
    } catch (error) {
      this.incrementScriptSha = this.loadIncrementScript();
      this.incrementScriptSha.catch(() => undefined);
      throw error;
    }
  }
}

export interface RateLimitDeps {
  config: Pick<Config, 'rateLimitWindow' | 'rateLimitMax' | 'authRateLimitMax' | 'redisPrefix'>;
  redis?: Redis | undefined;
  logger: Logger;
  /** Told each time the store fails and a request passes uncounted. */
  onStoreError?: () => void;
}

/**
 * The per-IP limits of CONTRACT.md section 7: one over every route it is mounted on, a
 * stricter one for register and login. Counters live in Redis when it is configured, so
 * instances share them. If Redis fails the request passes (fail open, logged and counted):
 * an outage of the counter store must not become an outage of logins; the lockout in the
 * database still bounds password guessing.
 */
export function rateLimits(deps: RateLimitDeps): { global: RequestHandler; auth: RequestHandler } {
  const { config, redis, logger } = deps;
  const storeFor = (name: string): Store | undefined =>
    redis
      ? new RecoveringRedisStore({
          prefix: `${config.redisPrefix}rl:${name}:`,
          sendCommand: (command: string, ...args: string[]) => redis.call(command, ...args) as Promise<number | string>,
        })
      : undefined;

  const common: Partial<Options> = {
    windowMs: config.rateLimitWindow * 1000,
    // IETF draft-8: RateLimit-Policy and RateLimit headers; Retry-After on 429.
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    passOnStoreError: true,
    logger: {
      error: (error, message) => {
        deps.onStoreError?.();
        logger.error({ err: error }, message ?? 'rate limit store failed');
      },
      warn: (error, message) => logger.warn({ err: error }, message ?? 'rate limit warning'),
    },
    handler: (_req, _res, next) => next(new AppError('RATE_LIMITED')),
    // We ignore X-Forwarded-For on purpose unless TRUST_PROXY says otherwise.
    validate: { xForwardedForHeader: false },
  };

  return {
    global: rateLimit({ ...common, limit: config.rateLimitMax, identifier: 'global', store: storeFor('global') }),
    auth: rateLimit({ ...common, limit: config.authRateLimitMax, identifier: 'auth', store: storeFor('auth') }),
  };
}
