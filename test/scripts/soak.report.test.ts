import { CliError } from '../../scripts/cli';
import { adminCredentials, loopbackUrl, signingClient, wholeNumber } from '../../scripts/soak/options';
import { parsePrometheus, processMemory, storeSizes } from '../../scripts/soak/prometheus';
import { formatStatuses, renderReport } from '../../scripts/soak/report';
import { percentile, Stats, summarizeUnexpected } from '../../scripts/soak/stats';
import { escapeGlob } from '../../scripts/soak/verify';
import { sessionIdOf } from '../../scripts/soak/load';

// The soak's options, its reading of /metrics and its report (scripts/soak/*), in process.

describe('soak options: loopback only', () => {
  it.each(['http://127.0.0.1:3000', 'http://localhost:3000', 'http://[::1]:3000/', 'http://127.1.2.3'])(
    'when --url is %s, then it is taken',
    (url) => {
      expect(loopbackUrl(url)).toBeInstanceOf(URL);
    },
  );

  it.each([
    'http://10.0.0.5:3000',
    'http://gatehouse.example.com',
    'http://127.0.0.1.example.com',
    'http://0.0.0.0:3000',
    'http://[::ffff:a00:5]',
  ])('when --url is %s, then it is refused in one line saying why', (url) => {
    expect(() => loopbackUrl(url)).toThrow(CliError);
    expect(() => loopbackUrl(url)).toThrow(/only against one on this machine/);
  });

  it.each(['https://127.0.0.1:3000', 'http://127.0.0.1:3000/api', 'http://user:pw@127.0.0.1:3000', 'not a url'])(
    'when --url is %s, then it is refused',
    (url) => {
      expect(() => loopbackUrl(url)).toThrow(CliError);
    },
  );
});

describe('soak options: numbers, client and admin', () => {
  it('when a number is absent, out of bounds or not whole, then the default is used or it is refused naming the option', () => {
    expect(wholeNumber('duration', undefined, 60, 1, 100)).toBe(60);
    expect(wholeNumber('duration', ' 30 ', 60, 1, 100)).toBe(30);
    expect(() => wholeNumber('duration', '0', 60, 1, 100)).toThrow(/--duration must be a whole number from 1 to 100/);
    expect(() => wholeNumber('duration', '1.5', 60, 1, 100)).toThrow(CliError);
  });

  const clients = new Map([
    ['ios', 'i'.repeat(32)],
    ['android', 'a'.repeat(32)],
  ]);

  it('when no client is given, then the first of HMAC_CLIENTS signs', () => {
    expect(signingClient(undefined, clients, false)).toEqual({ id: 'ios', secret: 'i'.repeat(32) });
  });

  it('when --client names a client or gives id:secret, then that one signs; a secret may hold colons', () => {
    expect(signingClient('android', clients, false)?.id).toBe('android');
    expect(signingClient('cli:se:cret', new Map(), false)).toEqual({ id: 'cli', secret: 'se:cret' });
  });

  it('when no client can be found, then it says how to give one, and never echoes a secret', () => {
    expect(() => signingClient(undefined, new Map(), false)).toThrow(/--client id:secret.*--unsigned/);
    expect(() => signingClient('web', clients, false)).toThrow('client "web" is not in HMAC_CLIENTS');
  });

  it('when --unsigned, then nothing signs; with --client too, it is refused', () => {
    expect(signingClient(undefined, clients, true)).toBeUndefined();
    expect(() => signingClient('ios', clients, true)).toThrow(CliError);
  });

  it('when --admin is EMAIL:PASSWORD, then both are taken; otherwise refused', () => {
    expect(adminCredentials('ada@example.test:pass:word')).toEqual({ email: 'ada@example.test', password: 'pass:word' });
    expect(adminCredentials(undefined)).toBeUndefined();
    expect(() => adminCredentials('ada@example.test')).toThrow(CliError);
    expect(() => adminCredentials('ada@example.test:')).toThrow(CliError);
  });
});

