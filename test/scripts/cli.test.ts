import { CliError, parseCommandLine } from '../../scripts/cli';

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
