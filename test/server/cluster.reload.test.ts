import { Writable } from 'node:stream';
import { superviseWorkers, type WorkerHandle } from '../../src/cluster';
import { createLogger } from '../../src/logger';

// SIGHUP reaching the primary of WEB_CONCURRENCY > 1 (src/cluster.ts): it is passed on to every
// worker, each of which re-reads KEYS_DIR (test/server/key-reload.test.ts sends it to a real
// server); nothing stops and nothing is forked.

/** A worker that records the signals it is sent. */
class FakeWorker implements WorkerHandle {
  readonly signals: NodeJS.Signals[] = [];
  readonly process;
  constructor(readonly id: number) {
    this.process = { pid: 2000 + id, kill: (signal: NodeJS.Signals = 'SIGTERM') => this.signals.push(signal) > 0 };
  }
}

function primary() {
  const messages: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) messages.push((JSON.parse(line) as { msg: string }).msg);
      done();
    },
  });
  const forked: FakeWorker[] = [];
  const exits: number[] = [];
  const supervisor = superviseWorkers<FakeWorker>({
    workers: 2,
    fork: () => {
      const worker = new FakeWorker(forked.length + 1);
      forked.push(worker);
      return worker;
    },
    logger: createLogger('info', destination),
    stopTimeoutMs: 15_000,
    exit: (code) => exits.push(code),
  });
  supervisor.start();
  for (const worker of [...forked]) supervisor.listening(worker);
  return { supervisor, forked, exits, messages };
}

describe('the cluster primary and SIGHUP', () => {
  it('when SIGHUP reaches the primary, then every worker is sent SIGHUP and nothing stops or is forked', () => {
    const p = primary();

    p.supervisor.reload('SIGHUP');

    expect(p.forked.map((worker) => worker.signals)).toEqual([['SIGHUP'], ['SIGHUP']]);
    expect(p.forked).toHaveLength(2);
    expect(p.exits).toEqual([]);
    expect(p.messages).toContain('passing the signal on to every worker');
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
