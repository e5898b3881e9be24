import { type Config, loadConfig } from '../src/config';

/**
 * `Config` as it was written by hand before it was typed from the declaration in
 * src/config.ts. A snapshot, not a second declaration: a new variable needs no change here,
 * but a property that disappears or changes type fails `tsc`.
 */
interface ConfigBeforeTheDeclaration {
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly isProduction: boolean;
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly redisUrl: string | undefined;
  readonly redisPrefix: string;
  readonly keysDir: string;
  readonly jwtPrivateKey: string | undefined;
  readonly jwtIssuer: string;
  readonly jwtAudience: string;
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
  readonly auditRetentionDays: number;
}

/** True when A and B are the same type, `readonly` and optionality included. */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** The properties of the snapshot whose type changed; `never` when none did. */
type Changed = {
  [K in keyof ConfigBeforeTheDeclaration]: Equals<Pick<Config, K>, Pick<ConfigBeforeTheDeclaration, K>> extends true ? never : K;
}[keyof ConfigBeforeTheDeclaration];

// Compile-time checks: `tsc --noEmit` (the first step of `npm test`) fails when one does not hold.
const unchanged: Equals<Changed, never> = true;
const readonlyThroughout: Equals<Config, Readonly<Config>> = true;

describe('Config type', () => {
  it('when compiled, then every property keeps its type and every property is readonly', () => {
    expect([unchanged, readonlyThroughout]).toEqual([true, true]);
  });

  it('when loaded, then the object carries every property of the snapshot', () => {
    const config: ConfigBeforeTheDeclaration = loadConfig({});
    expect(Object.keys(config)).toEqual(expect.arrayContaining(['nodeEnv', 'isProduction', 'hmacMode', 'logLevel', 'auditRetentionDays']));
  });
});
