import { loadConfig } from '../src/config';
import { configErrorOf } from './helpers/config';

const SECRET_A = 'a'.repeat(32);
const SECRET_B = 'B0123456789abcdefghijklmnopqrstuvwxyz';

describe('loadConfig', () => {
  it('when the environment is empty, then every setting has the default of CONTRACT.md section 1', () => {
    const config = loadConfig({});

    expect(config).toMatchObject({
      nodeEnv: 'development',
      isProduction: false,
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: './data',
      redisUrl: undefined,
      keysDir: './keys',
      jwtPrivateKey: undefined,
      jwtIssuer: 'gatehouse',
      jwtAudience: 'gatehouse',
      accessTokenTtl: 900,
      refreshTokenTtl: 604800,
      sessionMaxAge: 2592000,
      refreshReuseGrace: 10,
      bcryptCost: 12,
      passwordMinLength: 8,
      hmacMode: 'optional',
      hmacMaxSkew: 300,
      corsOrigins: [],
      trustProxy: false,
      rateLimitWindow: 60,
      rateLimitMax: 300,
      authRateLimitMax: 20,
      loginMaxFailures: 5,
      lockoutDuration: 900,
      bodyLimit: '16kb',
      logLevel: 'info',
      shutdownTimeout: 10,
    });
    expect(config.hmacClients.size).toBe(0);
  });

  it('when NODE_ENV is production without HMAC_CLIENTS, then it refuses to start, naming HMAC_CLIENTS', () => {
    const error = configErrorOf({ NODE_ENV: 'production' });
    expect(error.message).toContain('HMAC_CLIENTS');
  });

  it('when NODE_ENV is production with HMAC_CLIENTS, then HMAC is required', () => {
    const config = loadConfig({ NODE_ENV: 'production', HMAC_CLIENTS: `ios:${SECRET_A}` });
    expect(config).toMatchObject({ nodeEnv: 'production', isProduction: true, hmacMode: 'required' });
  });

  it('when NODE_ENV is production and HMAC_MODE is given, then HMAC_MODE wins', () => {
    expect(loadConfig({ NODE_ENV: 'production', HMAC_MODE: 'optional' }).hmacMode).toBe('optional');
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['BCRYPT_COST', '3'],
    ['BCRYPT_COST', '16'],
    ['ACCESS_TOKEN_TTL', '-1'],
    ['ACCESS_TOKEN_TTL', '1.5'],
    ['HMAC_MODE', 'maybe'],
    ['HMAC_CLIENTS', `ios:${'s'.repeat(31)}`],
    ['HMAC_CLIENTS', 'nocolon'],
    ['HMAC_CLIENTS', `ios:${SECRET_A},ios:${SECRET_B}`],
    ['CORS_ORIGINS', '*'],
    ['CORS_ORIGINS', 'https://app.example.com,*'],
    ['TRUST_PROXY', 'true'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://x'],
    ['NODE_ENV', 'staging'],
    ['LOG_LEVEL', 'loud'],
    ['BODY_LIMIT', 'lots'],
  ])('when %s=%s, then it throws a one-line ConfigError naming the variable', (variable, value) => {
    const error = configErrorOf({ [variable]: value });

    expect(error.message).toContain(variable);
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it('when an HMAC client secret is too short, then the error does not repeat the secret', () => {
    const secret = 'Sh0rtButSecret-0123456789abcdef'; // 31 characters
    expect(secret).toHaveLength(31);

    const error = configErrorOf({ HMAC_CLIENTS: `ios:${secret}` });

    expect(error.message).toContain('HMAC_CLIENTS');
    expect(error.message).not.toContain(secret);
  });

  it('when HMAC_CLIENTS lists two clients, then it is a map of client id to secret', () => {
    const config = loadConfig({ HMAC_CLIENTS: ` ios:${SECRET_A} , android:${SECRET_B} ` });
    expect(config.hmacClients).toEqual(
      new Map([
        ['ios', SECRET_A],
        ['android', SECRET_B],
      ]),
    );
  });

  it('when CORS_ORIGINS lists origins, then they become a list', () => {
    const config = loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' });
    expect(config.corsOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
  });

  it.each([
    ['1', 1],
    ['loopback', 'loopback'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['false', false],
  ])('when TRUST_PROXY=%s, then trust proxy is %p', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toBe(expected);
  });

  it('when every number is given, then each is parsed as a number', () => {
    const config = loadConfig({
      PORT: '8080',
      ACCESS_TOKEN_TTL: '300',
      REFRESH_TOKEN_TTL: '3600',
      SESSION_MAX_AGE: '86400',
      REFRESH_REUSE_GRACE: '0',
      BCRYPT_COST: '4',
      HMAC_MAX_SKEW: '60',
      RATE_LIMIT_WINDOW: '30',
      RATE_LIMIT_MAX: '1000',
      AUTH_RATE_LIMIT_MAX: '5',
      LOGIN_MAX_FAILURES: '3',
      LOCKOUT_DURATION: '60',
      BODY_LIMIT: '1MB',
      DATABASE_URL: 'postgresql://gatehouse@db:5432/gatehouse',
    });
    expect(config).toMatchObject({
      port: 8080,
      accessTokenTtl: 300,
      refreshTokenTtl: 3600,
      sessionMaxAge: 86400,
      refreshReuseGrace: 0,
      bcryptCost: 4,
      hmacMaxSkew: 60,
      rateLimitWindow: 30,
      rateLimitMax: 1000,
      authRateLimitMax: 5,
      loginMaxFailures: 3,
      lockoutDuration: 60,
      bodyLimit: '1mb',
      databaseUrl: 'postgresql://gatehouse@db:5432/gatehouse',
    });
  });

  it('when loaded, then the configuration and its origin list are frozen', () => {
    const config = loadConfig({ CORS_ORIGINS: 'https://app.example.com' });

    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.corsOrigins)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(3000);
  });
});

describe('loadConfig: rules between variables', () => {
  it.each([
    [{ NODE_ENV: 'test' }, 'optional'],
    [{ NODE_ENV: 'development' }, 'optional'],
    [{ NODE_ENV: 'production', HMAC_CLIENTS: `ios:${SECRET_A}` }, 'required'],
    [{ NODE_ENV: 'production', HMAC_MODE: 'off' }, 'off'],
  ])('when the environment is %p, then HMAC_MODE is %s', (env, mode) => {
    expect(loadConfig(env).hmacMode).toBe(mode);
  });

  it.each([
    [{ HMAC_MODE: 'required' }, 'Invalid configuration: HMAC_CLIENTS must list at least one client when HMAC_MODE is required'],
    [{ NODE_ENV: 'production' }, 'Invalid configuration: HMAC_CLIENTS must list at least one client when HMAC_MODE is required'],
    [{ SESSION_MAX_AGE: '60', ACCESS_TOKEN_TTL: '61' }, 'Invalid configuration: SESSION_MAX_AGE must be at least ACCESS_TOKEN_TTL'],
  ])('when the environment is %p, then the error is %p', (env, message) => {
    expect(configErrorOf(env).message).toBe(message);
  });

  it('when SESSION_MAX_AGE equals ACCESS_TOKEN_TTL, then it is accepted', () => {
    expect(loadConfig({ SESSION_MAX_AGE: '300', ACCESS_TOKEN_TTL: '300' }).sessionMaxAge).toBe(300);
  });

  it('when a variable is bad and a rule is broken too, then the error names the bad variable', () => {
    expect(configErrorOf({ PORT: 'abc', SESSION_MAX_AGE: '60', ACCESS_TOKEN_TTL: '61' }).message).toMatch(/^Invalid configuration: PORT /);
  });

  it.each([
    ['PORT', 'abc', 'Invalid configuration: PORT must be a whole number'],
    ['BCRYPT_COST', '16', 'Invalid configuration: BCRYPT_COST must be at most 15'],
    ['CORS_ORIGINS', '*', 'Invalid configuration: CORS_ORIGINS must list origins; "*" is not allowed'],
  ])('when %s=%s, then the error reads %p', (variable, value, message) => {
    expect(configErrorOf({ [variable]: value }).message).toBe(message);
  });

  it('when blank, then DATABASE_URL, REDIS_URL and JWT_PRIVATE_KEY count as unset', () => {
    expect(loadConfig({ DATABASE_URL: ' ', REDIS_URL: '', JWT_PRIVATE_KEY: '' })).toMatchObject({
      databaseUrl: undefined,
      redisUrl: undefined,
      jwtPrivateKey: undefined,
    });
  });

  it('when the environment is empty, then the defaults not in CONTRACT.md are those of the README', () => {
    expect(loadConfig({})).toMatchObject({ redisPrefix: 'gatehouse:', auditRetentionDays: 90, shutdownTimeout: 10 });
  });
});
