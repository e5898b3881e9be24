import { createPrivateKey, createPublicKey, type KeyObject, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import express from 'express';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import request from 'supertest';
import { thumbprint } from '../../src/tokens/keys';
import { createVerifier, KeysUnavailableError, type VerifierOptions, VerifyError } from '../../src/verify';
import { type AppServer, startAppServer } from '../helpers/app-server';
import { expectProblem, GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { generateRsaPem } from '../helpers/keys';
import { runInProcess } from '../helpers/scripts';
import { freePort } from '../helpers/server-process';

// A real Gatehouse listening on a port (in this process), verified over HTTP as another service would.

let gatehouse: AppServer;

beforeAll(async () => {
  gatehouse = await startAppServer();
}, 60_000);

afterAll(async () => {
  await gatehouse?.dispose();
});

function verifierFor(options: Partial<VerifierOptions> = {}) {
  return createVerifier({ jwksUrl: `${gatehouse.baseUrl}/.well-known/jwks.json`, issuer: 'gatehouse', audience: 'gatehouse', ...options });
}

/** Registers a new user on the running Gatehouse; the access token is the real thing. */
async function registerOnGatehouse(): Promise<{ userId: string; accessToken: string; refreshToken: string }> {
  const res = await fetch(`${gatehouse.baseUrl}/auth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: uniqueEmail('verify'), password: GOOD_PASSWORD }),
  });
  const body = (await res.json()) as { user: { id: string }; accessToken: string; refreshToken: string };
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(body)}`);
  return { userId: body.user.id, accessToken: body.accessToken, refreshToken: body.refreshToken };
}

/** Gatehouse's newest signing key, read from its KEYS_DIR: to make tokens that are well signed but wrong otherwise. */
function gatehouseSigningKey(): { privateKey: KeyObject; kid: string } {
  const newest = readdirSync(gatehouse.keysDir)
    .filter((name) => name.endsWith('.key.pem'))
    .sort()
    .at(-1)!;
  const privateKey = createPrivateKey(readFileSync(path.join(gatehouse.keysDir, newest), 'utf8'));
  return { privateKey, kid: thumbprint(createPublicKey(privateKey)) };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

async function jwksFetchCount(): Promise<number> {
  const text = await (await fetch(`${gatehouse.baseUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('gatehouse_http_request_duration_seconds_count{') &&
        l.includes('route="/.well-known/jwks.json"') &&
        l.includes('status="200"'),
    );
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('verify(token)', () => {
  it('when a token Gatehouse issued is verified, then the claims name its user, session and roles', async () => {
    const { userId, accessToken } = await registerOnGatehouse();

    const claims = await verifierFor().verify(accessToken);

    expect(claims).toEqual(
      expect.objectContaining({ iss: 'gatehouse', aud: 'gatehouse', sub: userId, sid: expect.any(String), roles: ['user'] }),
    );
    expect(claims.exp).toBeGreaterThan(now());
  });

  describe('forged tokens', () => {
    let gatehouseKey: { privateKey: KeyObject; kid: string };
    let otherKey: KeyObject;
    let otherKid: string;
    let real: string;

    beforeAll(async () => {
      gatehouseKey = gatehouseSigningKey();
      otherKey = generateRsaPem().privateKey;
      otherKid = thumbprint(createPublicKey(otherKey));
      real = (await registerOnGatehouse()).accessToken;
    });

    const goodClaims = () => ({
      iss: 'gatehouse',
      aud: 'gatehouse',
      sub: randomUUID(),
      sid: randomUUID(),
      jti: randomUUID(),
      roles: ['admin'],
      iat: now(),
      exp: now() + 300,
    });

    type Forge = () => Promise<string> | string;
    const signed = (
      claims: Record<string, unknown>,
      header: Record<string, unknown> = {},
      key: () => KeyObject | Uint8Array = () => gatehouseKey.privateKey,
    ): Forge => {
      return () => new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: gatehouseKey.kid, ...header }).sign(key());
    };
    const without = (name: string) => {
      const claims: Record<string, unknown> = goodClaims();
      delete claims[name];
      return claims;
    };

    // The control: the test's own signer with Gatehouse's key and every claim right verifies,
    // so each case below fails for its one alteration only.
    it('when the test signs correct claims with Gatehouse key, then the token verifies (control)', async () => {
      const token = await signed(goodClaims())();
      await expect(verifierFor().verify(token)).resolves.toEqual(expect.objectContaining({ roles: ['admin'] }));
    });

    const cases: Array<[string, () => Forge]> = [
      ['signed by another key under Gatehouse kid', () => signed(goodClaims(), {}, () => otherKey)],
      ['signed by another key under its own kid', () => signed(goodClaims(), { kid: otherKid }, () => otherKey)],
      ['alg none', () => () => `${b64({ alg: 'none', typ: 'at+jwt', kid: gatehouseKey.kid })}.${b64(goodClaims())}.`],
      [
        'HS256 keyed with the published public key',
        () =>
          signed(goodClaims(), { alg: 'HS256' }, () =>
            Buffer.from(createPublicKey(gatehouseKey.privateKey).export({ type: 'spki', format: 'pem' })),
          ),
      ],
      ['RS512 with Gatehouse key (the algorithm is pinned)', () => signed(goodClaims(), { alg: 'RS512' })],
      ['wrong audience', () => signed({ ...goodClaims(), aud: 'another-service' })],
      ['wrong issuer', () => signed({ ...goodClaims(), iss: 'someone-else' })],
      ['typ JWT', () => signed(goodClaims(), { typ: 'JWT' })],
      ['no typ', () => signed(goodClaims(), { typ: undefined })],
      ['no kid', () => signed(goodClaims(), { kid: undefined })],
      ['no exp', () => signed(without('exp'))],
      ['no sub', () => signed(without('sub'))],
      ['no sid', () => signed(without('sid'))],
      ['roles not a list', () => signed({ ...goodClaims(), roles: 'admin' })],
      ['expired and signed by another key', () => signed({ ...goodClaims(), iat: now() - 3600, exp: now() - 1800 }, {}, () => otherKey)],
      [
        'a Gatehouse token whose payload was changed after signing',
        () => () => {
          const [header, payload, signature] = real.split('.');
          return `${header}.${b64({ ...decodeJwt(`${header}.${payload}.${signature}`), roles: ['admin'] })}.${signature}`;
        },
      ],
      [
        'a Gatehouse token with its signature spelled differently (padding bits flipped)',
        () => () => {
          const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
          const last = alphabet[alphabet.indexOf(real.at(-1)!) ^ 1]!;
          return real.slice(0, -1) + last;
        },
      ],
      ['a Gatehouse token with a character appended', () => () => `${real}A`],
      ['a Gatehouse refresh token', () => async () => (await registerOnGatehouse()).refreshToken],
      ['not a token at all', () => () => 'hello'],
    ];

    // maxTokenAge: the lifetime (exp − iat) the verifier takes, plus the clock tolerance.
    it.each([
      {
        when: 'lasts 900 s (the default maxTokenAge, the contract’s default ACCESS_TOKEN_TTL)',
        lifetime: 900,
        options: {},
        expected: 'valid',
      },
      { when: 'lasts 900 + 30 s with the defaults', lifetime: 930, options: {}, expected: 'valid' },
      { when: 'lasts 900 + 31 s with the defaults', lifetime: 931, options: {}, expected: 'TOKEN_INVALID' },
      { when: 'lasts a day with the defaults', lifetime: 86_400, options: {}, expected: 'TOKEN_INVALID' },
      { when: 'lasts 3600 s and maxTokenAge is 3600', lifetime: 3600, options: { maxTokenAge: 3600 }, expected: 'valid' },
      {
        when: 'lasts 300 + 1 s, maxTokenAge 300 and no tolerance',
        lifetime: 301,
        options: { maxTokenAge: 300, clockTolerance: 0 },
        expected: 'TOKEN_INVALID',
      },
    ])('when a token well signed by Gatehouse’s key $when, then it is $expected', async ({ lifetime, options, expected }) => {
      const token = await signed({ ...goodClaims(), iat: now(), exp: now() + lifetime })();

      const outcome = await verifierFor(options)
        .verify(token)
        .then(
          () => 'valid',
          (error: unknown) => (error instanceof VerifyError ? error.code : error),
        );

      expect(outcome).toBe(expected);
    });

    it('when a token well signed by Gatehouse’s key was issued a minute from now, then verify fails with TOKEN_INVALID', async () => {
      const token = await signed({ ...goodClaims(), iat: now() + 60, exp: now() + 360 })();
      const error = await verifierFor()
        .verify(token)
        .catch((e: unknown) => e);
      expect((error as VerifyError).code).toBe('TOKEN_INVALID');
    });

    it.each(cases)('when the token is forged (%s), then verify fails with TOKEN_INVALID', async (_name, forge) => {
      const token = await forge()();

      const error = await verifierFor()
        .verify(token)
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(VerifyError);
      expect((error as VerifyError).code).toBe('TOKEN_INVALID');
    });
  });

  // The verifier's clock is moved, not the test's: no sleeping past expiry.
  it.each([
    { when: '10 s past exp with the default 30 s tolerance', secondsPastExp: 10, clockTolerance: undefined, expected: 'valid' },
    { when: '10 s past exp with no tolerance', secondsPastExp: 10, clockTolerance: 0, expected: 'TOKEN_EXPIRED' },
    { when: '31 s past exp with the default 30 s tolerance', secondsPastExp: 31, clockTolerance: undefined, expected: 'TOKEN_EXPIRED' },
  ])('when a Gatehouse token is checked $when, then it is $expected', async ({ secondsPastExp, clockTolerance, expected }) => {
    const { accessToken } = await registerOnGatehouse();
    const { exp } = decodeJwt(accessToken);
    const verifier = verifierFor({ clockTolerance, clock: () => new Date((exp! + secondsPastExp) * 1000) });

    const outcome = await verifier.verify(accessToken).then(
      () => 'valid',
      (error: unknown) => (error instanceof VerifyError ? error.code : error),
    );

    expect(outcome).toBe(expected);
  });

  it('when the JWKS cannot be fetched, then verify fails with KeysUnavailableError, not a token error', async () => {
    const { accessToken } = await registerOnGatehouse();
    const closedPort = await freePort();
    const verifier = createVerifier({
      jwksUrl: `http://127.0.0.1:${closedPort}/.well-known/jwks.json`,
      issuer: 'gatehouse',
      audience: 'gatehouse',
    });

    await expect(verifier.verify(accessToken)).rejects.toBeInstanceOf(KeysUnavailableError);
  });

  it.each([
    ['no issuer', { issuer: '' }],
    ['a relative jwksUrl', { jwksUrl: '/.well-known/jwks.json' }],
    ['a negative clockTolerance', { clockTolerance: -1 }],
    ['a maxTokenAge of 0', { maxTokenAge: 0 }],
    ['a negative maxTokenAge', { maxTokenAge: -900 }],
    ['an infinite maxTokenAge', { maxTokenAge: Infinity }],
    ['a maxTokenAge that is not a number', { maxTokenAge: '900' as unknown as number }],
  ])('when created with %s, then createVerifier throws a TypeError', (_name, bad) => {
    expect(() =>
      createVerifier({ jwksUrl: 'http://127.0.0.1/.well-known/jwks.json', issuer: 'gatehouse', audience: 'gatehouse', ...bad }),
    ).toThrow(TypeError);
  });
});

