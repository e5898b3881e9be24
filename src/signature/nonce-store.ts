import type { Redis } from 'ioredis';
import { AppError } from '../http/problem';

/** Remembers nonces for a while, so a signed request cannot be replayed. */
export interface NonceStore {
  /**
   * Records the nonce for the client; true when it was new, false when already seen
   * within `ttlSeconds`. Throws AppError UNAVAILABLE when the store cannot answer:
   * replay protection that silently stops is no protection.
   */
  remember(clientId: string, nonce: string, ttlSeconds: number): Promise<boolean>;
}

/**
 * In-process store for a single instance. Bounded: past `maxEntries` live nonces it
 * refuses (503) rather than forget one early, which would reopen the replay window.
 * All entries share one TTL, so insertion order is expiry order and pruning is cheap.
 */
export class MemoryNonceStore implements NonceStore {
  private readonly expiries = new Map<string, number>();

  constructor(
    private readonly now: () => Date,
    private readonly maxEntries = 500_000,
  ) {}

  async remember(clientId: string, nonce: string, ttlSeconds: number): Promise<boolean> {
    const now = this.now().getTime();
    this.prune(now);
    const key = `${clientId}\u0000${nonce}`;
    const expiry = this.expiries.get(key);
    if (expiry !== undefined && expiry > now) return false;
    if (this.expiries.size >= this.maxEntries) {
      throw new AppError('UNAVAILABLE', { detail: 'Too many requests in flight to check for replays', retryAfter: 1 });
    }
    this.expiries.delete(key);
    this.expiries.set(key, now + ttlSeconds * 1000);
    return true;
  }

  get size(): number {
    return this.expiries.size;
  }

  private prune(now: number): void {
    for (const [key, expiry] of this.expiries) {
      if (expiry > now) break;
      this.expiries.delete(key);
    }
  }
}

/** Shared store: `SET key 1 NX EX ttl`, so a nonce seen by one instance is refused by all. */
export class RedisNonceStore implements NonceStore {
  constructor(
    private readonly redis: Redis,
    /** Key prefix, e.g. `gatehouse:nonce:`. */
    private readonly prefix: string,
  ) {}

  async remember(clientId: string, nonce: string, ttlSeconds: number): Promise<boolean> {
    let reply: string | null;
    try {
      reply = await this.redis.set(`${this.prefix}${clientId}:${nonce}`, '1', 'EX', ttlSeconds, 'NX');
    } catch (error) {
      throw new AppError('UNAVAILABLE', { detail: 'The replay store does not answer', retryAfter: 5, cause: error });
    }
    return reply === 'OK';
  }
}
