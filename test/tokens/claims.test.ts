import { randomUUID } from 'node:crypto';
import { checkAccessTokenClaims, CLOCK_TOLERANCE_SECONDS, readAccessToken } from '../../src/tokens/claims';
import { createVerifier } from '../../src/verify';

// The forged-token table (forged-tokens.ts) checks the rules through both verifiers; this
// file checks what only the shared module itself can show.

const NOW = new Date('2026-03-01T12:00:00.000Z');
const now = Math.floor(NOW.getTime() / 1000);
const expected = { issuer: 'https://auth.example.test', audience: 'api.example.test', now: NOW, maxTokenAge: 600 };
const payload = () => ({
  iss: expected.issuer,
  aud: expected.audience,
  sub: randomUUID(),
  sid: randomUUID(),
  jti: randomUUID(),
  iat: now,
  exp: now + 600,
  roles: ['user'],
});

describe('checkAccessTokenClaims', () => {
  it('when every claim is right, then it returns the claims, with the expected issuer and audience', () => {
    const claims = { ...payload(), aud: ['another-api', expected.audience] };

    const checked = checkAccessTokenClaims(claims, expected);

    expect(checked).toEqual({ ok: true, value: { ...claims, aud: expected.audience } });
  });

  it('when no tolerance is given, then 30 s are allowed (CONTRACT.md section 4; the literal, so a change to the constant shows)', () => {
    expect(CLOCK_TOLERANCE_SECONDS).toBe(30);
  });

  it.each([
    ['10 s past exp, no tolerance', 10, 0, 'TOKEN_EXPIRED'],
    ['10 s past exp, default tolerance', 10, undefined, 'accepted'],
    ['exp reached exactly, no tolerance', 0, 0, 'TOKEN_EXPIRED'],
  ])('when a token is checked %s, then it is %s', (_name, secondsPastExp, clockTolerance, verdict) => {
    const claims = { ...payload(), iat: now - 600, exp: now - secondsPastExp };

    const checked = checkAccessTokenClaims(claims, { ...expected, ...(clockTolerance === undefined ? {} : { clockTolerance }) });

    expect(checked.ok ? 'accepted' : checked.code).toBe(verdict);
  });

  it.each([31, -1, Number.NaN])(
    'when asked for a clock tolerance of %s s, then it is a TypeError (the contract allows 0 to 30)',
    (clockTolerance) => {
      expect(() => checkAccessTokenClaims(payload(), { ...expected, clockTolerance })).toThrow(TypeError);
    },
  );

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])(
    'when asked for a maximum token lifetime of %s s, then it is a TypeError (a verifier must bound it)',
    (maxTokenAge) => {
      expect(() => checkAccessTokenClaims(payload(), { ...expected, maxTokenAge })).toThrow(TypeError);
    },
  );

  it.each([
    ['iat 30 s ahead, default tolerance', 'accepted', { iat: now + 30, exp: now + 600 }, {}],
    ['iat 1 s ahead, no tolerance', 'TOKEN_INVALID', { iat: now + 1, exp: now + 600 }, { clockTolerance: 0 }],
    ['a lifetime of maxTokenAge + 30 s, default tolerance', 'accepted', { iat: now, exp: now + 630 }, {}],
    ['a lifetime of maxTokenAge + 1 s, no tolerance', 'TOKEN_INVALID', { iat: now, exp: now + 601 }, { clockTolerance: 0 }],
  ])('when a token is checked with %s, then it is %s', (_name, verdict, times, options) => {
    const checked = checkAccessTokenClaims({ ...payload(), ...times }, { ...expected, ...options });

    expect(checked.ok ? 'accepted' : checked.code).toBe(verdict);
  });

  it('when gatehouse/verify is created with more than 30 s of clock tolerance, then createVerifier throws a TypeError', () => {
    const options = { jwksUrl: 'http://127.0.0.1/.well-known/jwks.json', issuer: 'gatehouse', audience: 'gatehouse' };
    expect(() => createVerifier({ ...options, clockTolerance: 31 })).toThrow(TypeError);
    expect(() => createVerifier({ ...options, clockTolerance: 30 })).not.toThrow();
  });
});

describe('readAccessToken', () => {
  const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  it('when the header is right, then it names the kid and hands over header and payload undecided', () => {
    const header = { alg: 'RS256', typ: 'at+jwt', kid: 'k1' };
    const claims = payload();

    const read = readAccessToken(`${segment(header)}.${segment(claims)}.c2ln`);

    expect(read).toEqual({ ok: true, value: { kid: 'k1', header, payload: claims } });
  });

  it('when the header is not UTF-8, then it is refused rather than read with replacement characters', () => {
    const header = Buffer.concat([Buffer.from('{"alg":"RS256","typ":"at+jwt","kid":"'), Buffer.from([0xff]), Buffer.from('"}')]).toString(
      'base64url',
    );

    const read = readAccessToken(`${header}.${segment(payload())}.c2ln`);

    expect(read).toMatchObject({ ok: false, code: 'TOKEN_INVALID' });
  });
});