describe('middleware()', () => {
  function appWith(verifier: ReturnType<typeof createVerifier>) {
    const app = express();
    app.get('/orders', verifier.middleware(), (_req, res) => {
      res.json({ userId: res.locals.auth.sub, sessionId: res.locals.auth.sid, roles: res.locals.auth.roles });
    });
    return app;
  }

  it('when the Bearer token is valid, then the handler sees its claims on res.locals.auth', async () => {
    const { userId, accessToken } = await registerOnGatehouse();

    const res = await request(appWith(verifierFor())).get('/orders').set('Authorization', `Bearer ${accessToken}`);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ userId, sessionId: decodeJwt(accessToken).sid, roles: ['user'] });
  });

  const foreignToken = () =>
    new SignJWT({ sub: randomUUID(), sid: randomUUID() })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'x' })
      .setIssuer('gatehouse')
      .setAudience('gatehouse')
      .setExpirationTime('5m')
      .sign(generateRsaPem().privateKey);

  it.each([
    { has: 'no Authorization header', authorization: async () => undefined, code: 'TOKEN_MISSING' },
    { has: 'another scheme', authorization: async () => 'Basic dXNlcjpwYXNz', code: 'TOKEN_INVALID' },
    { has: 'a token signed by another key', authorization: async () => `Bearer ${await foreignToken()}`, code: 'TOKEN_INVALID' },
  ])('when the request has $has, then it answers 401 $code as problem+json', async ({ authorization, code }) => {
    const header = await authorization();
    let req = request(appWith(verifierFor())).get('/orders').set('X-Request-Id', 'consumer-req-1');
    if (header !== undefined) req = req.set('Authorization', header);

    const res = await req;

    expectProblem(res, 401, code);
    expect(res.body.requestId).toBe('consumer-req-1');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('when the token has expired, then it answers 401 TOKEN_EXPIRED', async () => {
    const { accessToken } = await registerOnGatehouse();
    const { exp } = decodeJwt(accessToken);
    const verifier = verifierFor({ clock: () => new Date((exp! + 60) * 1000) });

    const res = await request(appWith(verifier)).get('/orders').set('X-Request-Id', 'r-2').set('Authorization', `Bearer ${accessToken}`);

    expectProblem(res, 401, 'TOKEN_EXPIRED');
  });

  it('when the JWKS cannot be fetched, then it answers 503 UNAVAILABLE with Retry-After', async () => {
    const { accessToken } = await registerOnGatehouse();
    const closedPort = await freePort();
    const verifier = createVerifier({
      jwksUrl: `http://127.0.0.1:${closedPort}/.well-known/jwks.json`,
      issuer: 'gatehouse',
      audience: 'gatehouse',
    });

    const res = await request(appWith(verifier)).get('/orders').set('X-Request-Id', 'r-3').set('Authorization', `Bearer ${accessToken}`);

    expectProblem(res, 503, 'UNAVAILABLE');
    expect(res.headers['retry-after']).toBeDefined();
  });
});

