import { Redis } from 'ioredis';

/**
 * A Redis client that fails fast: commands error at once while disconnected instead of
 * queueing, so a signed request answers 503 and a rate limit fails open without waiting.
 */
export function createRedis(url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    // Commands issued in the same tick (the rate-limit count and the nonce of concurrent
    // requests) go out in one write: fewer syscalls per request under load.
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 1000,
    // Keep trying to reconnect in the background, at most every 2 s.
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  });
}

export type { Redis };

/** Redis did not answer at start-up. */
export class RedisConnectError extends Error {
  override readonly name = 'RedisConnectError';
}

/**
 * Connects and waits until Redis answers, at most `timeoutMs`; rejects otherwise, so a
 * misconfigured REDIS_URL stops start-up instead of serving without shared state.
 */
export async function connectRedis(url: string, onError: (error: Error) => void, timeoutMs = 5000): Promise<Redis> {
  const redis = createRedis(url);
  // Without a listener ioredis prints every reconnect failure to stderr.
  redis.on('error', onError);
  const ready = new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new RedisConnectError(`Redis at REDIS_URL did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([ready, timeout]);
  } catch (error) {
    redis.disconnect();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return redis;
}
