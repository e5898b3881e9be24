import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../logger';
import { routeOf } from './route-of';

declare module 'http' {
  interface ServerResponse {
    /** The cause of a 5xx, set by the error handler for the request line to carry. */
    err?: Error | undefined;
  }
}

/** Probes and scrapes: asked every few seconds, answered by the same line every time. */
const UNLOGGED_URLS: ReadonlySet<string> = new Set(['/healthz', '/metrics']);

/**
 * One log line per request: request id, method, path (without the query), client address,
 * route template (never the raw path alone, so ids do not explode the cardinality), status,
 * duration in milliseconds, user id and problem code when known; the cause of a 5xx as `err`.
 * Headers and bodies are not logged at all. /healthz and /metrics are not logged.
 *
 * The line keeps the shape pino-http gave it (`reqId`, `req.{id,method,path,remoteAddress}`,
 * `res.statusCode`, `responseTime`, `route`, `userId`, `code`, msg `GET /route 200`), but is
 * built once, when the response closes: no child logger and no serializer stack per request.
 */
export function requestLog(logger: Logger): RequestHandler {
  // Built once. An ordinary line holds only the fields above, none of which a redact path
  // names, so it skips the redaction pass (a deep copy of every object field per line). A
  // line with an error goes through the logger itself: an error's own properties are not ours.
  const lines = logger.child({}, { redact: [] });

  return (req, res, next) => {
    if (UNLOGGED_URLS.has(req.url)) return next();
    const started = Date.now();
    // Read now: once a client has gone, its socket may no longer know its peer.
    const remoteAddress = req.socket.remoteAddress;
    // 'close' comes once per response: just after 'finish', or when the client went away first.
    res.on('close', () => {
      const status = res.statusCode;
      const failed = status >= 500 || res.err !== undefined;
      const level = status >= 500 ? 'error' : 'info';
      const target = failed ? logger : lines;
      if (!target.isLevelEnabled(level)) return;
      const route = routeOf(req);
      const url = req.originalUrl;
      const query = url.indexOf('?');
      const line = {
        reqId: req.requestId,
        req: { id: req.requestId, method: req.method, path: query === -1 ? url : url.slice(0, query), remoteAddress },
        res: { statusCode: status },
        err: failed ? (res.err ?? new Error(`failed with status code ${status}`)) : undefined,
        responseTime: Date.now() - started,
        route,
        userId: (req as Request).auth?.userId,
        code: (res as Response).locals.problemCode as string | undefined,
      };
      target[level](line, `${req.method} ${route} ${status}`);
    });
    next();
  };
}
