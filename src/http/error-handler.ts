import type { ErrorRequestHandler, RequestHandler } from 'express';
import { isDatabaseError, isDatabaseUnavailable } from '../db/database';
import { bodyParserProblem } from './json-body';
import { AppError, type BearerChallenge, toProblemBody } from './problem';

/** How long a client should wait before retrying when the database is unreachable. */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;
/** The realm of Gatehouse's Bearer challenges (RFC 6750 section 3). */
const BEARER_REALM = 'gatehouse';

function toAppError(error: unknown, exposeDetails: boolean): AppError {
  if (error instanceof AppError) return error;
  const fromBody = bodyParserProblem(error);
  if (fromBody) return fromBody;
  if (isDatabaseUnavailable(error)) {
    return new AppError('UNAVAILABLE', { retryAfter: UNAVAILABLE_RETRY_AFTER_SECONDS, cause: error });
  }
  // Outside production a developer sees the error's name and message; never a stack or SQL
  // (a database error's message may quote either: it goes to the log only).
  const detail =
    exposeDetails && error instanceof Error && !isDatabaseError(error) ? `${error.name}: ${error.message}`.slice(0, 300) : undefined;
  return new AppError('INTERNAL', { detail, cause: error });
}

/** RFC 6750 section 3: `Bearer realm="gatehouse"`, and the error when a token was sent and failed. */
function renderChallenge(challenge: BearerChallenge): string {
  const params = [`realm="${BEARER_REALM}"`];
  if (challenge.error !== undefined) params.push(`error="${challenge.error}"`);
  return `Bearer ${params.join(', ')}`;
}

/** The headers an error is answered with: rendered here from its typed data, not spelled by the thrower. */
function headersOf(problem: AppError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (problem.retryAfter !== undefined) headers['Retry-After'] = String(problem.retryAfter);
  if (problem.challenge !== undefined) headers['WWW-Authenticate'] = renderChallenge(problem.challenge);
  return headers;
}

/** Unknown routes: a 404 problem like every other error. */
export function notFound(): RequestHandler {
  return (_req, _res, next) => next(new AppError('NOT_FOUND', { detail: 'No such route' }));
}

/**
 * The one place errors become responses: application/problem+json (RFC 9457).
 * 5xx are handed to the request log with their cause (pino-http logs `res.err`); 4xx only by code.
 */
export function errorHandler(options: { exposeDetails: boolean }): ErrorRequestHandler {
  return (error, req, res, next) => {
    if (res.headersSent) return next(error);
    const problem = toAppError(error, options.exposeDetails);
    res.locals.problemCode = problem.code;
    if (problem.status >= 500) res.err = problem.cause instanceof Error ? problem.cause : problem;
    res
      .status(problem.status)
      .set(headersOf(problem))
      .type('application/problem+json')
      .send(JSON.stringify(toProblemBody(problem, req.requestId)));
  };
}
