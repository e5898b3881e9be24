import { z } from 'zod';

/** A bad configuration value; the message names the variable and fits on one line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

// --- Value kinds ----------------------------------------------------------------
// Every variable's schema takes the variable's text (undefined when unset) and gives the
// setting. A `.default()` is the documented default: `npm run docs` reads it back.

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

const text = (fallback: string) => z.string().min(1).default(fallback);

const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false'], { message: 'must be true or false' })
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true');

/** A link a message carries: `{token}` is filled in; an https:// (or http://) page or an app link such as `myapp://reset?token={token}`. */
const linkTemplate = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((value) => value.includes('{token}'), 'must contain {token}')
    .refine((value) => /^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(value), 'must be a URL such as https://app.example.com/reset?token={token}');

/** Unset and blank are the same: no value. */
const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

/** Comma-separated items, trimmed, empty ones dropped; unset is an empty list. */
const list = z
  .string()
  .optional()
  .transform((value) =>
    (value ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== ''),
  );

const hmacClients = list.transform((entries, ctx): ReadonlyMap<string, string> => {
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
  return clients;
});

const origins = list
  .pipe(
    z.array(
      z
        .string()
        .refine((origin) => origin !== '*', 'must list origins; "*" is not allowed')
        .refine((origin) => /^https?:\/\/[^/\s]+$/.test(origin), 'each origin must look like https://app.example.com'),
    ),
  )
  .transform((items): readonly string[] => Object.freeze(items));

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

// --- The declaration ------------------------------------------------------------

/** Headings of `.env.example`, in order. */
export type ConfigGroup =
  | 'Server'
  | 'Database and shared stores'
  | 'Keys and tokens'
  | 'Passwords and lockout'
  | 'HMAC request signing'
  | 'CORS and proxy'
  | 'Rate limits'
  | 'Account recovery and mail'
  | 'Logging'
  | 'Retention';

/**
 * One environment variable: everything the parser and the docs (`.env.example`, the README's
 * configuration table, both written by `npm run docs`) know about it.
 */
export interface ConfigVariable {
  /** The {@link Config} property it fills. */
  readonly property: string;
  /**
   * Parses the variable's text (undefined when unset). Its `.default()`, if any, is the
   * default the docs show; a secret never has one.
   */
  readonly schema: z.ZodType;
  /** What it does: one line of Markdown, lower-case start, no final full stop. */
  readonly meaning: string;
  readonly group: ConfigGroup;
  /** A credential: never given a default, never shown with a value in the docs. */
  readonly secret?: boolean;
  /** What leaving it unset means, for a variable with no default. */
  readonly whenUnset?: string;
  /**
   * A default that depends on the value of another variable, declared before this one:
   * `when` maps that value to this variable's text, `otherwise` covers every other value.
   */
  readonly defaultFrom?: {
    readonly variable: string;
    readonly when: Readonly<Record<string, string>>;
    readonly otherwise: string;
  };
}

/**
 * Every environment variable the service reads, in the order of the docs; the one place
 * to add one. `Config` is typed from it.
 */
