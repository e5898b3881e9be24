import request from 'supertest';
import { computeSignature } from '../../src/signature/signer';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import {
  newNonce,
  SIGNATURE_HEADER_NAMES,
  type SignatureHeader,
  type SignedRequestOptions,
  signedAs,
  type SigningClient,
  testClients,
} from '../helpers/signing';

const MAX_SKEW = 300;
const SIGNATURE_CODES = ['SIGNATURE_MISSING', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', 'SIGNATURE_REPLAYED'];

/** A login for an address nobody registered: passes the signature, then fails on credentials. */
const unknownLogin = () => ({ email: uniqueEmail('nobody'), password: GOOD_PASSWORD });

/** A fresh signed-up user in a harness that requires signatures. */
async function registerSigned(h: Harness, client: SigningClient) {
  const email = uniqueEmail();
  const res = await signedAs(h, client)('POST', '/auth/register', { body: { email, password: GOOD_PASSWORD } });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.user.id as string, email, accessToken: res.body.accessToken as string };
}

describe('HMAC signature (HMAC_MODE=required)', () => {
  const { ios, android, hmacClients } = testClients();
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients, HMAC_MAX_SKEW: String(MAX_SKEW) } });
  });
  afterAll(async () => {
    await h.close();
  });

  const asIos = (method: string, path: string, options?: SignedRequestOptions) => signedAs(h, ios)(method, path, options);
  const now = () => Math.floor(h.clock.now().getTime() / 1000);

  it('when a request is signed correctly, then it reaches the handler', async () => {
    const res = await asIos('POST', '/auth/login', { body: unknownLogin() });
    expectProblem(res, 401, 'INVALID_CREDENTIALS');
  });

  it('when a registration is signed correctly, then the account is created', async () => {
    const res = await asIos('POST', '/auth/register', { body: { email: uniqueEmail(), password: GOOD_PASSWORD } });
    expect(res.status).toBe(201);
  });

  describe('missing headers', () => {
    it.each(SIGNATURE_HEADER_NAMES.map((name) => [name]))('when %s is missing, then it answers 401 SIGNATURE_MISSING', async (name) => {
      const res = await asIos('POST', '/auth/login', { body: unknownLogin(), omit: [name] });
      expectProblem(res, 401, 'SIGNATURE_MISSING');
    });

    it.each([
      ['POST', '/auth/register'],
      ['POST', '/auth/login'],
      ['POST', '/auth/refresh'],
      ['POST', '/auth/logout'],
      ['GET', '/users/me'],
      ['GET', '/admin/users?limit=10'],
    ])('when %s %s carries no signature at all, then it answers 401 SIGNATURE_MISSING', async (method, path) => {
      const res = await request(h.app)[method.toLowerCase() as 'get' | 'post'](path);
      expectProblem(res, 401, 'SIGNATURE_MISSING');
    });

    // Express routes ignore case and a trailing slash; the signature check must cover the same paths.
    it.each([
      ['POST', '/AUTH/login'],
      ['POST', '/auth/login/'],
      ['POST', '/Auth/Register'],
      ['GET', '/Users/me'],
      ['GET', '/users/me/'],
    ])('when %s %s (a variant of a signed route) carries no signature, then it answers 401 SIGNATURE_MISSING', async (method, path) => {
      const res = await request(h.app)[method.toLowerCase() as 'get' | 'post'](path);
      expectProblem(res, 401, 'SIGNATURE_MISSING');
    });
  });

  describe('invalid signatures', () => {
    const body = unknownLogin();
    it.each<[string, SignedRequestOptions, SigningClient?]>([
      ['the client is unknown', {}, { id: 'web', secret: 'w'.repeat(40) }],
      ['the signature was made with a wrong secret', {}, { id: 'ios', secret: 'not-the-ios-secret-but-long-enough-0123' }],
      ["the signature was made with the other client's secret", {}, { id: 'ios', secret: android.secret }],
      ['the signature is of another request', { signature: `sha256=${'ab'.repeat(32)}` }],
      ['the body was changed after signing', { signed: { body: JSON.stringify({ ...body, password: 'other' }) } }],
      ['the body was signed as empty', { signed: { body: '' } }],
      ['the path was changed after signing', { signed: { path: '/auth/register' } }],
      ['a query was added after signing', { signed: { path: '/auth/login?x=1' } }],
      ['the method was changed after signing', { signed: { method: 'PUT' } }],
      ['the nonce is 15 characters', { nonce: 'a'.repeat(15) }],
      ['the nonce is 65 characters', { nonce: 'a'.repeat(65) }],
      ['the nonce has a character outside [A-Za-z0-9_-]', { nonce: 'abcdefgh.ijklmnop' }],
      ['the nonce has a space', { nonce: 'abcdefgh ijklmnop' }],
      ['the signature is not prefixed sha256=', { signature: 'ab'.repeat(32) }],
      ['the signature is prefixed sha1=', { signature: `sha1=${'ab'.repeat(32)}` }],
      ['the signature is too short', { signature: `sha256=${'ab'.repeat(31)}` }],
      ['the timestamp is not a number', { timestamp: 'yesterday' }],
      ['the timestamp has a fraction', { timestamp: '1767225600.5' }],
      ['the timestamp is negative', { timestamp: '-1767225600' }],
    ])('when %s, then it answers 401 SIGNATURE_INVALID', async (_name, options, client = ios) => {
      const res = await signedAs(h, client)('POST', '/auth/login', { body, ...options });
      expectProblem(res, 401, 'SIGNATURE_INVALID');
    });

    it('when the path was changed after signing, then the other path is refused too', async () => {
      const res = await asIos('GET', '/admin/users?limit=10&cursor=abc', { signed: { path: '/admin/users?limit=100&cursor=abc' } });
      expectProblem(res, 401, 'SIGNATURE_INVALID');
    });

    it('when the signature is the right one in upper-case hex, then it answers 401 SIGNATURE_INVALID', async () => {
      const nonce = newNonce();
      const timestamp = String(now());
      const bytes = JSON.stringify(unknownLogin());
      const right = computeSignature(ios.secret, { method: 'POST', path: '/auth/login', timestamp, nonce, body: bytes });
      const upper = `sha256=${right.slice('sha256='.length).toUpperCase()}`;
      const res = await asIos('POST', '/auth/login', { rawBody: bytes, nonce, timestamp, signature: upper });
      expectProblem(res, 401, 'SIGNATURE_INVALID');
      // The same request with the lower-case signature is fine: only the case was wrong.
      const ok = await asIos('POST', '/auth/login', { rawBody: bytes, nonce, timestamp, signature: right });
      expectProblem(ok, 401, 'INVALID_CREDENTIALS');
    });
  });

  describe('clock window', () => {
    it.each([
      ['in the past', -(MAX_SKEW + 1)],
      ['in the future', MAX_SKEW + 1],
    ])('when the timestamp is HMAC_MAX_SKEW + 1 seconds %s, then it answers 401 SIGNATURE_EXPIRED', async (_name, offset) => {
      const res = await asIos('POST', '/auth/login', { body: unknownLogin(), timestamp: now() + offset });
      expectProblem(res, 401, 'SIGNATURE_EXPIRED');
    });

    it.each([
      ['in the past', -MAX_SKEW],
      ['in the future', MAX_SKEW],
    ])('when the timestamp is exactly HMAC_MAX_SKEW seconds %s, then it is accepted', async (_name, offset) => {
      const res = await asIos('POST', '/auth/login', { body: unknownLogin(), timestamp: now() + offset });
      expectProblem(res, 401, 'INVALID_CREDENTIALS');
    });

    // An app developer's first mistake: Date.now() sent as it is. Outside the window, so it
    // expires; its detail says what to send instead (CONTRACT.md section 5).
    it.each([
      ['the example of the contract, 1700000000000', () => 1_700_000_000_000],
      ['the harness clock in milliseconds', () => h.clock.now().getTime()],
    ])(
      'when the timestamp is in milliseconds (%s), then it answers 401 SIGNATURE_EXPIRED with a detail asking for seconds',
      async (_name, ms) => {
        const res = await asIos('POST', '/auth/login', { body: unknownLogin(), timestamp: ms() });
        expectProblem(res, 401, 'SIGNATURE_EXPIRED');
        expect(res.body.detail).toMatch(/seconds/i);
        expect(res.body.detail).toMatch(/milliseconds/i);
      },
    );

    it('when the timestamp is seconds but stale, then the detail says nothing of milliseconds', async () => {
      const res = await asIos('POST', '/auth/login', { body: unknownLogin(), timestamp: now() - MAX_SKEW - 1 });
      expectProblem(res, 401, 'SIGNATURE_EXPIRED');
      expect(res.body.detail).not.toMatch(/milliseconds/i);
    });

    it('when the client is unknown and the timestamp is in milliseconds, then it is still SIGNATURE_INVALID (no hint to a stranger)', async () => {
      const stranger = { id: 'web', secret: 'w'.repeat(40) };
      const res = await signedAs(h, stranger)('POST', '/auth/login', { body: unknownLogin(), timestamp: h.clock.now().getTime() });
      expectProblem(res, 401, 'SIGNATURE_INVALID');
    });

    it('when a request is replayed after its window has passed, then it answers 401 SIGNATURE_EXPIRED', async () => {
      const options = { body: unknownLogin(), nonce: newNonce(), timestamp: now() };
      expectProblem(await asIos('POST', '/auth/login', options), 401, 'INVALID_CREDENTIALS');
      h.clock.advance(2 * MAX_SKEW + 1);
      expectProblem(await asIos('POST', '/auth/login', options), 401, 'SIGNATURE_EXPIRED');
    });
  });

  describe('replay', () => {
    it('when the same nonce comes twice, then the second answers 401 SIGNATURE_REPLAYED', async () => {
      const nonce = newNonce();
      expectProblem(await asIos('POST', '/auth/login', { body: unknownLogin(), nonce }), 401, 'INVALID_CREDENTIALS');
      expectProblem(await asIos('POST', '/auth/login', { body: unknownLogin(), nonce }), 401, 'SIGNATURE_REPLAYED');
    });

    it.each([
      ['a current timestamp, replayed HMAC_MAX_SKEW seconds later', 0, MAX_SKEW],
      ['a timestamp HMAC_MAX_SKEW ahead, replayed 2 × HMAC_MAX_SKEW seconds later', MAX_SKEW, 2 * MAX_SKEW],
    ])(
      'when a request with %s (its timestamp still in the window), then the replay answers 401 SIGNATURE_REPLAYED',
      async (_name, ahead, later) => {
        // The nonce must be remembered for as long as its timestamp can pass the clock check.
        const options = { body: unknownLogin(), nonce: newNonce(), timestamp: now() + ahead };
        expectProblem(await asIos('POST', '/auth/login', options), 401, 'INVALID_CREDENTIALS');
        h.clock.advance(later);
        expectProblem(await asIos('POST', '/auth/login', options), 401, 'SIGNATURE_REPLAYED');
      },
    );

    it('when the exact same request is sent twice, then the second answers 401 SIGNATURE_REPLAYED and creates nothing', async () => {
      const options = { body: { email: uniqueEmail(), password: GOOD_PASSWORD }, nonce: newNonce() };
      expect((await asIos('POST', '/auth/register', options)).status).toBe(201);
      expectProblem(await asIos('POST', '/auth/register', options), 401, 'SIGNATURE_REPLAYED');
    });

    it('when the nonce was used by the other client, then it is accepted (nonces are per client)', async () => {
      const nonce = newNonce();
      expectProblem(await asIos('POST', '/auth/login', { body: unknownLogin(), nonce }), 401, 'INVALID_CREDENTIALS');
      const res = await signedAs(h, android)('POST', '/auth/login', { body: unknownLogin(), nonce });
      expectProblem(res, 401, 'INVALID_CREDENTIALS');
    });

    it('when a request with a bad signature used a nonce, then a good request with that nonce is still accepted', async () => {
      const nonce = newNonce();
      const bad = await asIos('POST', '/auth/login', { body: unknownLogin(), nonce, signature: `sha256=${'0'.repeat(64)}` });
      expectProblem(bad, 401, 'SIGNATURE_INVALID');
      const user = await registerSigned(h, ios);
      const good = await asIos('GET', '/users/me', { nonce, headers: { Authorization: `Bearer ${user.accessToken}` } });
      expect(good.status).toBe(200);
    });

    it('when an expired request used a nonce, then a good request with that nonce is still accepted', async () => {
      const nonce = newNonce();
      const expired = await asIos('POST', '/auth/login', { body: unknownLogin(), nonce, timestamp: now() - MAX_SKEW - 1 });
      expectProblem(expired, 401, 'SIGNATURE_EXPIRED');
      expectProblem(await asIos('POST', '/auth/login', { body: unknownLogin(), nonce }), 401, 'INVALID_CREDENTIALS');
    });
  });

  describe('clients', () => {
    it.each([
      ['ios', ios],
      ['android', android],
    ])('when client %s signs, then it is accepted (two secrets for rotation)', async (_name, client) => {
      const res = await signedAs(h, client)('POST', '/auth/register', { body: { email: uniqueEmail(), password: GOOD_PASSWORD } });
      expect(res.status).toBe(201);
    });
  });

  describe('exempt routes', () => {
    it.each(['/healthz', '/readyz', '/.well-known/jwks.json'])('when GET %s is not signed, then it answers 200', async (path) => {
      const res = await request(h.app).get(path);
      expect(res.status).toBe(200);
    });

    it.each(['/metrics', '/openapi.json', '/docs'])('when GET %s is not signed, then no signature is asked for', async (path) => {
      const res = await request(h.app).get(path);
      expect(SIGNATURE_CODES).not.toContain(res.body?.code);
      expect(res.status).not.toBe(401);
    });
  });

  describe('with a bearer token', () => {
    it('when the signature is valid and the token too, then GET /users/me answers 200', async () => {
      const user = await registerSigned(h, ios);
      const res = await asIos('GET', '/users/me', { headers: { Authorization: `Bearer ${user.accessToken}` } });
      expect(res.status).toBe(200);
      expect(res.body.id).toBe(user.id);
    });

    it.each<[string, SignedRequestOptions, string]>([
      ['the signature is wrong', { signature: `sha256=${'0'.repeat(64)}` }, 'SIGNATURE_INVALID'],
      ['the signature is missing', { omit: ['X-Signature'] }, 'SIGNATURE_MISSING'],
      ['the timestamp is stale', { timestamp: 1 }, 'SIGNATURE_EXPIRED'],
    ])('when %s and the bearer token is bad too, then the signature is what fails', async (_name, options, code) => {
      const res = await asIos('GET', '/users/me', { ...options, headers: { Authorization: 'Bearer not.a.token' } });
      expectProblem(res, 401, code);
    });

    it('when the signature is valid and the bearer token is bad, then it answers 401 TOKEN_INVALID', async () => {
      const res = await asIos('GET', '/users/me', { headers: { Authorization: 'Bearer not.a.token' } });
      expectProblem(res, 401, 'TOKEN_INVALID');
    });
  });
});

