import {
  allPassed,
  chainsApiCheck,
  expectedAnswersCheck,
  liveTokensCheck,
  loginsCheck,
  memoryCheck,
  redisTtlCheck,
  retriesCheck,
  serverErrorsCheck,
  storeSizeCheck,
  type ApiVerification,
} from '../../scripts/soak/checks';
import { readingsBetween } from '../../scripts/soak/memory';
import { Stats } from '../../scripts/soak/stats';

// The soak's checks (scripts/soak/checks.ts) as functions of what it measured: each must be
// able to fail, and say with which numbers.

const MB = 1024 * 1024;

function statsOf(answers: Array<[kind: string, status: number]>): Stats {
  const stats = new Stats();
  for (const [kind, status] of answers) stats.record(kind, status, 1);
  return stats;
}

const verified = (overrides: Partial<ApiVerification> = {}): ApiVerification => ({
  users: 3,
  loggedIn: 3,
  heads: { same: 4, total: 4 },
  listings: { same: 3, total: 3 },
  notReached: 0,
  failures: [],
  ...overrides,
});

describe('soak checks: answers', () => {
  it('when no answer is a 5xx, then the 5xx check passes with the count of answers', () => {
    const check = serverErrorsCheck(
      statsOf([
        ['me', 200],
        ['login', 401],
      ]),
    );
    expect(check).toMatchObject({ status: 'pass', detail: '0 of 2 answers' });
  });

  it('when some answers are 5xx, then the check fails naming the kinds', () => {
    const check = serverErrorsCheck(
      statsOf([
        ['me', 200],
        ['refresh', 503],
        ['refresh', 500],
        ['me', 502],
      ]),
    );
    expect(check.status).toBe('fail');
    expect(check.detail).toBe('3 of 4 answers');
    expect(check.more).toEqual(['me ×1', 'refresh ×2']);
  });

  it('when an answer was not the one expected, then the check fails and groups them', () => {
    const stats = statsOf([
      ['me', 200],
      ['me', 401],
      ['me', 401],
    ]);
    stats.recordUnexpected('me', 401, 'SESSION_REVOKED');
    stats.recordUnexpected('me', 401, 'SESSION_REVOKED');
    const check = expectedAnswersCheck(stats);
    expect(check).toMatchObject({ status: 'fail', detail: '1 of 3 as expected', more: ['me 401 SESSION_REVOKED ×2'] });
  });

  it('when 429s were waited out, then they are counted apart and do not fail the check', () => {
    const check = expectedAnswersCheck(
      statsOf([
        ['login', 429],
        ['login', 200],
      ]),
    );
    expect(check).toMatchObject({ status: 'pass', detail: '1 of 1 as expected; 1 × 429 waited out and sent again' });
  });
});

describe('soak checks: refresh retries', () => {
  it('when every retry and concurrent pair got one successor, then it passes', () => {
    expect(retriesCheck({ same: 5, total: 5 }, { same: 2, total: 2 }, true).status).toBe('pass');
  });

  it('when one concurrent pair got two successors, then it fails', () => {
    const check = retriesCheck({ same: 5, total: 5 }, { same: 1, total: 2 }, true);
    expect(check).toMatchObject({ status: 'fail', detail: '5 of 5 retries after a lost answer, 1 of 2 concurrent pairs' });
  });

  it('when the grace window is 0 or nothing was retried, then it is not checked, and says why', () => {
    expect(retriesCheck({ same: 0, total: 0 }, { same: 0, total: 0 }, false)).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('REFRESH_REUSE_GRACE'),
    });
    expect(retriesCheck({ same: 0, total: 0 }, { same: 0, total: 0 }, true).status).toBe('skip');
  });
});

