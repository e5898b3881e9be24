import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { installProcessGuards } from '../../src/process-guards';
import { createLogger } from '../../src/logger';

// A promise nobody awaited that rejects, or an exception nothing caught, leaves the process in
// a state nobody planned for: it logs why at fatal and exits non-zero, so that its supervisor
// starts a fresh one rather than it limping on.

/** A pino logger writing JSON lines into an array. */
function memoryLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('info', destination), lines };
}

/** What the guards see of `process`: an emitter of its two events (the real one emits them the same way). */
function fakeProcess() {
  return new EventEmitter();
}

const FATAL = 60;

describe('installProcessGuards', () => {
  it('when a promise rejects with nobody to handle it, then it logs the error at fatal and exits 1', () => {
    const proc = fakeProcess();
    const { logger, lines } = memoryLogger();
    const exits: number[] = [];
    installProcessGuards(proc, logger, (code) => exits.push(code));

    proc.emit('unhandledRejection', new Error('pool exploded'), Promise.resolve());

    expect(exits).toEqual([1]);
    expect(lines).toEqual([
      expect.objectContaining({
        level: FATAL,
        msg: expect.stringMatching(/unhandled promise rejection/),
        err: expect.objectContaining({ message: 'pool exploded' }),
      }),
    ]);
  });

  it('when an exception is thrown with nothing to catch it, then it logs the error at fatal and exits 1', () => {
    const proc = fakeProcess();
    const { logger, lines } = memoryLogger();
    const exits: number[] = [];
    installProcessGuards(proc, logger, (code) => exits.push(code));

    proc.emit('uncaughtException', new TypeError('cannot read properties of undefined'), 'uncaughtException');

    expect(exits).toEqual([1]);
    expect(lines).toEqual([
      expect.objectContaining({
        level: FATAL,
        msg: expect.stringMatching(/uncaught exception/),
        err: expect.objectContaining({ type: 'TypeError', message: 'cannot read properties of undefined' }),
      }),
    ]);
  });

  it('when a promise rejects with something that is not an Error, then that value is logged', () => {
    const proc = fakeProcess();
    const { logger, lines } = memoryLogger();
    const exits: number[] = [];
    installProcessGuards(proc, logger, (code) => exits.push(code));

    proc.emit('unhandledRejection', 'a bare string', Promise.resolve());

    expect(exits).toEqual([1]);
    expect(lines).toEqual([expect.objectContaining({ level: FATAL, err: expect.objectContaining({ message: 'a bare string' }) })]);
  });

  it('when a second failure arrives while exiting, then it is logged but exit is asked once', () => {
    const proc = fakeProcess();
    const { logger, lines } = memoryLogger();
    const exits: number[] = [];
    installProcessGuards(proc, logger, (code) => exits.push(code));

    proc.emit('uncaughtException', new Error('first'), 'uncaughtException');
    proc.emit('unhandledRejection', new Error('second'), Promise.resolve());

    expect(exits).toEqual([1]);
    expect(lines.map((line) => (line.err as { message: string }).message)).toEqual(['first', 'second']);
  });

  it('when the guards are removed, then the process no longer listens', () => {
    const proc = fakeProcess();
    const { logger } = memoryLogger();
    const remove = installProcessGuards(proc, logger, () => undefined);

    remove();

    expect(proc.listenerCount('unhandledRejection')).toBe(0);
    expect(proc.listenerCount('uncaughtException')).toBe(0);
  });
});
