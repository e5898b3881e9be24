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

/** The share of the in-process store one client may hold, when not told otherwise. */
const DEFAULT_CLIENT_SHARE = 4;

/** Live nonces the in-process store holds at most, all clients together. */
export const MEMORY_NONCE_ENTRIES = 500_000;

/**
 * How many live nonces one client may hold when `clients` clients sign: a quarter of the store
 * when there are several (so one leaked secret cannot starve the others), the whole store
 * when there is one (there is nobody to protect, and a quarter would cap that one app at
 * entries ÷ 4 ÷ the nonce lifetime, about 200 signed requests a second).
 */
export function nonceShareOf(clients: number, maxEntries = MEMORY_NONCE_ENTRIES): number {
  return clients <= 1 ? maxEntries : Math.max(1, Math.floor(maxEntries / DEFAULT_CLIENT_SHARE));
}

/**
 * In-process store for a single instance. Bounded: past `maxEntries` live nonces it
 * refuses (503) rather than forget one early, which would reopen the replay window.
 *
 * Bounded per client too: one client may hold at most `maxPerClient` live nonces (default a
 * quarter of `maxEntries`). A client's secret can be pulled out of an app; whoever holds it
 * can sign as fast as they like, and without this bound would fill the store and stop every
 * client. Over its quota that one client is refused (503 with Retry-After) and the others are
 * served; the global bound still holds when many clients fill it together.
 *
 * All entries share one TTL, so insertion order is expiry order and pruning is cheap.
 */
export class MemoryNonceStore implements NonceStore {
  private readonly expiries = new Map<string, { clientId: string; expiry: number }>();
  /** Live entries per client: kept in step with `expiries`, dropped at zero. */
  private readonly perClient = new Map<string, number>();
  private readonly maxPerClient: number;

  /**
   * @param now the clock
   * @param maxEntries live nonces of all clients together (default 500,000)
   * @param maxPerClient live nonces of one client, 1 to `maxEntries`; default a quarter of `maxEntries` (at least 1)
   */
  constructor(
    private readonly now: () => Date,
    private readonly maxEntries = MEMORY_NONCE_ENTRIES,
    maxPerClient?: number,
  ) {
    if (!(Number.isSafeInteger(maxEntries) && maxEntries >= 1)) {
      throw new TypeError('MemoryNonceStore: maxEntries must be a whole number, at least 1');
    }
    this.maxPerClient = maxPerClient ?? nonceShareOf(Number.POSITIVE_INFINITY, maxEntries);
    if (!(Number.isSafeInteger(this.maxPerClient) && this.maxPerClient >= 1 && this.maxPerClient <= maxEntries)) {
      throw new TypeError('MemoryNonceStore: maxPerClient must be a whole number from 1 to maxEntries');
    }
  }

  async remember(clientId: string, nonce: string, ttlSeconds: number): Promise<boolean> {
    const now = this.now().getTime();
    this.prune(now);
    const key = `${clientId}\u0000${nonce}`;
    const entry = this.expiries.get(key);
    // A replay is answered as one even over quota: it is refused either way, and its sender should not retry.
    if (entry !== undefined && entry.expiry > now) return false;
    // Expired but not yet pruned (a shorter TTL queued behind a longer one): its place is free.
    if (entry !== undefined) this.forget(key, entry.clientId);
    if ((this.perClient.get(clientId) ?? 0) >= this.maxPerClient) {
      throw new AppError('UNAVAILABLE', { detail: 'Too many recent requests from this client to check for replays', retryAfter: 1 });
    }
    if (this.expiries.size >= this.maxEntries) {
      throw new AppError('UNAVAILABLE', { detail: 'Too many recent requests to check for replays', retryAfter: 1 });
    }
    this.expiries.set(key, { clientId, expiry: now + ttlSeconds * 1000 });
    this.perClient.set(clientId, (this.perClient.get(clientId) ?? 0) + 1);
    return true;
  }

  get size(): number {
    return this.expiries.size;
  }

  private forget(key: string, clientId: string): void {
    this.expiries.delete(key);
    const left = (this.perClient.get(clientId) ?? 1) - 1;
    if (left > 0) this.perClient.set(clientId, left);
    else this.perClient.delete(clientId);
  }

  private prune(now: number): void {
    for (const [key, { clientId, expiry }] of this.expiries) {
      if (expiry > now) break;
      this.forget(key, clientId);
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
