import pino, { type Logger } from 'pino';

/**
 * Paths pino blanks out. Our serializers never log headers or bodies in the first place;
 * this list is the last line of defence if someone logs a request object by hand.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-signature"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.refreshToken',
  '*.accessToken',
  '*.token',
  '*.secret',
  '*.privateKey',
  'password',
  'refreshToken',
  'accessToken',
];

/**
 * Fields a database driver puts on its errors that can quote the row or the values it was sent
 * (pg's `detail` of a constraint violation, say, holds the failing row: a link, a token hash).
 */
const QUOTING_ERROR_FIELDS = ['detail', 'where', 'internalQuery', 'parameters'] as const;

/** pino's error serializer, without the fields that can quote data. */
function serializeError(error: Error): Record<string, unknown> {
  const serialized: Record<string, unknown> = { ...pino.stdSerializers.err(error) };
  for (const field of QUOTING_ERROR_FIELDS) delete serialized[field];
  return serialized;
}

/**
 * A logger writing JSON lines to `destination` (stdout, synchronously, by default). Every line
 * carries the process id: under `WEB_CONCURRENCY` several processes share one stdout. Every
 * `err` goes through {@link serializeError}, whoever logs it.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { service: 'gatehouse', pid: process.pid },
      serializers: { err: serializeError },
    },
    destination,
  );
}

/**
 * Linux writes up to this many bytes to a pipe in one piece: a process's write never
 * interleaves with another's. The workers of a cluster share the primary's stdout.
 */
const PIPE_BUF = 4096;

/** The server's logger, and the ways to write out what it still holds. */
export interface ProcessLogger {
  readonly logger: Logger;
  /**
   * Resolves once every line logged so far has been written (at most `timeoutMs`): the
   * clean way out, which keeps the last lines in order.
   */
  readonly flushed: (timeoutMs?: number) => Promise<void>;
  /**
   * Writes every buffered line to stdout before returning, for exits that cannot wait. A
   * write already under way completes as the process exits, possibly after these lines.
   */
  readonly flushSync: () => void;
}

type Destination = ReturnType<typeof pino.destination>;

/** Whether the destination still holds lines or is writing some (sonic-boom's own fields: it has no getter). */
function busy(destination: Destination): boolean {
  const state = destination as unknown as { _writing?: unknown; _len?: unknown };
  return state._writing === true || (typeof state._len === 'number' && state._len > 0);
}

/**
 * The server's logger: JSON lines to stdout through pino's own asynchronous destination, so a
 * request never waits on a write(2); lines logged while a write is under way go out together
 * in the next. Whatever is still buffered is lost at `process.exit` unless it was flushed.
 */
export function createProcessLogger(level: string): ProcessLogger {
  // Each write holds whole lines and at most PIPE_BUF bytes (a longer line goes alone).
  const destination = pino.destination({ dest: 1, sync: false, maxWrite: PIPE_BUF });
  return {
    logger: createLogger(level, destination),
    async flushed(timeoutMs = 2000) {
      if (!busy(destination)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          destination.off('drain', done);
          resolve();
        };
        // sonic-boom says 'drain' when it has written everything it held.
        destination.on('drain', done);
        const timer = setTimeout(done, timeoutMs);
      });
    },
    flushSync() {
      try {
        destination.flushSync();
      } catch {
        // Nothing is left to write to (stdout closed, or the stream already ended): exit anyway.
      }
    },
  };
}

export type { Logger };
