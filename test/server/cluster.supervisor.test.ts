import { fakePrimary } from '../helpers/cluster-primary';

// The primary of WEB_CONCURRENCY > 1 (src/cluster.ts), fed cluster events by hand: which workers it
// forks, replaces, signals and kills, what it logs, and how it exits. test/server/cluster.test.ts
// runs the real thing.

const FATAL = 60;
const ERROR = 50;

describe('the cluster primary', () => {
  it('when it starts, then it forks WEB_CONCURRENCY workers and logs once they all listen, with their pids', () => {
    const p = fakePrimary({ workers: 3 });

    p.ready();

    expect(p.forked.map((w) => w.id)).toEqual([1, 2, 3]);
    expect(p.lines).toContainEqual(expect.objectContaining({ msg: 'all workers listening', workerPids: [1001, 1002, 1003] }));
    expect(p.exits).toEqual([]);
  });

  it('when a worker dies while serving, then it is logged with its pid and signal and a replacement is forked', () => {
    const p = fakePrimary();
    p.ready();
    p.wait(60_000);

    p.supervisor.exited(p.forked[0]!, null, 'SIGKILL');

    expect(p.forked).toHaveLength(3);
    expect(p.lines).toContainEqual(
      expect.objectContaining({ level: ERROR, worker: 1, workerPid: 1001, code: null, signal: 'SIGKILL', replacementPid: 1003 }),
    );
    expect(p.exits).toEqual([]);
  });

  it('when workers keep dying right after they start, then it stops every worker and exits 1 instead of forking on', () => {
    const p = fakePrimary();
    p.ready();

    // Three early exits in a row (maxEarlyExits): the first right after it listened, each replacement before.
    p.supervisor.exited(p.forked[0]!, 1, null);
    p.supervisor.exited(p.forked[2]!, 1, null);
    p.supervisor.exited(p.forked[3]!, 1, null);

    expect(p.forked).toHaveLength(4);
    expect(p.lines).toContainEqual(expect.objectContaining({ level: FATAL, msg: expect.stringMatching(/keep exiting/) }));
    expect(p.forked[1]!.signals).toEqual(['SIGTERM']);
    p.supervisor.exited(p.forked[1]!, 0, null);
    expect(p.exits).toEqual([1]);
  });

  it('when a worker that served a while dies, then the count of early exits starts again', () => {
    const p = fakePrimary();
    p.ready();
    p.wait(60_000);
    p.supervisor.exited(p.forked[0]!, 1, null); // served a minute: not early
    p.supervisor.exited(p.forked[2]!, 1, null); // never listened: early (1)
    p.supervisor.exited(p.forked[3]!, 1, null); // early (2)
    const survivor = p.forked[4]!;
    p.supervisor.listening(survivor);
    p.wait(60_000);

    p.supervisor.exited(survivor, 1, null); // served a minute: the count starts again
    p.supervisor.exited(p.forked[5]!, 1, null); // early (1)

    expect(p.forked).toHaveLength(7);
    expect(p.exits).toEqual([]);
  });

  it('when a worker fails before any worker has listened, then start-up failed: it stops the others and exits 1', () => {
    const p = fakePrimary();
    p.supervisor.start();

    p.supervisor.exited(p.forked[0]!, 1, null);

    expect(p.forked).toHaveLength(2);
    expect(p.lines).toContainEqual(
      expect.objectContaining({ level: FATAL, msg: expect.stringMatching(/failed to start/), workerPid: 1001 }),
    );
    expect(p.forked[1]!.signals).toEqual(['SIGTERM']);
    p.supervisor.exited(p.forked[1]!, null, 'SIGTERM');
    expect(p.exits).toEqual([1]);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'when %s reaches it, then every worker gets it, none is replaced, and it exits 0 once all have exited',
    (signal) => {
      const p = fakePrimary();
      p.ready();

      p.supervisor.stop(signal);
      // A second Ctrl-C while they drain changes nothing.
      p.supervisor.stop('SIGINT');
      p.supervisor.exited(p.forked[0]!, 0, null);

      expect(p.forked.map((w) => w.signals)).toEqual([[signal], [signal]]);
      expect(p.forked).toHaveLength(2);
      expect(p.exits).toEqual([]);
      p.supervisor.exited(p.forked[1]!, 0, null);
      expect(p.exits).toEqual([0]);
      expect(p.lines.at(-1)).toMatchObject({ msg: 'stopped', exitCode: 0 });
    },
  );

  it('when a worker has not exited by the stop timeout, then it is killed and the primary exits 1', () => {
    jest.useFakeTimers();
    try {
      const p = fakePrimary();
      p.ready();
      p.supervisor.stop('SIGTERM');
      p.supervisor.exited(p.forked[0]!, 0, null);

      jest.advanceTimersByTime(15_000);

      expect(p.forked[1]!.signals).toEqual(['SIGTERM', 'SIGKILL']);
      expect(p.lines).toContainEqual(expect.objectContaining({ level: ERROR, workerPids: [1002] }));
      p.supervisor.exited(p.forked[1]!, null, 'SIGKILL');
      expect(p.exits).toEqual([1]);
    } finally {
      jest.useRealTimers();
    }
  });
});