describe('soak checks: users and sessions through the API', () => {
  it('when every user logged in and every chain head refreshed, then both pass', () => {
    expect(loginsCheck(verified(), 0)).toMatchObject({ status: 'pass', detail: '3 of 3' });
    expect(chainsApiCheck(verified()).status).toBe('pass');
  });

  it('when a user cannot log in, then the login check fails with the failure', () => {
    const check = loginsCheck(verified({ loggedIn: 2, failures: ['login of a@soak.example.test: 401 INVALID_CREDENTIALS'] }), 0);
    expect(check).toMatchObject({ status: 'fail', detail: '2 of 3', more: ['login of a@soak.example.test: 401 INVALID_CREDENTIALS'] });
  });

  it('when no user was registered, then the login check fails: the load did not run', () => {
    expect(loginsCheck(verified({ users: 0, loggedIn: 0 }), 0).status).toBe('fail');
  });

  it('when a chain head is refused or a session is missing from the list, then the chain check fails', () => {
    expect(chainsApiCheck(verified({ heads: { same: 3, total: 4 } })).status).toBe('fail');
    expect(chainsApiCheck(verified({ listings: { same: 2, total: 3 } })).status).toBe('fail');
  });

  it('when no user had a live session left to check, then the chain check fails rather than pass on nothing', () => {
    const check = chainsApiCheck(verified({ heads: { same: 0, total: 0 }, listings: { same: 0, total: 0 } }));
    expect(check).toMatchObject({ status: 'fail', more: ['no user had a live session left to check'] });
  });

  it('when many users fail, then six are named and the rest counted', () => {
    const failures = Array.from({ length: 10 }, (_, i) => `login of u${i}@soak.example.test: 503 UNAVAILABLE`);
    const check = loginsCheck(verified({ users: 10, loggedIn: 0, failures }), 4);
    expect(check.detail).toBe('0 of 10 (4 registrations answered 5xx or not at all, so of unknown outcome, left out)');
    expect(check.more).toHaveLength(7);
    expect(check.more!.at(-1)).toBe('… and 4 more');
  });

  it('when the deadline left users unchecked, then both checks fail', () => {
    const result = verified({ loggedIn: 2, notReached: 1 });
    expect(loginsCheck(result, 0).status).toBe('fail');
    expect(chainsApiCheck(result).status).toBe('fail');
  });
});

describe('soak checks: live refresh tokens in the database', () => {
  const known = [
    { id: 's1', state: 'live' as const },
    { id: 's2', state: 'ended' as const },
  ];
  const rows = (live1: number, revoked2: boolean, live2: number) => [
    { id: 's1', userId: 'u1', revoked: false, liveTokens: live1 },
    { id: 's2', userId: 'u1', revoked: revoked2, liveTokens: live2 },
  ];

  it('when a live session has one live token and a logged-out one none, then it passes', () => {
    const check = liveTokensCheck({ users: 1, usersFound: 1, known, rows: rows(1, true, 0) });
    expect(check.status).toBe('pass');
    expect(check.detail).toContain('1 live sessions, 1 logged out');
  });

  it.each([
    ['two live tokens in a live session', rows(2, true, 0)],
    ['no live token in a live session', rows(0, true, 0)],
    ['a logged-out session not revoked', rows(1, false, 1)],
  ])('when there are %s, then it fails', (_case, found) => {
    expect(liveTokensCheck({ users: 1, usersFound: 1, known, rows: found }).status).toBe('fail');
  });

  it('when the database holds a session the soak never opened, or lacks one it did, then it fails', () => {
    const extra = [...rows(1, true, 0), { id: 's3', userId: 'u1', revoked: false, liveTokens: 1 }];
    expect(liveTokensCheck({ users: 1, usersFound: 1, known, rows: extra }).more).toContain(
      "1 sessions of the soak's users that the soak never opened",
    );
    expect(liveTokensCheck({ users: 1, usersFound: 1, known, rows: rows(1, true, 0).slice(0, 1) }).status).toBe('fail');
  });

  it('when none of the users is in the database, then it fails saying it is not the server’s database', () => {
    const check = liveTokensCheck({ users: 2, usersFound: 0, known, rows: [] });
    expect(check).toMatchObject({ status: 'fail', detail: expect.stringContaining("the server's DATABASE_URL") });
  });
});