export const configVariables = {
  PORT: { property: 'port', group: 'Server', meaning: 'port to listen on', schema: integer(3000, 0, 65535) },
  HOST: { property: 'host', group: 'Server', meaning: 'address to bind; `0.0.0.0` listens on every interface', schema: text('0.0.0.0') },
  NODE_ENV: {
    property: 'nodeEnv',
    group: 'Server',
    meaning: 'the environment: `production` requires HMAC, refuses to generate keys, hides internal error details',
    schema: z.enum(['development', 'production', 'test']).default('development'),
  },
  BODY_LIMIT: {
    property: 'bodyLimit',
    group: 'Server',
    meaning: 'largest accepted request body (bigger bodies get 413)',
    schema: z
      .string()
      .default('16kb')
      .refine((value) => /^\d+(b|kb|mb)?$/i.test(value.trim()), 'must be a size such as 16kb')
      .transform((value) => value.trim().toLowerCase()),
  },
  SHUTDOWN_TIMEOUT: {
    property: 'shutdownTimeout',
    group: 'Server',
    meaning: 'seconds requests in flight get to finish after SIGTERM/SIGINT before the server exits',
    schema: seconds(10, 1),
  },
  WEB_CONCURRENCY: {
    property: 'webConcurrency',
    group: 'Server',
    meaning: 'worker processes (node:cluster) sharing the port, each a separate instance',
    schema: integer(1, 1, 64),
  },

  DATABASE_URL: {
    property: 'databaseUrl',
    group: 'Database and shared stores',
    meaning: 'PostgreSQL connection string (`postgres://user:password@host:5432/database`)',
    secret: true,
    whenUnset: 'embedded PGlite under `DATA_DIR`',
    schema: optionalText.pipe(
      z
        .string()
        .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// connection string')
        .optional(),
    ),
  },
  DATA_DIR: {
    property: 'dataDir',
    group: 'Database and shared stores',
    meaning: 'where the embedded database lives when `DATABASE_URL` is unset',
    schema: text('./data'),
  },
  DATABASE_STATEMENT_TIMEOUT: {
    property: 'databaseStatementTimeout',
    group: 'Database and shared stores',
    meaning:
      'longest a PostgreSQL statement may run, lock waits included, before it is cancelled and its request answers 503; a query that gets no answer at all is given up 2 s later',
    schema: seconds(10, 1),
  },
  REDIS_URL: {
    property: 'redisUrl',
    group: 'Database and shared stores',
    meaning: 'shared store for rate-limit counters and HMAC nonces, so several instances act as one (`redis://` or `rediss://`)',
    secret: true,
    whenUnset: 'in-process stores',
    schema: optionalText.pipe(
      z
        .string()
        .regex(/^rediss?:\/\//, 'must be a redis:// URL')
        .optional(),
    ),
  },
  REDIS_PREFIX: {
    property: 'redisPrefix',
    group: 'Database and shared stores',
    meaning: 'prefix of every Redis key, so deployments (or test runs) can share one Redis',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'must be 1-64 characters of letters, digits and ":_.-"')
      .default('gatehouse:'),
  },

  KEYS_DIR: {
    property: 'keysDir',
    group: 'Keys and tokens',
    meaning: 'folder of PEM key pairs: the newest signs, all are published in the JWKS',
    schema: text('./keys'),
  },
  JWT_PRIVATE_KEY: {
    property: 'jwtPrivateKey',
    group: 'Keys and tokens',
    meaning: 'PEM text of the RSA signing key, used instead of `KEYS_DIR` (`\\n` escapes accepted)',
    secret: true,
    whenUnset: 'the newest key in `KEYS_DIR` signs',
    schema: optionalText,
  },
  KEYS_RELOAD_INTERVAL: {
    property: 'keysReloadInterval',
    group: 'Keys and tokens',
    meaning: 'seconds between re-reads of `KEYS_DIR` (also on `SIGHUP`), so a rotation needs no restart',
    schema: seconds(60, 1),
  },
  JWT_ISSUER: { property: 'jwtIssuer', group: 'Keys and tokens', meaning: '`iss` claim of access tokens', schema: text('gatehouse') },
  JWT_AUDIENCE: { property: 'jwtAudience', group: 'Keys and tokens', meaning: '`aud` claim of access tokens', schema: text('gatehouse') },
  ACCESS_TOKEN_TTL: { property: 'accessTokenTtl', group: 'Keys and tokens', meaning: 'access token lifetime', schema: seconds(900, 1) },
  REFRESH_TOKEN_TTL: {
    property: 'refreshTokenTtl',
    group: 'Keys and tokens',
    meaning: 'lifetime of each refresh token (sliding: renewed by every refresh)',
    schema: seconds(604800, 1),
  },
  SESSION_MAX_AGE: {
    property: 'sessionMaxAge',
    group: 'Keys and tokens',
    meaning: 'absolute lifetime of a session, however often it is refreshed',
    schema: seconds(2592000, 1),
  },
  REFRESH_REUSE_GRACE: {
    property: 'refreshReuseGrace',
    group: 'Keys and tokens',
    meaning: 'seconds in which a just-rotated refresh token may be retried and get the same successor; `0` = strict',
    schema: seconds(10),
  },

  BCRYPT_COST: { property: 'bcryptCost', group: 'Passwords and lockout', meaning: 'work factor of bcrypt', schema: integer(12, 4, 15) },
  PASSWORD_MIN_LENGTH: {
    property: 'passwordMinLength',
    group: 'Passwords and lockout',
    meaning: 'minimum password length in characters (Unicode code points)',
    schema: integer(8, 1, 72),
  },
  LOGIN_MAX_FAILURES: {
    property: 'loginMaxFailures',
    group: 'Passwords and lockout',
    meaning: 'consecutive failed logins of one email from one client address that lock that email for that address',
    schema: integer(5, 1, 1000),
  },
  LOCKOUT_DURATION: {
    property: 'lockoutDuration',
    group: 'Passwords and lockout',
    meaning: 'how long a lock lasts, and how long failed logins are remembered',
    schema: seconds(900, 1),
  },
  ACCOUNT_MAX_FAILURES: {
    property: 'accountMaxFailures',
    group: 'Passwords and lockout',
    meaning:
      'failed logins of one email from all addresses together within `LOCKOUT_DURATION` that lock it for every address; `0` = off (such a lock also locks the owner out)',
    schema: integer(0, 0, 1_000_000),
  },

  HMAC_MODE: {
    property: 'hmacMode',
    group: 'HMAC request signing',
    meaning: 'whether requests must be signed: `optional` checks a signature only when its headers are present',
    schema: z.enum(['off', 'optional', 'required']),
    defaultFrom: { variable: 'NODE_ENV', when: { production: 'required' }, otherwise: 'optional' },
  },
  HMAC_CLIENTS: {
    property: 'hmacClients',
    group: 'HMAC request signing',
    meaning: 'signing clients, `clientId:secret,clientId:secret`; each secret at least 32 characters',
    secret: true,
    whenUnset: 'no clients',
    schema: hmacClients,
  },
  HMAC_MAX_SKEW: {
    property: 'hmacMaxSkew',
    group: 'HMAC request signing',
    meaning: 'allowed clock difference for `X-Timestamp`',
    schema: seconds(300, 1),
  },

  CORS_ORIGINS: {
    property: 'corsOrigins',
    group: 'CORS and proxy',
    meaning: 'comma-separated origins allowed for cross-origin browser calls; never `*`',
    whenUnset: 'no cross-origin browser access',
    schema: origins,
  },
  TRUST_PROXY: {
    property: 'trustProxy',
    group: 'CORS and proxy',
    meaning:
      'Express `trust proxy`: a hop count (e.g. `1`) or proxy addresses/subnets, never `true`; only then is `X-Forwarded-For` believed',
    schema: trustProxy,
  },

  RATE_LIMIT_WINDOW: {
    property: 'rateLimitWindow',
    group: 'Rate limits',
    meaning: 'window of the per-IP rate limits',
    schema: seconds(60, 1),
  },
  RATE_LIMIT_MAX: {
    property: 'rateLimitMax',
    group: 'Rate limits',
    meaning: 'requests per IP per window, over all routes but health and metrics',
    schema: integer(300, 1, 1_000_000),
  },
  AUTH_RATE_LIMIT_MAX: {
    property: 'authRateLimitMax',
    group: 'Rate limits',
    meaning: 'requests per IP per window, shared by `/auth/register`, `/auth/login` and `/users/me/password`',
    schema: integer(20, 1, 1_000_000),
  },

  PASSWORD_RESET_URL: {
    property: 'passwordResetUrl',
    group: 'Account recovery and mail',
    meaning: 'the link of a password-reset message, `{token}` filled in (an `https://` page or an app link)',
    schema: linkTemplate('http://localhost:3000/reset-password?token={token}'),
  },
  PASSWORD_RESET_TTL: {
    property: 'passwordResetTtl',
    group: 'Account recovery and mail',
    meaning: 'lifetime of a password-reset token',
    schema: seconds(1800, 60),
  },
  EMAIL_VERIFY_URL: {
    property: 'emailVerifyUrl',
    group: 'Account recovery and mail',
    meaning: 'the link of an email-verification message, `{token}` filled in',
    schema: linkTemplate('http://localhost:3000/verify-email?token={token}'),
  },
  EMAIL_VERIFY_TTL: {
    property: 'emailVerifyTtl',
    group: 'Account recovery and mail',
    meaning: 'lifetime of an email-verification token',
    schema: seconds(86400, 60),
  },
  RESET_MAX_PER_HOUR: {
    property: 'resetMaxPerHour',
    group: 'Account recovery and mail',
    meaning: 'messages of one kind (reset, verification) per email per hour; requests beyond it are answered alike and send nothing',
    schema: integer(3, 1, 1000),
  },
  REQUIRE_VERIFIED_EMAIL: {
    property: 'requireVerifiedEmail',
    group: 'Account recovery and mail',
    meaning: '`true`: a login with the right password to an unverified account answers 403 `EMAIL_NOT_VERIFIED`',
    schema: flag(false),
  },
  MAIL_DELIVERY: {
    property: 'mailDelivery',
    group: 'Account recovery and mail',
    meaning:
      'how messages leave the outbox: `webhook` (a signed JSON event to `MAIL_WEBHOOK_URL`), `smtp` (through `SMTP_URL`), or `outbox` (kept for `npm run mail:show`; development)',
    schema: z.enum(['outbox', 'webhook', 'smtp']).default('outbox'),
  },
  MAIL_WEBHOOK_URL: {
    property: 'mailWebhookUrl',
    group: 'Account recovery and mail',
    meaning: 'where `MAIL_DELIVERY=webhook` POSTs each message as a signed JSON event',
    secret: true,
    whenUnset: 'no webhook (required by `MAIL_DELIVERY=webhook`)',
    schema: optionalText.pipe(
      z
        .string()
        .regex(/^https?:\/\/\S+$/, 'must be an http:// or https:// URL')
        // fetch refuses a URL with credentials: every event would fail until MAIL_MAX_ATTEMPTS.
        // The events are signed with MAIL_WEBHOOK_SECRET; a receiver needing more takes it in the path.
        .refine((value) => URL.canParse(value) && new URL(value).username === '' && new URL(value).password === '', {
          message: 'must be a URL without user:password@ (events are signed with MAIL_WEBHOOK_SECRET)',
        })
        .optional(),
    ),
  },
  MAIL_WEBHOOK_SECRET: {
    property: 'mailWebhookSecret',
    group: 'Account recovery and mail',
    meaning: 'HMAC secret the webhook events are signed with (section 5 scheme); at least 32 characters',
    secret: true,
    whenUnset: 'none (required by `MAIL_DELIVERY=webhook`)',
    schema: optionalText.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  },
  SMTP_URL: {
    property: 'smtpUrl',
    group: 'Account recovery and mail',
    meaning: 'SMTP relay for `MAIL_DELIVERY=smtp` (`smtp://user:pass@host:587`, `smtps://…:465`)',
    secret: true,
    whenUnset: 'none (required by `MAIL_DELIVERY=smtp`)',
    schema: optionalText.pipe(
      z
        .string()
        .regex(/^smtps?:\/\/\S+$/, 'must be an smtp:// or smtps:// URL')
        .optional(),
    ),
  },
  MAIL_FROM: {
    property: 'mailFrom',
    group: 'Account recovery and mail',
    meaning: 'the From of SMTP messages',
    schema: text('Gatehouse <no-reply@localhost>'),
  },
  MAIL_PRODUCT_NAME: {
    property: 'mailProductName',
    group: 'Account recovery and mail',
    meaning: 'the product the messages speak for, in their subject and text',
    schema: text('Gatehouse'),
  },
  MAIL_TEMPLATES_DIR: {
    property: 'mailTemplatesDir',
    group: 'Account recovery and mail',
    meaning: 'folder of message templates replacing the built-in ones (`<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`)',
    whenUnset: 'the built-in templates',
    schema: optionalText,
  },
  MAIL_MAX_ATTEMPTS: {
    property: 'mailMaxAttempts',
    group: 'Account recovery and mail',
    meaning: 'delivery attempts of one message (with backoff) before it is marked failed, logged and counted',
    schema: integer(8, 1, 100),
  },

  LOG_LEVEL: {
    property: 'logLevel',
    group: 'Logging',
    meaning: 'least severe level logged (pino)',
    // Typed `string`, as before this declaration and as createLogger takes it.
    schema: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .transform((level): string => level),
  },

  AUDIT_RETENTION_DAYS: {
    property: 'auditRetentionDays',
    group: 'Retention',
    meaning: 'days `npm run prune` keeps audit events; expired sessions and refresh tokens are pruned too',
    schema: integer(90, 1, 36500),
  },
} as const satisfies Readonly<Record<string, ConfigVariable>>;

