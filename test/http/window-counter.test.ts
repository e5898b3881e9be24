import { MemoryWindowCounter } from '../../src/http/window-counter';

const WINDOW_MS = 60_000;

/** A counter over a clock the test moves. */
function counterAt(start = 1_000_000) {
  let now = start;
  const counter = new MemoryWindowCounter(WINDOW_MS, () => now);
  return {
    counter,
    advance: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}

describe('MemoryWindowCounter', () => {
  it('when one key is hit three times in a window, then the hits count up and the window end stays put', () => {
    const { counter, advance, now } = counterAt();
    const end = now() + WINDOW_MS;
    expect(counter.increment('a')).toMatchObject({ hits: 1, resetAt: end });
    advance(10_000);
    expect(counter.increment('a')).toMatchObject({ hits: 2, resetAt: end });
    advance(WINDOW_MS - 10_001);
    expect(counter.increment('a')).toMatchObject({ hits: 3, resetAt: end });
  });

  it('when the window of a key has ended, then its next hit opens a new window counting from one', () => {
    const { counter, advance, now } = counterAt();
    counter.increment('a');
    counter.increment('a');
    advance(WINDOW_MS);
    expect(counter.increment('a')).toMatchObject({ hits: 1, resetAt: now() + WINDOW_MS });
    expect(counter.increment('a')).toMatchObject({ hits: 2 });
  });

  it('when two keys are hit, then each has its own count and its own window', () => {
    const { counter, advance, now } = counterAt();
    counter.increment('a');
    counter.increment('a');
    advance(1_000);
    expect(counter.increment('b')).toMatchObject({ hits: 1, resetAt: now() + WINDOW_MS });
    expect(counter.increment('a')).toMatchObject({ hits: 3, resetAt: now() - 1_000 + WINDOW_MS });
  });

  it('when a key keeps being hit across turns of the maps, then its count is kept', () => {
    const { counter, advance } = counterAt();
    advance(WINDOW_MS / 2);
    counter.increment('a');
    // The maps turn (a window after the counter was made) while the key's window is still open.
    advance(WINDOW_MS / 2);
    counter.increment('other');
    advance(WINDOW_MS / 2 - 1);
    expect(counter.increment('a')).toMatchObject({ hits: 2 });
    advance(1);
    expect(counter.increment('a')).toMatchObject({ hits: 1 });
  });

  it('when keys stay idle for two windows, then they are forgotten', () => {
    const { counter, advance } = counterAt();
    for (const key of ['a', 'b', 'c']) counter.increment(key);
    expect(counter.size).toBe(3);
    advance(WINDOW_MS);
    counter.increment('d');
    advance(WINDOW_MS);
    counter.increment('d');
    expect(counter.size).toBe(1);
    expect(counter.increment('a')).toMatchObject({ hits: 1 });
  });

  it('when a known key is hit, then the same count object is returned (nothing allocated per hit)', () => {
    const { counter } = counterAt();
    const first = counter.increment('a');
    expect(counter.increment('a')).toBe(first);
  });

  it.each([0, -1, 1.5, Number.NaN])('when the window is %p ms, then it is refused at construction', (windowMs) => {
    expect(() => new MemoryWindowCounter(windowMs)).toThrow(TypeError);
  });
});
