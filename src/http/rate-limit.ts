import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator, type Options } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import type { Redis } from 'ioredis';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { AppError } from './problem';
import { MemoryWindowCounter, type WindowCount, type WindowCounter } from './window-counter';

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

/** Counters in Redis, shared by every instance with the same prefix. */
function redisCounter(store: RedisStore, windowMs: number): WindowCounter {
  return {
    async increment(key) {
      const { totalHits, resetTime } = await store.increment(key);
      return { hits: totalHits, resetAt: resetTime?.getTime() ?? Date.now() + windowMs };
    },
  };
}

export interface RateLimitDeps {
  config: Pick<Config, 'rateLimitWindow' | 'rateLimitMax' | 'authRateLimitMax' | 'redisPrefix' | 'trustProxy'>;
  redis?: Redis | undefined;
  logger: Logger;
  /** Told each time the store fails and a request passes uncounted. */
  onStoreError?: () => void;
  /** The clock of the in-process counters (tests); the real one by default. */
  now?: () => number;
}

/**
 * The per-IP limits of CONTRACT.md section 7: one over every route it is mounted on, a
 * stricter one for register and login. Counters live in Redis when it is configured, so
 * instances share them. If Redis fails the request passes (fail open, logged and counted):
 * an outage of the counter store must not become an outage of logins; the lockout in the
 * database still bounds password guessing.
 *
 * The answers are those express-rate-limit gave, header for header: IETF draft-8 `RateLimit`
 * and `RateLimit-Policy`, `Retry-After` on 429; its log messages are kept too, for the queries
 * that look for them. The middleware is our own because express-rate-limit's awaits half a
 * dozen promises and hashes the key on every request; here an in-process count is synchronous
 * and allocates nothing for a known client.
 */
export function rateLimits(deps: RateLimitDeps): { global: RequestHandler; auth: RequestHandler } {
  const { config, redis, logger } = deps;
  const now = deps.now ?? Date.now;
  const windowMs = config.rateLimitWindow * 1000;
  const logError = (error: unknown, message: string) => {
    deps.onStoreError?.();
    logger.error({ err: error }, message);
  };
  const counterFor = (name: string): WindowCounter => {
    if (!redis) return new MemoryWindowCounter(windowMs, now);
    const store = new RecoveringRedisStore({
      prefix: `${config.redisPrefix}rl:${name}:`,
      sendCommand: (command: string, ...args: string[]) => redis.call(command, ...args) as Promise<number | string>,
    });
    // The store reads only windowMs; it loads its scripts now, and again after a failure.
    store
      .init({ windowMs } as Options)
      .catch((error: unknown) => logError(error, 'express-rate-limit: async error during store initialization.'));
    return redisCounter(store, windowMs);
  };
  const keyOf = clientKey(config.trustProxy === false);
  const limiter = (name: string, limit: number) =>
    fixedWindowLimit({ name, limit, windowMs, counter: counterFor(name), keyOf, now, onStoreError: logError });

  return { global: limiter('global', config.rateLimitMax), auth: limiter('auth', config.authRateLimitMax) };
}

/**
 * The client a request counts against: its address, an IPv6 one by its /56 network (one
 * host holds a whole /64 or more), as express-rate-limit's default key. Without `trust proxy`
 * that is the peer's address, read without Express's X-Forwarded-For parsing.
 */
function clientKey(peerOnly: boolean): (req: Request) => string {
  // Bounded: a client that walks its /64 must not grow this without end.
  const ipv6KeyOf = boundedMemo((ip) => ipKeyGenerator(ip, 56));
  return (req) => {
    const ip = peerOnly ? req.socket.remoteAddress : req.ip;
    if (ip === undefined) return 'undefined';
    // No IPv4 address holds a colon: the common case needs no parsing.
    return ip.includes(':') ? ipv6KeyOf(ip) : ip;
  };
}

/** Clients remembered per cache below; past this the cache starts again empty. */
const CLIENTS_REMEMBERED = 10_000;

/** `make(key)`, computed once per key while at most {@link CLIENTS_REMEMBERED} keys are held. */
function boundedMemo(make: (key: string) => string): (key: string) => string {
  const made = new Map<string, string>();
  return (key) => {
    let value = made.get(key);
    if (value === undefined) {
      if (made.size >= CLIENTS_REMEMBERED) made.clear();
      value = make(key);
      made.set(key, value);
    }
    return value;
  };
}

interface LimitOptions {
  /** The policy's name in the headers (`"global"`). */
  name: string;
  limit: number;
  windowMs: number;
  counter: WindowCounter;
  keyOf: (req: Request) => string;
  now: () => number;
  onStoreError: (error: unknown, message: string) => void;
}

/** express-rate-limit's words for a failed count, kept for the log queries that look for them. */
const STORE_ERROR = 'express-rate-limit: error from store, allowing request without rate-limiting.';

/** One fixed-window limit. */
function fixedWindowLimit(options: LimitOptions): RequestHandler {
  const { name, limit, counter, keyOf, now } = options;
  const policyPrefix = `"${name}"; q=${limit}; w=${Math.ceil(options.windowMs / 1000)}; pk=:`;

  // The partition key names the client without telling its address: the first 12 hex digits
  // of the key's SHA-256, as base64 (draft-8 `pk`, computed as express-rate-limit does).
  // It depends on the key alone: made once per client (bounded, as the IPv6 keys), whichever
  // store counts, so no request but a client's first hashes anything.
  const policyOf = boundedMemo(
    (key) => `${policyPrefix}${Buffer.from(createHash('sha256').update(key).digest('hex').slice(0, 12)).toString('base64')}:`,
  );

  const answer = (key: string, count: WindowCount, res: Response, next: (error?: unknown) => void) => {
    const resetSeconds = Math.max(0, Math.ceil((count.resetAt - now()) / 1000));
    if (!res.headersSent) {
      append(res, 'RateLimit', `"${name}"; r=${Math.max(limit - count.hits, 0)}; t=${resetSeconds}`);
      append(res, 'RateLimit-Policy', policyOf(key));
    }
    if (count.hits > limit) {
      if (!res.headersSent) res.setHeader('Retry-After', String(resetSeconds));
      return next(new AppError('RATE_LIMITED'));
    }
    next();
  };

  return (req, res, next) => {
    const key = keyOf(req);
    let counted: WindowCount | Promise<WindowCount>;
    try {
      counted = counter.increment(key);
    } catch (error) {
      options.onStoreError(error, STORE_ERROR);
      return next();
    }
    if (!(counted instanceof Promise)) return answer(key, counted, res, next);
    counted
      .then(
        (count) => answer(key, count, res, next),
        (error: unknown) => {
          options.onStoreError(error, STORE_ERROR);
          next();
        },
      )
      .catch(next);
  };
}

/** As Express's res.append: a second limit on the same response adds a second header line. */
function append(res: Response, header: string, value: string): void {
  const previous = res.getHeader(header);
  if (previous === undefined) res.setHeader(header, value);
  else res.setHeader(header, Array.isArray(previous) ? [...previous, value] : [String(previous), value]);
}
