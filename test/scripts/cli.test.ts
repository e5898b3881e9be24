import { CliError, loadScriptConfig, parseCommandLine } from '../../scripts/cli';
import { loadConfig } from '../../src/config';

// The operator scripts' shared command-line parsing (scripts/cli.ts), in process.

const spec = {
  name: 'test',
  help: 'Usage: test --kid <kid>',
  options: { kid: { type: 'string' }, email: { type: 'string' }, role: { type: 'string' }, dry: { type: 'boolean' } },
} as const;

function parse(...argv: string[]) {
  return parseCommandLine(spec, argv)?.values;
}

describe('parseCommandLine', () => {
  // A kid is a base64url SHA-256 thumbprint: 1 in 64 starts with '-', 1 in 4096 with '--'.
  it.each([['-H-Y2M11Zwjgc4eQAsgdohfubUlqK2z9BDicy2gcz2I'], ['--Y2M11Zwjgc4eQAsgdohfubUlqK2z9BDicy2gcz2Ia'], ['plain-kid']])(
    'when a string option is followed by %s, then that is its value',
    (kid) => {
      expect(parse('--kid', kid)).toEqual({ kid });
    },
  );

  it('when the value is attached with =, then it is taken as written', () => {
    expect(parse('--kid=-abc', '--dry')).toEqual({ kid: '-abc', dry: true });
  });

  it('when a string option is followed by another of the options, then the first is missing its value', () => {
    expect(() => parse('--email', '--role', 'admin')).toThrow(CliError);
    expect(() => parse('--kid', '--dry')).toThrow(CliError);
  });

  it('when a string option ends the command line, then it is missing its value', () => {
    expect(() => parse('--kid')).toThrow(/--kid/);
  });

  it('when an option is unknown, then parsing fails pointing at --help', () => {
    expect(() => parse('--kdi', 'x')).toThrow(/see --help/);
  });

  it('when tokens follow --, then they are positionals, left as they are', () => {
    expect(() => parse('--', '--kid', '-x')).toThrow(/unexpected argument "--kid"/);
  });
});

describe('loadScriptConfig', () => {
  const production = { NODE_ENV: 'production', DATABASE_URL: 'postgres://gatehouse@db.internal:5432/gatehouse' };

  it('when production runs a script without the serving setup, then the rules only a server needs are not asked for', () => {
    // The server refuses this environment: HMAC is required in production and no client is listed.
    expect(() => loadConfig(production)).toThrow(/HMAC_CLIENTS must list at least one client/);
    const config = loadScriptConfig({ ...production, WEB_CONCURRENCY: '4', MAIL_DELIVERY: 'smtp' });
    expect(config).toMatchObject({ isProduction: true, databaseUrl: production.DATABASE_URL, webConcurrency: 4 });
  });

  it('when a value is bad, or a rule scripts rely on breaks, then a script refuses it as the server does', () => {
    expect(() => loadScriptConfig({ ...production, DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL must be a postgres/);
    expect(() => loadScriptConfig({ ...production, ACCESS_TOKEN_TTL: '900', SESSION_MAX_AGE: '60' })).toThrow(
      /SESSION_MAX_AGE must be at least ACCESS_TOKEN_TTL/,
    );
  });
});
