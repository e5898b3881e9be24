/** The hits of one key in its current window. */
export interface WindowCount {
  /** Requests counted in this window, this one included. */
  hits: number;
  /** When the window ends, in milliseconds since the epoch. */
  resetAt: number;
}

/** Where a rate limiter counts: in this process, or shared (Redis). */
export interface WindowCounter {
  /** Counts one hit of `key`. Synchronous in this process, so the common case awaits nothing. */
  increment(key: string): WindowCount | Promise<WindowCount>;
}

/**
 * Fixed windows per key, in this process. A key's window opens with its first hit and lasts
 * `windowMs`; the next hit after it ends opens a new one (as express-rate-limit's memory store
 * and the Redis script count). A hit allocates nothing unless its key is new.
 *
 * Keys idle for a whole window are forgotten without a timer: every `windowMs` the current
 * map becomes the previous one, and a key still only in the previous map at the next turn has
 * had no hit for at least a window, so its window is over.
 */
export class MemoryWindowCounter implements WindowCounter {
  private current = new Map<string, WindowCount>();
  private previous = new Map<string, WindowCount>();
  private nextTurn: number;

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(windowMs) || windowMs < 1) throw new TypeError(`windowMs must be a positive whole number, got ${windowMs}`);
    this.nextTurn = now() + windowMs;
  }

  increment(key: string): WindowCount {
    const now = this.now();
    if (now >= this.nextTurn) {
      this.previous = this.current;
      this.current = new Map();
      this.nextTurn = now + this.windowMs;
    }
    let count = this.current.get(key);
    if (count === undefined) {
      count = this.previous.get(key);
      if (count === undefined) count = { hits: 0, resetAt: now + this.windowMs };
      else this.previous.delete(key);
      this.current.set(key, count);
    }
    if (count.resetAt <= now) {
      count.hits = 0;
      count.resetAt = now + this.windowMs;
    }
    count.hits += 1;
    return count;
  }

  /** How many keys are held (tests: idle keys are forgotten). */
  get size(): number {
    return this.current.size + this.previous.size;
  }
}