describe('the JWKS cache', () => {
  async function tokensWithUnknownKids(count: number): Promise<string[]> {
    return Promise.all(
      Array.from({ length: count }, () => {
        const key = generateRsaPem().privateKey;
        return new SignJWT({ sub: randomUUID(), sid: randomUUID() })
          .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: thumbprint(createPublicKey(key)) })
          .setIssuer('gatehouse')
          .setAudience('gatehouse')
          .setExpirationTime('5m')
          .sign(key);
      }),
    );
  }

  it.each([
    { when: 'within the cooldown', cooldownSeconds: 600, fetches: 1 },
    { when: 'with no cooldown', cooldownSeconds: 0, fetches: 4 },
  ])(
    'when three tokens with unknown kids arrive $when, then the JWKS is fetched $fetches time(s) in all',
    async ({ cooldownSeconds, fetches }) => {
      const { accessToken } = await registerOnGatehouse();
      const unknown = await tokensWithUnknownKids(3);
      const verifier = verifierFor({ cooldownSeconds });
      const before = await jwksFetchCount();

      await verifier.verify(accessToken);
      for (const token of unknown) {
        await expect(verifier.verify(token)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
      }

      expect((await jwksFetchCount()) - before).toBe(fetches);
    },
  );

  // Last in the file: it restarts Gatehouse.
  it('when Gatehouse rotates its key and restarts, then a token with the new kid verifies in the same verifier', async () => {
    const verifier = verifierFor({ cooldownSeconds: 0 });
    const before = await registerOnGatehouse();
    await verifier.verify(before.accessToken);

    // --now: a single instance, restarted, needs no activation delay (key-rotation.test.ts runs the delayed one).
    const generated = await runInProcess('keys-generate.ts', ['--now'], { KEYS_DIR: gatehouse.keysDir });
    expect(generated.code).toBe(0);
    await gatehouse.restart();
    const after = await registerOnGatehouse();

    expect(decodeProtectedHeader(after.accessToken).kid).not.toBe(decodeProtectedHeader(before.accessToken).kid);
    await expect(verifier.verify(after.accessToken)).resolves.toMatchObject({ sub: after.userId });
    // The old key stays published, so tokens it signed live out their lifetime.
    await expect(verifier.verify(before.accessToken)).resolves.toMatchObject({ sub: before.userId });
  }, 60_000);
});
