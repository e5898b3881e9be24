import { z } from 'zod';

/**
 * The service's configuration, read once from the environment at start-up.
 * Every variable of CONTRACT.md section 1 is here, with its default; no secret has one.
 */
export interface Config {
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly isProduction: boolean;
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly redisUrl: string | undefined;
  /** Prefix of every Redis key, so deployments (or test runs) can share one Redis. */
  readonly redisPrefix: string;
  readonly keysDir: string;
  readonly jwtPrivateKey: string | undefined;
  readonly jwtIssuer: string;
  readonly jwtAudience: string;
  /** Seconds. */
  readonly accessTokenTtl: number;
  readonly refreshTokenTtl: number;
  readonly sessionMaxAge: number;
  readonly refreshReuseGrace: number;
  readonly bcryptCost: number;
  readonly passwordMinLength: number;
  readonly hmacMode: 'off' | 'optional' | 'required';
  readonly hmacClients: ReadonlyMap<string, string>;
  readonly hmacMaxSkew: number;
  readonly corsOrigins: readonly string[];
  readonly trustProxy: boolean | number | string;
  readonly rateLimitWindow: number;
  readonly rateLimitMax: number;
  readonly authRateLimitMax: number;
  readonly loginMaxFailures: number;
  readonly lockoutDuration: number;
  readonly bodyLimit: string;
  readonly logLevel: string;
  readonly shutdownTimeout: number;
  /** Days `npm run prune` keeps audit events. */
  readonly auditRetentionDays: number;
}

