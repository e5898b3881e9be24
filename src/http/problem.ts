import { PROBLEMS, type ProblemCode, problemType } from '../problems/catalogue';

// The catalogue lives in problems/ so the published SDKs share it; re-exported for the service's importers.
export { PROBLEMS, problemType };
export type { ProblemCode };

/** One field-level validation failure; `path` is dotted (`password`, `roles.0`). */
export interface FieldError {
  path: string;
  message: string;
}

/** The `error` of a Bearer challenge (RFC 6750 section 3.1). */
export type BearerChallengeError = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

/** A request for Bearer credentials; the error handler renders it as `WWW-Authenticate`. */
export interface BearerChallenge {
  /** Absent when no credentials were sent at all (RFC 6750 section 3.1: then no error code). */
  error?: BearerChallengeError;
}

export interface ProblemOptions {
  /** A human explanation of this occurrence; must never carry input secrets. */
  detail?: string;
  errors?: FieldError[];
  /** Seconds the client should wait before trying again; sent as `Retry-After` (RFC 9110 section 10.2.3). */
  retryAfter?: number;
  /** Sent as `WWW-Authenticate: Bearer realm="gatehouse"[, error="…"]` (RFC 6750 section 3). */
  challenge?: BearerChallenge;
  cause?: unknown;
}

/**
 * The one error type of the service. Services throw it with a code from {@link PROBLEMS};
 * the error middleware turns it into `application/problem+json`.
 */
export class AppError extends Error {
  override readonly name = 'AppError';
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  readonly errors: FieldError[] | undefined;
  /** Whole seconds, never negative. */
  readonly retryAfter: number | undefined;
  readonly challenge: BearerChallenge | undefined;

  constructor(
    readonly code: ProblemCode,
    options: ProblemOptions = {},
  ) {
    super(options.detail ?? PROBLEMS[code].title, { cause: options.cause });
    this.status = PROBLEMS[code].status;
    this.title = PROBLEMS[code].title;
    this.detail = options.detail;
    this.errors = options.errors;
    const { retryAfter } = options;
    // A caller bug, not the client's: say so where it is made.
    if (retryAfter !== undefined && !(Number.isFinite(retryAfter) && retryAfter >= 0)) {
      throw new TypeError(`AppError: retryAfter must be a number of seconds, at least 0 (got ${retryAfter})`);
    }
    // Retry-After takes whole seconds; rounding up never invites a client back too early.
    this.retryAfter = retryAfter === undefined ? undefined : Math.ceil(retryAfter);
    this.challenge = options.challenge;
  }
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  requestId: string;
  errors?: FieldError[];
}

/** The RFC 9457 body for an error, as the contract shapes it. */
export function toProblemBody(error: AppError, requestId: string): ProblemBody {
  const body: ProblemBody = {
    type: problemType(error.code),
    title: error.title,
    status: error.status,
    detail: error.detail ?? error.title,
    code: error.code,
    requestId,
  };
  if (error.errors) body.errors = error.errors;
  return body;
}
