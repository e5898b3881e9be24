/**
 * Keeps the soak under the server's rate limits, so that its load is the server's work and
 * not a stream of 429s. One {@link Pacer} per limit the server advertises.
 */

/** One limit as a server advertises it in `RateLimit-Policy` (IETF draft-8): `"auth"; q=20; w=60`. */
export interface RateLimitPolicy {
  name: string;
  /** Requests allowed per window. */
  quota: number;
  /** The window, in seconds. */
  window: number;
}

/**
 * The policies named in `RateLimit-Policy` header values, e.g.
 * `"global"; q=300; w=60; pk=:…:` (one header line per limit, or several joined by commas).
 */
export function parseRateLimitPolicies(header: string | readonly string[] | undefined): RateLimitPolicy[] {
  const text = Array.isArray(header) ? header.join(', ') : ((header as string | undefined) ?? '');
  const policies: RateLimitPolicy[] = [];
  for (const match of text.matchAll(/"([^"]+)"\s*;([^,]*)/g)) {
    const params = match[2]!;
    const quota = /(?:^|;)\s*q=(\d+)/.exec(params)?.[1];
    const window = /(?:^|;)\s*w=(\d+)/.exec(params)?.[1];
    if (quota === undefined) continue;
    policies.push({ name: match[1]!, quota: Number(quota), window: window === undefined ? 60 : Number(window) });
  }
  return policies;
}

/**
 * What is left of one limit, from a `RateLimit` header value: `"global"; r=12; t=40`
 * (remaining requests, seconds until the window resets).
 */
export function parseRateLimitRemaining(
  header: string | readonly string[] | undefined,
  name: string,
): { remaining: number; reset: number } | undefined {
  const text = Array.isArray(header) ? header.join(', ') : ((header as string | undefined) ?? '');
  for (const match of text.matchAll(/"([^"]+)"\s*;([^,]*)/g)) {
    if (match[1] !== name) continue;
    const remaining = /(?:^|;)\s*r=(\d+)/.exec(match[2]!)?.[1];
    const reset = /(?:^|;)\s*t=(\d+)/.exec(match[2]!)?.[1];
    if (remaining === undefined || reset === undefined) return undefined;
    return { remaining: Number(remaining), reset: Number(reset) };
  }
  return undefined;
}

/** The share of a limit the soak uses: the rest is slack for clock drift and other clients. */
export const PACE_SHARE = 0.9;

/** Requests per second and burst that keep any window of the policy below its quota. */
export function paceFor(policy: RateLimitPolicy): { perSecond: number; burst: number } {
  // In any window: at most `burst` + PACE_SHARE × quota requests, which stays below the quota
  // however the server's fixed window lines up with ours.
  return {
    perSecond: (PACE_SHARE * policy.quota) / policy.window,
    burst: Math.max(1, Math.floor(((1 - PACE_SHARE) / 2) * policy.quota)),
  };
}

/**
 * A rate pacer (the generic cell rate algorithm, the token bucket as a schedule): each
 * request reserves the time it may be sent. Requests go out at `perSecond` on average, up to
 * `burst` at once after a pause. Pure apart from the times it is given.
 */
export class Pacer {
  private readonly interval: number;
  private readonly tolerance: number;
  /** The theoretical arrival time of the next request, in ms. */
  private tat = 0;
  /** The server said the window is spent (429, or `r=0`): nothing goes before this time. */
  private pausedUntil = 0;

  constructor(
    readonly policy: RateLimitPolicy,
    readonly perSecond: number,
    readonly burst: number,
  ) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new TypeError('Pacer: perSecond must be above 0 and burst at least 1');
    this.interval = 1000 / perSecond;
    this.tolerance = (burst - 1) * this.interval;
  }

  static for(policy: RateLimitPolicy): Pacer {
    const { perSecond, burst } = paceFor(policy);
    return new Pacer(policy, perSecond, burst);
  }

  /** Reserves a slot for one request; returns how many ms to wait, from `now`, before sending it. */
  reserve(now: number): number {
    const tat = Math.max(this.tat, now, this.pausedUntil);
    const sendAt = Math.max(now, this.pausedUntil, tat - this.tolerance);
    this.tat = tat + this.interval;
    return sendAt - now;
  }

  /** How many ms a request reserved at `now` would wait, without reserving. */
  peek(now: number): number {
    const tat = Math.max(this.tat, now, this.pausedUntil);
    return Math.max(now, this.pausedUntil, tat - this.tolerance) - now;
  }

  /** Sends nothing before `until` (ms): the server's window is spent until then. */
  pauseUntil(until: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }
}
