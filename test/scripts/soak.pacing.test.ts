import { Pacer, paceFor, parseRateLimitPolicies, parseRateLimitRemaining } from '../../scripts/soak/pacer';

// How the soak keeps under the server's rate limits (scripts/soak/pacer.ts): pure, the times given.

/** Send times (ms) of `count` requests reserved one after another at `now`, as the soak's virtual users do. */
function sendTimes(pacer: Pacer, count: number, now = 0): number[] {
  return Array.from({ length: count }, () => now + pacer.reserve(now));
}

/** The most send times that fall in any window of `windowMs` (a fixed window may start anywhere). */
function busiestWindow(times: readonly number[], windowMs: number): number {
  let most = 0;
  for (const start of times) most = Math.max(most, times.filter((t) => t >= start && t < start + windowMs).length);
  return most;
}

describe('soak pacing: the RateLimit headers', () => {
  it('when the server sends both policies on one line or two, then both are read with quota and window', () => {
    const expected = [
      { name: 'global', quota: 300, window: 60 },
      { name: 'auth', quota: 20, window: 60 },
    ];
    expect(parseRateLimitPolicies(['"global"; q=300; w=60; pk=:MTIzNDU2Nzg5YWJj:', '"auth"; q=20; w=60; pk=:MTIzNDU2Nzg5YWJj:'])).toEqual(
      expected,
    );
    expect(parseRateLimitPolicies('"global"; q=300; w=60; pk=:YWJj:, "auth"; q=20; w=60; pk=:YWJj:')).toEqual(expected);
  });

  it('when there is no policy header, then there are no policies', () => {
    expect(parseRateLimitPolicies(undefined)).toEqual([]);
    expect(parseRateLimitPolicies('')).toEqual([]);
  });

  it('when a RateLimit header names several limits, then the remaining count and reset of the one asked for are read', () => {
    const header = '"global"; r=280; t=41, "auth"; r=0; t=12';
    expect(parseRateLimitRemaining(header, 'auth')).toEqual({ remaining: 0, reset: 12 });
    expect(parseRateLimitRemaining(header, 'global')).toEqual({ remaining: 280, reset: 41 });
    expect(parseRateLimitRemaining(header, 'other')).toBeUndefined();
  });
});

describe('soak pacing: the pacer', () => {
  it.each([
    { name: 'auth', quota: 20, window: 60 },
    { name: 'global', quota: 300, window: 60 },
    { name: 'tight', quota: 3, window: 10 },
  ])(
    'when requests are reserved as fast as asked under $quota per $window s, then no window of that length holds more than the quota',
    (policy) => {
      const pacer = Pacer.for(policy);
      const times = sendTimes(pacer, policy.quota * 5);
      expect(busiestWindow(times, policy.window * 1000)).toBeLessThanOrEqual(policy.quota);
      // …and the pace is not needlessly slow: 90 % of the quota per window, on average.
      const perSecond = ((times.length - 1) / (times.at(-1)! - times[0]!)) * 1000;
      expect(perSecond).toBeGreaterThanOrEqual((0.89 * policy.quota) / policy.window);
    },
  );

  it('when the limits are out of the way, then the pace is not a brake', () => {
    expect(paceFor({ name: 'global', quota: 1_000_000, window: 60 }).perSecond).toBeGreaterThan(10_000);
  });

  it('when a burst is reserved after a pause, then at most `burst` go at once and the rest are spaced', () => {
    const pacer = new Pacer({ name: 'x', quota: 100, window: 10 }, 10, 3);
    expect(sendTimes(pacer, 5, 1_000)).toEqual([1_000, 1_000, 1_000, 1_100, 1_200]);
  });

  it('when the server says the window is spent, then nothing is sent before it resets', () => {
    const pacer = new Pacer({ name: 'x', quota: 100, window: 10 }, 10, 3);
    pacer.pauseUntil(5_000);
    expect(pacer.peek(1_000)).toBe(4_000);
    expect(sendTimes(pacer, 2, 1_000)).toEqual([5_000, 5_000]);
  });

  it('when peeking, then nothing is reserved', () => {
    const pacer = new Pacer({ name: 'x', quota: 10, window: 10 }, 1, 1);
    expect(pacer.peek(0)).toBe(0);
    expect(pacer.peek(0)).toBe(0);
    expect(pacer.reserve(0)).toBe(0);
    expect(pacer.peek(0)).toBe(1_000);
  });
});