type Variables = typeof configVariables;
export type ConfigVariableName = keyof Variables;

/** The settings the variables fill, one per variable, typed by its schema's output. */
type Settings = {
  readonly [Name in ConfigVariableName as Variables[Name]['property']]: z.output<Variables[Name]['schema']>;
};

/** Settings computed from the others rather than read from a variable of their own. */
const derived = {
  isProduction: (settings: Settings): boolean => settings.nodeEnv === 'production',
};

type Derived = { readonly [K in keyof typeof derived]: ReturnType<(typeof derived)[K]> };

/** The service's configuration, read once from the environment at start-up; frozen. */
export type Config = { readonly [K in keyof (Settings & Derived)]: (Settings & Derived)[K] };

/** A condition between variables, checked once each is valid on its own. */
export interface ConfigRule {
  /** The variable the error names (and the docs list the rule under). */
  readonly variable: ConfigVariableName;
  /** Completes "Invalid configuration: VARIABLE …"; names other variables in capitals. */
  readonly message: string;
  readonly holds: (config: Config) => boolean;
  /**
   * A rule about serving requests (signing clients, workers, mail delivery). Operator scripts
   * serve none, so they skip it: `npm run migrate` in the image needs DATABASE_URL, not
   * HMAC_CLIENTS.
   */
  readonly servingOnly?: true;
}

