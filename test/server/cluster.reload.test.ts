import { fakePrimary } from '../helpers/cluster-primary';

// SIGHUP reaching the primary of WEB_CONCURRENCY > 1 (src/cluster.ts): it is passed on to every
// worker, each of which re-reads KEYS_DIR (test/server/key-reload.test.ts sends it to a real
// server); nothing stops and nothing is forked.

/** The primary with both workers listening. */
function primary() {
  const p = fakePrimary();
  p.ready();
  return p;
}

describe('the cluster primary and SIGHUP', () => {
  it('when SIGHUP reaches the primary, then every worker is sent SIGHUP and nothing stops or is forked', () => {
    const p = primary();

    p.supervisor.reload('SIGHUP');

    expect(p.forked.map((worker) => worker.signals)).toEqual([['SIGHUP'], ['SIGHUP']]);
    expect(p.forked).toHaveLength(2);
    expect(p.exits).toEqual([]);
    expect(p.lines.map((line) => line.msg)).toContain('passing the signal on to every worker');
  });

  it('when a worker was replaced, then SIGHUP reaches the replacement and not the worker that exited', () => {
    const p = primary();
    p.supervisor.exited(p.forked[0]!, null, 'SIGKILL');

    p.supervisor.reload('SIGHUP');

    expect(p.forked.map((worker) => [worker.id, worker.signals])).toEqual([
      [1, []],
      [2, ['SIGHUP']],
      [3, ['SIGHUP']],
    ]);
  });

  it('when the workers are stopping, then SIGHUP is not passed on', () => {
    const p = primary();
    p.supervisor.stop('SIGTERM');

    p.supervisor.reload('SIGHUP');

    expect(p.forked.map((worker) => worker.signals)).toEqual([['SIGTERM'], ['SIGTERM']]);
  });
});
