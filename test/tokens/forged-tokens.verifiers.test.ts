import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { AppError } from '../../src/http/problem';
import { PROBLEMS, problemType } from '../../src/problems/catalogue';
import { type AccessTokenClaims, createAccessTokens } from '../../src/tokens/access-token';
import { thumbprint } from '../../src/tokens/keys';
import { createVerifier, type Verifier, VerifyError } from '../../src/verify';
import { generateRsaPem, testKeyStore } from '../helpers/keys';
import { createForgeKit, FORGED_TOKENS, type ForgeKit } from './forged-tokens';

// Every forged token of the shared table against both verifiers of Gatehouse tokens: the
// service's own (jsonwebtoken for the signature) and gatehouse/verify (jose for the signature,
// the keys fetched over HTTP from a JWKS served here). They must agree, case by case.

// Not the defaults ("gatehouse"), so that a verifier checking against a hard-coded value is caught.
const ISSUER = 'https://auth.example.test';
const AUDIENCE = 'api.example.test';
/** Both verifiers' clock, frozen: no case depends on when the suite runs. */
const NOW = new Date('2026-03-01T12:00:00.000Z');

const { store: keys } = testKeyStore();
/** Both verifiers' longest lifetime: the service's ACCESS_TOKEN_TTL, the SDK told the same as maxTokenAge. */
const TTL = 600;
const service = createAccessTokens({ keys, issuer: ISSUER, audience: AUDIENCE, ttl: TTL, clock: () => NOW });

let server: Server;
let jwksUrl: string;
let jwksRequests = 0;
let sdk: Verifier;
let kit: ForgeKit;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
    jwksRequests += 1;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(keys.jwks));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  sdk = createVerifier({ jwksUrl, issuer: ISSUER, audience: AUDIENCE, maxTokenAge: TTL, clock: () => NOW });

  const attacker = generateRsaPem().privateKey;
  kit = createForgeKit({
    issuer: ISSUER,
    audience: AUDIENCE,
    now: Math.floor(NOW.getTime() / 1000),
    ttl: TTL,
    kid: keys.signing.kid,
    privateKey: keys.signing.privateKey,
    publicKey: keys.signing.publicKey,
    attacker: { privateKey: attacker, kid: thumbprint(attacker) },
    issued: service.sign({ userId: randomUUID(), sessionId: randomUUID(), roles: ['user'] }).token,
  });
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

type Outcome = { verdict: string; claims?: AccessTokenClaims };

function serviceVerifies(token: string): Outcome {
  try {
    return { verdict: 'accepted', claims: service.verify(token) };
  } catch (error) {
    if (error instanceof AppError) return { verdict: error.code };
    throw error;
  }
}

async function sdkVerifies(token: string, verifier: Verifier = sdk): Promise<Outcome> {
  try {
    return { verdict: 'accepted', claims: await verifier.verify(token) };
  } catch (error) {
    if (error instanceof VerifyError) return { verdict: error.code };
    throw error;
  }
}

describe('the shared table of forged tokens, against the service and gatehouse/verify', () => {
  it.each(FORGED_TOKENS.map((c) => [c.name, c.expected, c] as const))(
    'when %s, then both verifiers answer %s',
    async (_name, expected, forgery) => {
      const token = forgery.build(kit);

      const [byService, bySdk] = [serviceVerifies(token), await sdkVerifies(token)];

      expect({ service: byService.verdict, sdk: bySdk.verdict }).toEqual({ service: expected, sdk: expected });
      // What a verifier hands on is the same too: one claims type, one set of values.
      expect(bySdk.claims).toEqual(byService.claims);
    },
  );

  it('when the service-issued token is accepted, then both verifiers return its claims', async () => {
    const claims = JSON.parse(Buffer.from(kit.issued.split('.')[1]!, 'base64url').toString('utf8'));

    const [byService, bySdk] = [serviceVerifies(kit.issued), await sdkVerifies(kit.issued)];

    expect(byService.claims).toEqual(claims);
    expect(bySdk.claims).toEqual(claims);
  });

  it.each([
    ['alg is none', () => kit.sign(kit.claims(), { alg: 'none' }, () => '')],
    ['typ is JWT', () => kit.sign(kit.claims(), { typ: 'JWT' })],
    ['it has no kid', () => kit.sign(kit.claims(), { kid: undefined })],
    ['its signature carries padding', () => `${kit.issued}==`],
  ])('when a token is refused by its spelling or header (%s), then gatehouse/verify fetches no keys for it', async (_name, forge) => {
    const fresh = createVerifier({ jwksUrl, issuer: ISSUER, audience: AUDIENCE, clock: () => NOW, cooldownSeconds: 0 });
    const before = jwksRequests;

    const outcome = await sdkVerifies(forge(), fresh);

    expect(outcome.verdict).toBe('TOKEN_INVALID');
    expect(jwksRequests).toBe(before);
  });
});

describe('gatehouse/verify middleware() answers as Gatehouse does', () => {
  function app(verifier: Verifier) {
    const a = express();
    a.get('/orders', verifier.middleware(), (_req, res) => {
      res.json({ sub: res.locals.auth.sub });
    });
    return a;
  }

  it.each<{ has: string; authorization: () => string | undefined; code: 'TOKEN_MISSING' | 'TOKEN_INVALID' | 'TOKEN_EXPIRED' }>([
    { has: 'no Authorization header', authorization: () => undefined, code: 'TOKEN_MISSING' },
    { has: 'a Bearer header that is not a compact JWS', authorization: () => 'Bearer a.b.', code: 'TOKEN_INVALID' },
    { has: 'a forged token', authorization: () => `Bearer ${kit.sign(kit.claims(), { typ: 'JWT' })}`, code: 'TOKEN_INVALID' },
    {
      has: 'an expired token',
      authorization: () => `Bearer ${kit.sign(kit.claims({ iat: kit.now - 660, exp: kit.now - 60 }))}`,
      code: 'TOKEN_EXPIRED',
    },
  ])('when the request has $has, then the problem is the catalogue entry for $code', async ({ authorization, code }) => {
    const header = authorization();
    let req = request(app(sdk)).get('/orders');
    if (header !== undefined) req = req.set('Authorization', header);

    const res = await req;

    expect(res.status).toBe(PROBLEMS[code].status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toEqual({
      type: problemType(code),
      title: PROBLEMS[code].title,
      status: PROBLEMS[code].status,
      detail: PROBLEMS[code].title,
      code,
    });
  });

  it('when the token is good, then the handler sees its claims', async () => {
    const res = await request(app(sdk)).get('/orders').set('Authorization', `Bearer ${kit.issued}`);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sub: serviceVerifies(kit.issued).claims!.sub });
  });
});
