/**
 * The machine-readable error codes of CONTRACT.md, each with its HTTP status and a
 * fixed, dull title. Security failures never say more than their title.
 */
export const PROBLEMS = {
  VALIDATION_FAILED: { status: 422, title: 'The request is not valid' },
  WEAK_PASSWORD: { status: 422, title: 'The password does not meet the password policy' },
  EMAIL_TAKEN: { status: 409, title: 'An account with this email already exists' },
  USERNAME_TAKEN: { status: 409, title: 'This username is taken' },
  INVALID_CREDENTIALS: { status: 401, title: 'Invalid email or password' },
  ACCOUNT_LOCKED: { status: 423, title: 'The account is temporarily locked' },
  ACCOUNT_DISABLED: { status: 403, title: 'The account is disabled' },
  REFRESH_TOKEN_INVALID: { status: 401, title: 'The refresh token is not valid' },
  REFRESH_TOKEN_EXPIRED: { status: 401, title: 'The refresh token has expired' },
  REFRESH_TOKEN_REUSED: { status: 401, title: 'The refresh token was already used; the session is revoked' },
  TOKEN_MISSING: { status: 401, title: 'An access token is required' },
  TOKEN_INVALID: { status: 401, title: 'The access token is not valid' },
  TOKEN_EXPIRED: { status: 401, title: 'The access token has expired' },
  SESSION_REVOKED: { status: 401, title: 'The session has been revoked' },
  SIGNATURE_MISSING: { status: 401, title: 'The request signature is missing' },
  SIGNATURE_INVALID: { status: 401, title: 'The request signature is not valid' },
  SIGNATURE_EXPIRED: { status: 401, title: 'The request timestamp is outside the allowed window' },
  SIGNATURE_REPLAYED: { status: 401, title: 'The request nonce was already used' },
  FORBIDDEN: { status: 403, title: 'Not allowed' },
  LAST_ADMIN: { status: 409, title: 'This would leave no active admin' },
  NOT_FOUND: { status: 404, title: 'Not found' },
  MALFORMED_BODY: { status: 400, title: 'The request body is not valid JSON' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The request body must be application/json' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  INTERNAL: { status: 500, title: 'Internal server error' },
  UNAVAILABLE: { status: 503, title: 'The service is temporarily unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

/** One field-level validation failure; `path` is dotted (`password`, `roles.0`). */
export interface FieldError {
  path: string;
  message: string;
}

export interface ProblemOptions {
  /** A human explanation of this occurrence; must never carry input secrets. */
  detail?: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
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
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ProblemCode,
    options: ProblemOptions = {},
  ) {
    super(options.detail ?? PROBLEMS[code].title, { cause: options.cause });
    this.status = PROBLEMS[code].status;
    this.title = PROBLEMS[code].title;
    this.detail = options.detail;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
  }
}

/** The `type` URI of a problem: stable, and documented in the README. */
export function problemType(code: ProblemCode): string {
  return `urn:gatehouse:problem:${code.toLowerCase().replace(/_/g, '-')}`;
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
