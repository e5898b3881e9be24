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

export interface RunningClock {
  now: Clock;
  /** Moves this clock ahead of real time (it keeps running from there). */
  advance(seconds: number): void;
}

/**
 * A clock that runs with real time, as a server's does, and that a test can move ahead: to
 * be past an expiry without waiting for it.
 */
export function createRunningClock(): RunningClock {
  let offsetMs = 0;
  return {
    now: () => new Date(Date.now() + offsetMs),
    advance: (seconds) => {
      offsetMs += seconds * 1000;
    },
  };
}