export const configRules: readonly ConfigRule[] = [
  {
    variable: 'HMAC_CLIENTS',
    message: 'must list at least one client when HMAC_MODE is required',
    holds: (config) => config.hmacMode !== 'required' || config.hmacClients.size > 0,
    servingOnly: true,
  },
  {
    variable: 'SESSION_MAX_AGE',
    message: 'must be at least ACCESS_TOKEN_TTL',
    holds: (config) => config.sessionMaxAge >= config.accessTokenTtl,
  },
  {
    variable: 'WEB_CONCURRENCY',
    message: "above 1 needs DATABASE_URL: the embedded database is one process's",
    holds: (config) => config.webConcurrency === 1 || config.databaseUrl !== undefined,
    servingOnly: true,
  },
  {
    variable: 'WEB_CONCURRENCY',
    message: 'above 1 needs REDIS_URL unless HMAC_MODE is off: a nonce seen by one worker must be refused by all',
    holds: (config) => config.webConcurrency === 1 || config.hmacMode === 'off' || config.redisUrl !== undefined,
    servingOnly: true,
  },
  {
    variable: 'MAIL_DELIVERY',
    message: 'webhook needs MAIL_WEBHOOK_URL and MAIL_WEBHOOK_SECRET',
    holds: (config) => config.mailDelivery !== 'webhook' || (config.mailWebhookUrl !== undefined && config.mailWebhookSecret !== undefined),
    servingOnly: true,
  },
  {
    variable: 'MAIL_DELIVERY',
    message: 'smtp needs SMTP_URL',
    holds: (config) => config.mailDelivery !== 'smtp' || config.smtpUrl !== undefined,
    servingOnly: true,
  },
];

