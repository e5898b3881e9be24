import { inspect } from 'node:util';
import type { Logger } from './logger';

/** What the guards need of `process`: its events (`process` itself, or an emitter in tests). */
export type GuardedProcess = Pick<NodeJS.EventEmitter, 'on' | 'off'>;

function asError(reason: unknown): Error {
  if (reason instanceof Error) return reason;
  return new Error(typeof reason === 'string' ? reason : inspect(reason));
}

/**
 * Makes a promise rejection nobody handles, or an exception nothing catches, fatal: logged at
 * fatal level, then `exit(1)`. Afterwards the process is in a state nobody planned for (a
 * half-done request, a pool or a stream in an unknown state); limping on would hide it, while
 * a supervisor (systemd, Kubernetes, node:cluster) starts a fresh process.
 *
 * The server's log is written asynchronously: the `exit` it passes writes out what the log
 * still holds before ending the process, so the fatal line is not lost. Returns a function
 * that removes the guards.
 */
export function installProcessGuards(proc: GuardedProcess, logger: Pick<Logger, 'fatal'>, exit: (code: number) => void): () => void {
  let exiting = false;
  const die = (message: string) => (reason: unknown) => {
    logger.fatal({ err: asError(reason) }, message);
    // A second failure while going down is logged, not a second exit.
    if (exiting) return;
    exiting = true;
    exit(1);
  };
  const onRejection = die('unhandled promise rejection: exiting');
  const onException = die('uncaught exception: exiting');
  proc.on('unhandledRejection', onRejection);
  proc.on('uncaughtException', onException);
  return () => {
    proc.off('unhandledRejection', onRejection);
    proc.off('uncaughtException', onException);
  };
}