describe('soak checks: nonce and limiter entries', () => {
  const windows = [
    { prefix: 'g:nonce:', label: 'nonce', windowMs: 601_000 },
    { prefix: 'g:rl:', label: 'rate-limit', windowMs: 60_000 },
  ];

  it('when every key expires within its window, then it passes and counts them', () => {
    const check = redisTtlCheck(
      [
        { key: 'g:nonce:soak:abc', pttl: 600_500 },
        { key: 'g:rl:global:127.0.0.1', pttl: 30_000 },
        { key: 'g:other', pttl: -1 },
      ],
      windows,
    );
    expect(check.status).toBe('pass');
    expect(check.detail).toBe(
      '1 nonce keys, longest TTL 601 s of 601 s; 1 rate-limit keys, longest TTL 30 s of 60 s; 1 other keys not checked',
    );
  });

  it.each([
    ['a nonce without an expiry', { key: 'g:nonce:soak:abc', pttl: -1 }, 'g:nonce:soak:abc: no expiry'],
    ['a limiter key past its window', { key: 'g:rl:auth:127.0.0.1', pttl: 120_000 }, 'g:rl:auth:127.0.0.1: expires in 120 s, window 60 s'],
  ])('when there is %s, then it fails naming the key', (_case, key, problem) => {
    expect(redisTtlCheck([key], windows)).toMatchObject({ status: 'fail', more: [problem] });
  });

  it('when a key vanished between the scan and its TTL, then it is left out', () => {
    expect(redisTtlCheck([{ key: 'g:nonce:x', pttl: -2 }], windows).detail).toContain('0 nonce keys');
  });

  it('when the server exposes no store sizes, then the in-process check is not made, and says so', () => {
    expect(storeSizeCheck({}, 10, 601)).toMatchObject({ status: 'skip', detail: expect.stringContaining('does not expose') });
  });

  it('when the nonce store holds more than was signed within its window, then it fails', () => {
    const sizes = {
      nonces: { metric: 'gatehouse_nonce_store_entries', entries: 120 },
      limiterKeys: { metric: 'gatehouse_rate_limit_keys', entries: 2 },
    };
    expect(storeSizeCheck(sizes, 120, 601).status).toBe('pass');
    expect(storeSizeCheck(sizes, 100, 601).status).toBe('fail');
    expect(storeSizeCheck({ limiterKeys: { metric: 'gatehouse_rate_limit_keys', entries: 40 } }, 0, 601).status).toBe('fail');
  });
});

describe('soak checks: memory', () => {
  const reading = (mb: number, instance = '1795000000', at = 0) => ({ instance, residentBytes: mb * MB, at });

  it('when the peak after the run is within 20% of the peak after the warm-up, then it passes with both', () => {
    const check = memoryCheck([reading(150), reading(200), reading(170)], [reading(160), reading(230)]);
    expect(check).toMatchObject({ status: 'pass', detail: 'peak RSS 200.0 MB → 230.0 MB (+15.0%)' });
  });

  it('when it grew by more than 20%, then it fails', () => {
    expect(memoryCheck([reading(100)], [reading(121)]).status).toBe('fail');
  });

  it('when it shrank, then it passes', () => {
    expect(memoryCheck([reading(200)], [reading(120)]).status).toBe('pass');
  });

  it('when the one server process changed between the windows, then it restarted: fail', () => {
    expect(memoryCheck([reading(100, 'a')], [reading(100, 'b')])).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('restarted'),
    });
  });

  it('when several workers answered, then each is compared with itself', () => {
    const check = memoryCheck([reading(100, 'a'), reading(300, 'b')], [reading(110, 'a'), reading(310, 'b')]);
    expect(check.status).toBe('pass');
    expect(check.detail).toContain('per worker (2 seen in both windows)');
  });

  it('when /metrics gave no memory, then it is not checked', () => {
    expect(memoryCheck([], []).status).toBe('skip');
  });

  it('when a window holds no reading, then the last reading before it stands for it', () => {
    const readings = [reading(100, 'a', 1_000), reading(120, 'a', 5_000)];
    expect(readingsBetween(readings, 2_000, 4_000)).toEqual([readings[0]]);
    expect(readingsBetween(readings, 4_000, 6_000)).toEqual([readings[1]]);
    expect(readingsBetween(readings, 0, 500)).toEqual([]);
  });
});

describe('soak checks: the verdict', () => {
  it('when a check failed, then the soak failed; skipped checks do not fail it', () => {
    const pass = { status: 'pass' as const, title: 'a', detail: '' };
    const skip = { status: 'skip' as const, title: 'b', detail: '' };
    const fail = { status: 'fail' as const, title: 'c', detail: '' };
    expect(allPassed([pass, skip])).toBe(true);
    expect(allPassed([pass, skip, fail])).toBe(false);
  });
});