// --- The parser -------------------------------------------------------------------

function invalid(variable: string, message: string): ConfigError {
  return new ConfigError(`Invalid configuration: ${variable} ${message}`);
}

/** The text an unset variable with a {@link ConfigVariable.defaultFrom} default takes. */
function dependentDefault(name: string, variable: ConfigVariable, parsed: ReadonlyMap<string, unknown>): string | undefined {
  const rule = variable.defaultFrom;
  if (!rule) return undefined;
  if (!parsed.has(rule.variable)) {
    // A mistake in the declaration above, not in the environment.
    throw new TypeError(`${name}'s default depends on ${rule.variable}, which must be declared before it`);
  }
  const value = String(parsed.get(rule.variable));
  return Object.hasOwn(rule.when, value) ? rule.when[value] : rule.otherwise;
}

/**
 * Parses and validates the environment. Throws a {@link ConfigError} naming the first
 * bad variable (in declaration order), then the first broken rule between variables;
 * the returned object is frozen. `serving: false` (the operator scripts) skips the rules
 * that only matter to a server answering requests; every value is still checked.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: { serving?: boolean } = {}): Config {
  const serving = options.serving ?? true;
  const parsed = new Map<string, unknown>();
  const settings: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(configVariables) as [string, ConfigVariable][]) {
    const result = variable.schema.safeParse(env[name] ?? dependentDefault(name, variable, parsed));
    if (!result.success) throw invalid(name, result.error.issues[0]!.message);
    parsed.set(name, result.data);
    settings[variable.property] = result.data;
  }
  // Built property by property from the declaration `Settings` is mapped from.
  const base = settings as Settings;
  const config: Config = {
    ...base,
    ...(Object.fromEntries(Object.entries(derived).map(([property, derive]) => [property, derive(base)])) as Derived),
  };
  const broken = configRules.find((rule) => (serving || !rule.servingOnly) && !rule.holds(config));
  if (broken) throw invalid(broken.variable, broken.message);
  return Object.freeze(config);
}
