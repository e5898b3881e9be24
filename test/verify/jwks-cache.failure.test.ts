import { createPublicKey, type KeyObject, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { thumbprint } from '../../src/tokens/keys';
import { createVerifier, KeysUnavailableError } from '../../src/verify';
import { createTestClock } from '../helpers/clock';
import { generateRsaPem } from '../helpers/keys';

/*
 * The verifier's JWKS requests stay bounded however many tokens arrive, also while the JWKS
 * endpoint fails: a stream of tokens with made-up kids (anyone can make those) must not turn
 * into a stream of requests to a Gatehouse that is already in trouble.
 */

describe('the JWKS cache while the JWKS endpoint fails', () => {
  let server: Server;
  let jwksUrl: string;
  let requests = 0;
  let failing = false;
  const key = generateRsaPem();
  const kid = thumbprint(createPublicKey(key.privateKey));

  beforeAll(async () => {
    const jwk = { ...createPublicKey(key.privateKey).export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
    server = createServer((_req, res) => {
      requests += 1;
      if (failing) return void res.writeHead(500).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    requests = 0;
    failing = false;
  });

  function tokenSignedBy(privateKey: KeyObject, headerKid: string, now: Date): Promise<string> {
    return new SignJWT({ sub: randomUUID(), sid: randomUUID(), jti: randomUUID(), roles: ['user'] })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: headerKid })
      .setIssuer('gatehouse')
      .setAudience('gatehouse')
      .setIssuedAt(Math.floor(now.getTime() / 1000))
      .setExpirationTime(Math.floor(now.getTime() / 1000) + 300)
      .sign(privateKey);
  }

  const madeUpKidTokens = (count: number, now: Date) =>
    Promise.all(Array.from({ length: count }, () => tokenSignedBy(key.privateKey, randomUUID(), now)));

  it('when tokens with made-up kids keep coming after a refetch failed, then the JWKS is requested once per cooldown', async () => {
    const clock = createTestClock();
    const verifier = createVerifier({ jwksUrl, issuer: 'gatehouse', audience: 'gatehouse', cooldownSeconds: 30, clock: clock.now });
    await expect(verifier.verify(await tokenSignedBy(key.privateKey, kid, clock.now()))).resolves.toBeDefined();
    expect(requests).toBe(1);

    clock.advance(31);
    failing = true;
    const outcomes: string[] = [];
    for (const token of await madeUpKidTokens(20, clock.now())) {
      outcomes.push(
        await verifier.verify(token).then(
          () => 'valid',
          (error: Error) => error.name,
        ),
      );
    }

    expect(requests).toBe(2);
    expect(new Set(outcomes)).toEqual(new Set(['KeysUnavailableError']));
    // The known key still verifies from the cache (it is within max-age).
    await expect(verifier.verify(await tokenSignedBy(key.privateKey, kid, clock.now()))).resolves.toBeDefined();

    clock.advance(30);
    await expect(verifier.verify((await madeUpKidTokens(1, clock.now()))[0]!)).rejects.toBeInstanceOf(KeysUnavailableError);
    expect(requests).toBe(3);
  });

  it('when the JWKS cannot be had at all, then a stream of tokens makes at most one request per second', async () => {
    const clock = createTestClock();
    failing = true;
    const verifier = createVerifier({ jwksUrl, issuer: 'gatehouse', audience: 'gatehouse', cooldownSeconds: 30, clock: clock.now });

    for (const token of await madeUpKidTokens(20, clock.now())) {
      await expect(verifier.verify(token)).rejects.toBeInstanceOf(KeysUnavailableError);
    }
    expect(requests).toBe(1);

    // Once the endpoint answers again, the next verification a second later gets the keys.
    clock.advance(1);
    failing = false;
    await expect(verifier.verify(await tokenSignedBy(key.privateKey, kid, clock.now()))).resolves.toBeDefined();
    expect(requests).toBe(2);
  });
});
