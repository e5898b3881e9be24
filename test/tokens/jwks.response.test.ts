import { createPublicKey, type JsonWebKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { createApp } from '../../src/app';
import { createLogger } from '../../src/logger';
import { buildKeyStore, createKeyRing, type PublicJwk, thumbprint } from '../../src/tokens/keys';
import { registerUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { generateRsaPem, testKeyStore } from '../helpers/keys';

/** The JWKS entry another service expects for a public key, computed from the key itself. */
function expectedJwk(publicPem: string): PublicJwk {
  const key = createPublicKey(publicPem);
  const { n, e } = key.export({ format: 'jwk' });
  return { kty: 'RSA', n: String(n), e: String(e), kid: thumbprint(key), alg: 'RS256', use: 'sig' };
}

describe('GET /.well-known/jwks.json', () => {
  // The harness key was minted first; the rotated-in key is newer by file name, so it signs.
  const rotatedIn = generateRsaPem();
  const original = testKeyStore();
  const originalPublicPem = original.store.signing.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  let h: Harness;
  let rotated: Harness;
  beforeAll(async () => {
    h = await createHarness();
    const twoKeys = buildKeyStore([
      { name: '20260101T000000Z-original.key.pem', pem: original.privatePem },
      { name: '20260301T000000Z-rotated.key.pem', pem: rotatedIn.privatePem },
    ]);
    // A second app over the same database: the service after a key rotation.
    rotated = await createHarness({ database: h.database, keys: twoKeys });
  });
  afterAll(async () => {
    await rotated.close();
    await h.close();
  });

  it('when fetched, then it answers 200 with the signing key as an RS256 JWK, cacheable', async () => {
    const res = await request(h.app).get('/.well-known/jwks.json');

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toMatch(/max-age=\d+/);
    // toEqual on the whole body: no private member (d, p, q, …) may ride along.
    expect(res.body).toEqual({ keys: [expectedJwk(originalPublicPem)] });
  });

  it('when fetched with a junk Authorization header, then it is served all the same (the endpoint is public)', async () => {
    const res = await request(h.app).get('/.well-known/jwks.json').set('Authorization', 'Bearer not-a-token');
    expect(res.status).toBe(200);
  });

  it('when the key store holds two keys, then both are published', async () => {
    const res = await request(rotated.app).get('/.well-known/jwks.json');

    expect(res.status).toBe(200);
    expect(res.body.keys).toHaveLength(2);
    expect(res.body.keys).toEqual(expect.arrayContaining([expectedJwk(originalPublicPem), expectedJwk(rotatedIn.publicPem)]));
  });

  it('when another service verifies an issued token with the JWK from the endpoint, then plain jsonwebtoken accepts it', async () => {
    const user = await registerUser(rotated.app);
    const jwks = (await request(rotated.app).get('/.well-known/jwks.json')).body as { keys: PublicJwk[] };

    const { kid } = jwt.decode(user.accessToken, { complete: true })!.header;
    const jwk = jwks.keys.find((k) => k.kid === kid);
    expect(jwk).toBeDefined();
    expect(kid).toBe(thumbprint(createPublicKey(rotatedIn.publicPem)));
    const publicKey = createPublicKey({ key: jwk as unknown as JsonWebKey, format: 'jwk' });
    const claims = jwt.verify(user.accessToken, publicKey, {
      algorithms: ['RS256'],
      issuer: rotated.config.jwtIssuer,
      audience: rotated.config.jwtAudience,
      clockTimestamp: Math.floor(rotated.clock.now().getTime() / 1000),
    });

    expect(claims).toMatchObject({ sub: user.id });
  });

  it('when a token is checked against the other published key, then it does not verify (the kid matters)', async () => {
    const user = await registerUser(rotated.app);
    const jwks = (await request(rotated.app).get('/.well-known/jwks.json')).body as { keys: PublicJwk[] };
    const { kid } = jwt.decode(user.accessToken, { complete: true })!.header;

    const other = jwks.keys.find((k) => k.kid !== kid)!;
    const publicKey = createPublicKey({ key: other as unknown as JsonWebKey, format: 'jwk' });

    expect(() => jwt.verify(user.accessToken, publicKey, { algorithms: ['RS256'] })).toThrow(jwt.JsonWebTokenError);
  });

  it('when the key ring re-reads a changed set, then the next answer publishes it, and answers between reloads are the same', async () => {
    let onDisk = original.store;
    const ring = createKeyRing({ initial: onDisk, load: () => Promise.resolve(onDisk) });
    const app = createApp({ config: h.config, db: h.database.db, keys: ring, logger: createLogger('silent'), clock: h.clock.now });
    const before = await request(app).get('/.well-known/jwks.json');

    onDisk = buildKeyStore([
      { name: '20260101T000000Z-original.key.pem', pem: original.privatePem },
      { name: '20260301T000000Z-rotated.from-20990101T000000Z.key.pem', pem: rotatedIn.privatePem },
    ]);
    const unchanged = await request(app).get('/.well-known/jwks.json');
    await ring.reload();
    const after = await request(app).get('/.well-known/jwks.json');

    expect(before.body).toEqual({ keys: [expectedJwk(originalPublicPem)] });
    expect(unchanged.text).toBe(before.text);
    // The new key is pending (it signs from 2099) and published already.
    expect(after.body.keys).toEqual(expect.arrayContaining([expectedJwk(originalPublicPem), expectedJwk(rotatedIn.publicPem)]));
    expect(after.body.keys).toHaveLength(2);
    expect(after.headers['content-length']).toBe(String(Buffer.byteLength(after.text)));
  });
});
