import type { Clock } from '../../src/clock';

export interface TestClock {
  now: Clock;
  advance(seconds: number): void;
  set(date: Date): void;
}

/** A clock that stands still until the test moves it. */
export function createTestClock(start: Date = new Date()): TestClock {
  let current = new Date(start);
  return {
    now: () => new Date(current),
    advance: (seconds) => {
      current = new Date(current.getTime() + seconds * 1000);
    },
    set: (date) => {
      current = new Date(date);
    },
  };
}