describe('HMAC signature (HMAC_MODE=optional)', () => {
  const { ios, hmacClients } = testClients();
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { HMAC_MODE: 'optional', HMAC_CLIENTS: hmacClients } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when a request carries no signature, then it passes', async () => {
    const res = await request(h.app).post('/auth/register').send({ email: uniqueEmail(), password: GOOD_PASSWORD });
    expect(res.status).toBe(201);
  });

  it('when a request is signed correctly, then it passes', async () => {
    const res = await signedAs(h, ios)('POST', '/auth/register', { body: { email: uniqueEmail(), password: GOOD_PASSWORD } });
    expect(res.status).toBe(201);
  });

  it('when the signature is wrong, then it answers 401 SIGNATURE_INVALID', async () => {
    const res = await signedAs(h, ios)('POST', '/auth/login', { body: unknownLogin(), signature: `sha256=${'0'.repeat(64)}` });
    expectProblem(res, 401, 'SIGNATURE_INVALID');
  });

  it('when a nonce is replayed, then it answers 401 SIGNATURE_REPLAYED', async () => {
    const nonce = newNonce();
    expectProblem(await signedAs(h, ios)('POST', '/auth/login', { body: unknownLogin(), nonce }), 401, 'INVALID_CREDENTIALS');
    expectProblem(await signedAs(h, ios)('POST', '/auth/login', { body: unknownLogin(), nonce }), 401, 'SIGNATURE_REPLAYED');
  });

  const only = (kept: SignatureHeader[]) => SIGNATURE_HEADER_NAMES.filter((name) => !kept.includes(name));
  it.each<[string, SignatureHeader[]]>([
    ['only X-Signature is sent', only(['X-Signature'])],
    ['only X-Client-Id is sent', only(['X-Client-Id'])],
    ['X-Nonce is missing', ['X-Nonce']],
    ['X-Timestamp is missing', ['X-Timestamp']],
  ])('when %s, then it answers 401 SIGNATURE_MISSING', async (_name, omit) => {
    const res = await signedAs(h, ios)('POST', '/auth/login', { body: unknownLogin(), omit });
    expectProblem(res, 401, 'SIGNATURE_MISSING');
  });
});

describe('HMAC signature (HMAC_MODE=off)', () => {
  const { ios, hmacClients } = testClients();
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { HMAC_MODE: 'off', HMAC_CLIENTS: hmacClients } });
  });
  afterAll(async () => {
    await h.close();
  });

  it.each<[string, SignedRequestOptions]>([
    ['the signature is wrong', { signature: `sha256=${'0'.repeat(64)}` }],
    ['the headers are partial', { omit: ['X-Nonce', 'X-Timestamp'] }],
    ['the timestamp is stale', { timestamp: 1 }],
    ['the nonce is malformed', { nonce: 'short' }],
  ])('when %s, then the headers are ignored', async (_name, options) => {
    const res = await signedAs(h, ios)('POST', '/auth/register', { body: { email: uniqueEmail(), password: GOOD_PASSWORD }, ...options });
    expect(res.status).toBe(201);
  });

  it('when a nonce is used twice, then both requests pass', async () => {
    const nonce = newNonce();
    for (let i = 0; i < 2; i += 1) {
      const res = await signedAs(h, ios)('POST', '/auth/register', { body: { email: uniqueEmail(), password: GOOD_PASSWORD }, nonce });
      expect(res.status).toBe(201);
    }
  });
});