describe('soak: /metrics', () => {
  const text = [
    '# HELP process_resident_memory_bytes Resident memory size in bytes.',
    '# TYPE process_resident_memory_bytes gauge',
    'process_resident_memory_bytes 123456789',
    'process_start_time_seconds 1795000000',
    'gatehouse_http_request_duration_seconds_bucket{le="+Inf",route="/users/me",method="GET",status="200"} 42',
    'gatehouse_logins_total{result="invalid_credentials"} 3',
    'label_with_escape{path="a\\"b\\\\c"} 1',
    'not a sample line',
  ].join('\n');

  it('when the text has samples, comments and labels, then each sample is read with its labels', () => {
    const samples = parsePrometheus(text);
    expect(samples).toHaveLength(5);
    expect(samples[2]).toEqual({
      name: 'gatehouse_http_request_duration_seconds_bucket',
      labels: { le: '+Inf', route: '/users/me', method: 'GET', status: '200' },
      value: 42,
    });
    expect(samples[4]!.labels.path).toBe('a"b\\c');
  });

  it('when it has the process metrics, then the memory of the process that answered is read, named by its start time', () => {
    expect(processMemory(parsePrometheus(text))).toEqual({ instance: '1795000000', residentBytes: 123456789 });
    expect(processMemory(parsePrometheus('gatehouse_logins_total 1'))).toBeUndefined();
  });

  it('when store sizes are exposed, then they are found by name; counters are not sizes', () => {
    const samples = parsePrometheus(
      [
        'gatehouse_nonce_store_entries 17',
        'gatehouse_rate_limit_keys{limiter="global"} 1',
        'gatehouse_rate_limit_keys{limiter="auth"} 1',
        'gatehouse_rate_limit_store_errors_total 5',
      ].join('\n'),
    );
    expect(storeSizes(samples)).toEqual({
      nonces: { metric: 'gatehouse_nonce_store_entries', entries: 17 },
      limiterKeys: { metric: 'gatehouse_rate_limit_keys', entries: 2 },
    });
    expect(storeSizes(parsePrometheus(text))).toEqual({});
  });
});

describe('soak: stats and report', () => {
  it('when percentiles are asked, then they are nearest-rank over the values', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('when signed requests were sent over time, then those since a moment are counted', () => {
    const stats = new Stats();
    stats.signedAt.push(1_000, 2_000, 3_000);
    expect(stats.signedSince(2_000)).toBe(2);
    expect(stats.signedSince(4_000)).toBe(0);
  });

  it('when statuses are shown, then in order, with no answer named', () => {
    expect(
      formatStatuses(
        new Map([
          [401, 2],
          [200, 5],
          [0, 1],
        ]),
      ),
    ).toBe('no answer×1 200×5 401×2');
  });

  it('when unexpected answers repeat, then they are grouped, most frequent first, and capped', () => {
    const many = Array.from({ length: 9 }, (_, i) => ({ kind: `k${i}`, status: 500, code: 'INTERNAL' }));
    const lines = summarizeUnexpected([
      { kind: 'me', status: 0, code: 'ECONNRESET' },
      ...many,
      { kind: 'me', status: 0, code: 'ECONNRESET' },
    ]);
    expect(lines[0]).toBe('me no answer ECONNRESET ×2');
    expect(lines).toHaveLength(7);
    expect(lines.at(-1)).toBe('… and 4 more');
  });

  it('when the report is rendered, then it has the requests by kind, the checks with their marks and the verdict', () => {
    const stats = new Stats();
    stats.record('register', 201, 400);
    stats.record('me', 200, 10);
    stats.record('me', 200, 20);
    const report = renderReport({
      heading: ['Gatehouse soak'],
      stats,
      notes: ['admin reads skipped'],
      checks: [
        { status: 'pass', title: 'no 5xx', detail: '0 of 3 answers' },
        { status: 'skip', title: 'memory', detail: 'not checked' },
        { status: 'fail', title: 'logins', detail: '1 of 2', more: ['login of a: 401'] },
      ],
    });
    const lines = report.split('\n');
    expect(lines).toContain('✓ no 5xx: 0 of 3 answers');
    expect(lines).toContain('– memory: not checked');
    expect(lines).toContain('✗ logins: 1 of 2');
    expect(lines).toContain('    login of a: 401');
    expect(lines).toContain('note: admin reads skipped');
    expect(lines.find((l) => l.startsWith('me '))).toMatch(/^me\s+2\s+10\.0\s+20\.0\s+200×2$/);
    expect(lines.find((l) => l.startsWith('all '))).toMatch(/^all\s+3\s+20\.0\s+400$/);
    expect(lines.at(-1)).toBe('soak FAILED: 1 check failed');
  });
});

describe('soak: a long run', () => {
  it('when a kind has more answers than a function call takes arguments, then the report still renders them', () => {
    const stats = new Stats();
    for (let i = 0; i < 300_000; i++) stats.record('me', 200, i % 100);
    const lines = renderReport({ heading: [], stats, notes: [], checks: [] }).split('\n');
    expect(lines.find((l) => l.startsWith('me '))).toMatch(/^me\s+300000\s+49\.0\s+98\.0\s+200×300000$/);
  });
});

describe('soak: small helpers', () => {
  it('when a Redis prefix holds glob characters, then they are escaped for SCAN', () => {
    expect(escapeGlob('gh:[x]*?\\')).toBe('gh:\\[x\\]\\*\\?\\\\');
  });

  it('when an access token is read, then its sid is taken from the payload', () => {
    const payload = Buffer.from(JSON.stringify({ sub: 'u', sid: 's-1' })).toString('base64url');
    expect(sessionIdOf(`e30.${payload}.sig`)).toBe('s-1');
    expect(() => sessionIdOf(`e30.${Buffer.from('{}').toString('base64url')}.sig`)).toThrow();
  });
});
