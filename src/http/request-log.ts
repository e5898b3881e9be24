import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler, Response } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../logger';
import { routeOf } from './route-of';

/**
 * One log line per request: request id, method, route template (never the raw path alone,
 * so ids do not explode the cardinality), status, duration, user id when known.
 * Headers and bodies are not logged at all.
 */
export function requestLog(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    genReqId: (req) => (req as Request).requestId,
    customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'error' : 'info'),
    customSuccessMessage: (req, res) => `${req.method} ${routeOf(req)} ${res.statusCode}`,
    customErrorMessage: (req, res) => `${req.method} ${routeOf(req)} ${res.statusCode}`,
    customSuccessObject: (req, res, fields: object) => ({ ...fields, ...outcomeOf(req, res) }),
    customErrorObject: (req, res, _error, fields: object) => ({ ...fields, ...outcomeOf(req, res) }),
    serializers: {
      req: (req: { id: unknown; method: string; url: string; remoteAddress?: string }) => ({
        id: req.id,
        method: req.method,
        // The path only: query strings are not ours to keep.
        path: req.url.split('?')[0],
        remoteAddress: req.remoteAddress,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    quietReqLogger: true,
    autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/metrics' },
  }) as RequestHandler;
}

function outcomeOf(req: IncomingMessage, res: ServerResponse) {
  return {
    route: routeOf(req),
    userId: (req as Request).auth?.userId,
    code: (res as Response).locals?.problemCode as string | undefined,
  };
}