/** A bad configuration value; the message names the variable and fits on one line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const seconds = (fallback: number, min = 0) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number of seconds')
    .default(String(fallback))
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`));

const integer = (fallback: number, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .default(String(fallback))
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

const list = z
  .string()
  .default('')
  .transform((value) =>
    value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== ''),
  );

const hmacClients = list.transform((entries, ctx) => {
  const clients = new Map<string, string>();
  for (const entry of entries) {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    const secret = colon > 0 ? entry.slice(colon + 1) : '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be clientId:secret' });
      return z.NEVER;
    }
    // Never echo the secret back: this message ends up in a log line.
    if (secret.length < 32) {
      ctx.addIssue({ code: 'custom', message: `the secret of client "${id}" is shorter than 32 characters` });
      return z.NEVER;
    }
    if (clients.has(id)) {
      ctx.addIssue({ code: 'custom', message: `client "${id}" is listed twice` });
      return z.NEVER;
    }
    clients.set(id, secret);
  }
  return clients as ReadonlyMap<string, string>;
});

const origins = list.pipe(
  z.array(
    z
      .string()
      .refine((origin) => origin !== '*', 'must list origins; "*" is not allowed')
      .refine((origin) => /^https?:\/\/[^/\s]+$/.test(origin), 'each origin must look like https://app.example.com'),
  ),
);

// Express's `trust proxy`: a hop count, or addresses/subnets; never a blanket `true`,
// which would let any client choose its own IP through X-Forwarded-For.
const trustProxy = z
  .string()
  .default('false')
  .transform((value, ctx): boolean | number | string => {
    const trimmed = value.trim();
    if (trimmed === 'false' || trimmed === '' || trimmed === '0') return false;
    if (trimmed === 'true') {
      ctx.addIssue({ code: 'custom', message: 'give the number of proxy hops or their addresses, not "true"' });
      return z.NEVER;
    }
    if (/^\d+$/.test(trimmed)) return Number(trimmed);
    return trimmed;
  });

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: integer(3000, 0, 65535),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: optionalText.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// connection string')
      .optional(),
  ),
  DATA_DIR: z.string().min(1).default('./data'),
  REDIS_URL: optionalText.pipe(
    z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// URL')
      .optional(),
  ),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'must be 1-64 characters of letters, digits and ":_.-"')
    .default('gatehouse:'),
  KEYS_DIR: z.string().min(1).default('./keys'),
  JWT_PRIVATE_KEY: optionalText,
  JWT_ISSUER: z.string().min(1).default('gatehouse'),
  JWT_AUDIENCE: z.string().min(1).default('gatehouse'),
  ACCESS_TOKEN_TTL: seconds(900, 1),
  REFRESH_TOKEN_TTL: seconds(604800, 1),
  SESSION_MAX_AGE: seconds(2592000, 1),
  REFRESH_REUSE_GRACE: seconds(10),
  BCRYPT_COST: integer(12, 4, 15),
  PASSWORD_MIN_LENGTH: integer(8, 1, 72),
  HMAC_MODE: z.enum(['off', 'optional', 'required']).optional(),
  HMAC_CLIENTS: hmacClients,
  HMAC_MAX_SKEW: seconds(300, 1),
  CORS_ORIGINS: origins,
  TRUST_PROXY: trustProxy,
  RATE_LIMIT_WINDOW: seconds(60, 1),
  RATE_LIMIT_MAX: integer(300, 1, 1_000_000),
  AUTH_RATE_LIMIT_MAX: integer(20, 1, 1_000_000),
  LOGIN_MAX_FAILURES: integer(5, 1, 1000),
  LOCKOUT_DURATION: seconds(900, 1),
  BODY_LIMIT: z
    .string()
    .default('16kb')
    .refine((value) => /^\d+(b|kb|mb)?$/i.test(value.trim()), 'must be a size such as 16kb'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_TIMEOUT: seconds(10, 1),
  AUDIT_RETENTION_DAYS: integer(90, 1, 36500),
});

/**
 * Parses and validates the environment. Throws a {@link ConfigError} naming the first
 * bad variable; the returned object is frozen.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    throw new ConfigError(`Invalid configuration: ${variable} ${issue.message}`);
  }
  const e = parsed.data;
  const isProduction = e.NODE_ENV === 'production';
  const hmacMode = e.HMAC_MODE ?? (isProduction ? 'required' : 'optional');
  if (hmacMode === 'required' && e.HMAC_CLIENTS.size === 0) {
    throw new ConfigError('Invalid configuration: HMAC_CLIENTS must list at least one client when HMAC_MODE is required');
  }
  if (e.SESSION_MAX_AGE < e.ACCESS_TOKEN_TTL) {
    throw new ConfigError('Invalid configuration: SESSION_MAX_AGE must be at least ACCESS_TOKEN_TTL');
  }
  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    isProduction,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    keysDir: e.KEYS_DIR,
    jwtPrivateKey: e.JWT_PRIVATE_KEY,
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    accessTokenTtl: e.ACCESS_TOKEN_TTL,
    refreshTokenTtl: e.REFRESH_TOKEN_TTL,
    sessionMaxAge: e.SESSION_MAX_AGE,
    refreshReuseGrace: e.REFRESH_REUSE_GRACE,
    bcryptCost: e.BCRYPT_COST,
    passwordMinLength: e.PASSWORD_MIN_LENGTH,
    hmacMode,
    hmacClients: e.HMAC_CLIENTS,
    hmacMaxSkew: e.HMAC_MAX_SKEW,
    corsOrigins: Object.freeze([...e.CORS_ORIGINS]),
    trustProxy: e.TRUST_PROXY,
    rateLimitWindow: e.RATE_LIMIT_WINDOW,
    rateLimitMax: e.RATE_LIMIT_MAX,
    authRateLimitMax: e.AUTH_RATE_LIMIT_MAX,
    loginMaxFailures: e.LOGIN_MAX_FAILURES,
    lockoutDuration: e.LOCKOUT_DURATION,
    bodyLimit: e.BODY_LIMIT.trim().toLowerCase(),
    logLevel: e.LOG_LEVEL,
    shutdownTimeout: e.SHUTDOWN_TIMEOUT,
    auditRetentionDays: e.AUDIT_RETENTION_DAYS,
  });
}
