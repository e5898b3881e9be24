import { sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import fc from 'fast-check';
import { sql } from 'kysely';
import request from 'supertest';
import { decodeCursor, encodeCursor } from '../../src/admin/cursor';
import type { DatabaseHandle } from '../../src/db/database';
import { AppError } from '../../src/http/problem';
import { MemoryNonceStore } from '../../src/signature/nonce-store';
import { verifySignature } from '../../src/signature/signature.middleware';
import { computeSignature, signRequest } from '../../src/signature/signer';
import { createAccessTokens } from '../../src/tokens/access-token';
import { createVerifier, VerifyError } from '../../src/verify';
import { createTestClock } from '../helpers/clock';
import { DATABASE_KINDS, openTestDatabase } from '../helpers/databases';
import { testKeyStore } from '../helpers/keys';
import { headerValue, hostileJson, hostileKey, hostileString, objectOf } from './arbitraries';

/*
 * The same generated hostile input, for the functions that read what a caller sends before
 * anything else does: the access-token verifiers (the service's own and the published
 * gatehouse/verify), the request-signature check, and the admin cursor decoder. Any input
 * either succeeds or fails with the module's own typed error, never anything else; and where
 * two implementations read the same thing, they agree.
 *
 * Bounded (RUNS; FUZZ_RUNS overrides it, FUZZ_SEED replays a failure); a failure prints
 * fast-check's report: the seed, the path and the shrunk input.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const settings = { numRuns: RUNS, seed: SEED };

const b64 = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64url');
const b64json = (value: unknown) => b64(JSON.stringify(value) ?? 'null');

// ---- access tokens ---------------------------------------------------------------------------------

const ISSUER = 'gatehouse';
const AUDIENCE = 'gatehouse';
const TTL = 900;
const clock = createTestClock(new Date('2026-06-01T12:00:00Z'));
const NOW = Math.floor(clock.now().getTime() / 1000);
const keys = testKeyStore().store;

/** A compact JWS over exactly these header and payload segments, signed RS256 with the service's key. */
function signed(headerSegment: string, payloadSegment: string): string {
  const signature = sign('sha256', Buffer.from(`${headerSegment}.${payloadSegment}`), keys.signing.privateKey);
  return `${headerSegment}.${payloadSegment}.${b64(signature)}`;
}

const goodHeader = () => ({ alg: 'RS256', typ: 'at+jwt', kid: keys.signing.kid });
const goodClaims = () => ({
  iss: ISSUER,
  aud: AUDIENCE,
  sub: '0b5a3a64-2b7b-4d4f-9d41-3c0f9c7d2a11',
  sid: '9a1e7b44-0c3d-4a5e-8f61-2b7c9d0e1f23',
  jti: 'a-token-id',
  iat: NOW - 10,
  exp: NOW - 10 + TTL,
  roles: ['user'],
});

/** An object with one member changed, removed or added; keys and values hostile. */
function mutated(base: Record<string, unknown>, special: fc.Arbitrary<unknown>): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(base);
  const entries = Object.entries(base);
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant(base) },
    fc
      .tuple(fc.constantFrom(...keys), fc.oneof(hostileJson, special))
      .map(([key, value]) => objectOf(entries.map(([k, v]) => [k, k === key ? value : v]))),
    fc.constantFrom(...keys).map((key) => objectOf(entries.filter(([k]) => k !== key))),
    fc.tuple(hostileKey, hostileJson).map(([key, value]) => objectOf([...entries, [key, value]])),
  );
}

/** Values at the edges of the claim rules: times around now and the TTL, near-UUIDs, near-types. */
const claimEdges: fc.Arbitrary<unknown> = fc.constantFrom(
  NOW,
  NOW - 31,
  NOW - 30,
  NOW + 30,
  NOW + 31,
  NOW + TTL + 31,
  NOW + 1e12,
  -1,
  0,
  1.5,
  Number.MAX_VALUE,
  String(NOW + TTL),
  'RS256',
  'none',
  'HS256',
  'AT+JWT',
  'application/at+jwt',
  'JWT',
  ['gatehouse', 'other'],
  ['other'],
  [],
  '0B5A3A64-2B7B-4D4F-9D41-3C0F9C7D2A11',
  '0b5a3a64-2b7b-4d4f-9d41-3c0f9c7d2a1',
  ['b64'],
  false,
);

/** Usually null; one time in nine a value. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>) => fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

/** Good tokens issued at another time: around expiry, around the clock tolerance, from the future. */
const shiftedToken = fc
  .constantFrom(-100000, -931, -930, -929, -900, -31, -30, 0, 29, 30, 31, 900)
  .map((shift) => signed(b64json(goodHeader()), b64json({ ...goodClaims(), iat: NOW - TTL + shift, exp: NOW + shift })));

/** Tokens from the obviously wrong to the nearly right: most are signed with the real key over hostile contents. */
const tokenArbitrary: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: shiftedToken },
  { weight: 1, arbitrary: hostileString },
  {
    weight: 1,
    arbitrary: fc.array(fc.oneof(hostileString, fc.base64String()), { minLength: 2, maxLength: 4 }).map((parts) => parts.join('.')),
  },
  {
    weight: 6,
    arbitrary: fc
      .record({
        header: mutated(goodHeader(), claimEdges),
        payload: mutated(goodClaims(), claimEdges),
        // Segments that are not JSON, or not UTF-8, now and then.
        rawHeader: rarely(fc.constantFrom('', 'e30', 'bnVsbA', '_w', b64(Buffer.from([0xff, 0xfe])), 'eyJhbGciOiJSUzI1NiJ9==')),
        rawPayload: rarely(fc.constantFrom('', 'W10', 'bnVsbA', 'MQ', b64(Buffer.from([0xc0, 0xaf])), 'e30=')),
        signature: fc.constantFrom('good', 'good', 'good', 'empty', 'flipped', 'other'),
      })
      .map(({ header, payload, rawHeader, rawPayload, signature }) => {
        const headerSegment = rawHeader ?? b64json(header);
        const payloadSegment = rawPayload ?? b64json(payload);
        const token = signed(headerSegment, payloadSegment);
        const [h, p, s] = token.split('.') as [string, string, string];
        if (signature === 'empty') return `${h}.${p}.`;
        if (signature === 'flipped') return `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
        if (signature === 'other') return `${h}.${p}.${signed(b64json(goodHeader()), b64json(goodClaims())).split('.')[2]}`;
        return token;
      }),
  },
);

type Outcome = { ok: true; sub: string } | { ok: false; code: string };

describe('the access-token verifiers, on generated tokens', () => {
  const tokens = createAccessTokens({ keys, issuer: ISSUER, audience: AUDIENCE, ttl: TTL, clock: clock.now });
  let jwksServer: Server;
  let verifier: ReturnType<typeof createVerifier>;

  beforeAll(async () => {
    const body = JSON.stringify(keys.jwks);
    jwksServer = createServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json' }).end(body));
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const { port } = jwksServer.address() as AddressInfo;
    verifier = createVerifier({
      jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
      issuer: ISSUER,
      audience: AUDIENCE,
      maxTokenAge: TTL,
      clock: clock.now,
    });
  });

  afterAll(async () => {
    jwksServer?.closeAllConnections();
    await new Promise((resolve) => jwksServer?.close(resolve));
  });

  function service(token: unknown): Outcome {
    try {
      return { ok: true, sub: tokens.verify(token as string).sub };
    } catch (error) {
      if (error instanceof AppError && (error.code === 'TOKEN_INVALID' || error.code === 'TOKEN_EXPIRED'))
        return { ok: false, code: error.code };
      throw error;
    }
  }

  async function published(token: unknown): Promise<Outcome> {
    try {
      return { ok: true, sub: (await verifier.verify(token as string)).sub };
    } catch (error) {
      if (error instanceof VerifyError) return { ok: false, code: error.code };
      throw error;
    }
  }

  test('when a token is anything at all, then the service verifier returns claims or throws TOKEN_INVALID or TOKEN_EXPIRED, nothing else', () => {
    const verdicts = new Set<string>();
    fc.assert(
      fc.property(fc.oneof({ weight: 8, arbitrary: tokenArbitrary }, { weight: 1, arbitrary: hostileJson }), (token) => {
        const outcome = service(token);
        verdicts.add(outcome.ok ? 'accepted' : outcome.code);
        if (outcome.ok) expect(outcome.sub).toMatch(/^[0-9a-f-]{36}$/i);
      }),
      settings,
    );
    // The generator reaches every verdict: tokens good enough to pass, expired ones, and refusals.
    expect([...verdicts].sort()).toEqual(['TOKEN_EXPIRED', 'TOKEN_INVALID', 'accepted']);
  });

  test('when a token is anything at all, then gatehouse/verify resolves to claims or rejects with a VerifyError, and agrees with the service', async () => {
    // Sanity: the generator's "good" token is one both accept.
    expect(service(signed(b64json(goodHeader()), b64json(goodClaims())))).toEqual({ ok: true, sub: goodClaims().sub });
    await fc.assert(
      // An empty token is TOKEN_MISSING to gatehouse/verify, by its contract; the service never verifies one (parseBearer stops it).
      fc.asyncProperty(
        tokenArbitrary.filter((token) => token !== ''),
        async (token) => {
          // The same token, the same clock: the same verdict, down to the code (one set of rules, claims.ts).
          expect(await published(token)).toEqual(service(token));
        },
      ),
      settings,
    );
  });

  test('when its middleware gets any Authorization header, then it answers a 401 or 503 problem or lets the request through', async () => {
    const app = express();
    app.get('/protected', verifier.middleware(), (_req, res) => void res.status(204).end());
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          headerValue,
          // What an HTTP header can carry at all, within Node's 16 kB of headers (past it, Node's own
          // parser answers 431 before any middleware runs).
          tokenArbitrary
            .map((token) => `Bearer ${token}`)
            .filter((value) => value.length <= 8000 && /^[\t\x20-\x7e\x80-\xff]*$/.test(value)),
        ),
        async (authorization) => {
          const res = await request(app).get('/protected').set('Authorization', authorization);
          if (res.status === 204) return;
          expect([401, 503]).toContain(res.status);
          expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
          expect(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'UNAVAILABLE']).toContain(res.body.code);
        },
      ),
      { ...settings, numRuns: Math.ceil(RUNS / 3) },
    );
  });
});

// ---- request signatures -----------------------------------------------------------------------------

describe('the request-signature check, on generated headers and requests', () => {
  const secret = 'a-client-secret-of-at-least-32-characters';
  const clients = new Map([['ios', secret]]);
  const SIGNATURE_CODES = ['SIGNATURE_MISSING', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', 'SIGNATURE_REPLAYED'];

  /** Runs the middleware as Express would, on a request made of these parts: `next` or its typed error. */
  async function check(parts: { method: string; target: string; body: Buffer | undefined; headers: Record<string, string | undefined> }) {
    const middleware = verifySignature({
      mode: 'required',
      clients,
      maxSkew: 300,
      nonces: new MemoryNonceStore(clock.now),
      clock: clock.now,
    });
    const req = {
      method: parts.method,
      originalUrl: parts.target,
      rawBody: parts.body,
      get: (name: string) => parts.headers[name.toLowerCase()],
    } as unknown as Request;
    let passed = false;
    try {
      await middleware(req, {} as Response, (error?: unknown) => {
        if (error !== undefined)
          throw new Error(`next was called with an error: ${error instanceof Error ? error.message : JSON.stringify(error)}`);
        passed = true;
      });
    } catch (error) {
      if (error instanceof AppError && SIGNATURE_CODES.includes(error.code)) return { passed: false, code: error.code };
      throw error;
    }
    return { passed, code: undefined };
  }

  const requestParts = fc.record({
    method: fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'get'), hostileString),
    target: fc.oneof(
      fc.constantFrom('/users/me', '/admin/users?limit=10', '/'),
      hostileString.map((text) => `/${text}`),
    ),
    body: fc.option(
      fc.oneof(
        hostileString.map((text) => Buffer.from(text)),
        fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
      ),
      {
        nil: undefined,
      },
    ),
  });

  /** One header: absent, as signed, or hostile (any text: a plain call takes what no HTTP parser would). */
  const headerCase = <T>(good: T) =>
    fc.oneof({ weight: 4, arbitrary: fc.constant<string | T | undefined>(good) }, fc.constant(undefined), hostileString, headerValue);

  test('when the headers are anything at all, then it passes the request on or refuses it with a SIGNATURE_ code, nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(
        requestParts,
        fc.record({
          clientId: headerCase('ios'),
          timestamp: headerCase('now'),
          nonce: headerCase('n0nce-n0nce-n0nce-1234'),
          signature: headerCase('good'),
        }),
        async (parts, headers) => {
          const timestamp = headers.timestamp === 'now' ? String(NOW) : headers.timestamp;
          const nonce = headers.nonce;
          const good = computeSignature(secret, {
            method: parts.method,
            path: parts.target,
            timestamp: timestamp ?? '',
            nonce: nonce ?? '',
            body: parts.body,
          });
          const outcome = await check({
            ...parts,
            headers: {
              'x-client-id': headers.clientId,
              'x-timestamp': timestamp,
              'x-nonce': nonce,
              'x-signature': headers.signature === 'good' ? good : headers.signature,
            },
          });
          // Passing takes every header as signed (a hostile value can still be the signed one).
          if (outcome.passed) expect([headers.clientId, headers.signature]).toEqual(['ios', 'good']);
        },
      ),
      settings,
    );
  });

  test('when any request is signed with gatehouse/signer, then the check passes it; and when one byte of it changes, then it refuses it', async () => {
    await fc.assert(
      fc.asyncProperty(requestParts, fc.nat(), async (parts, at) => {
        const headers = signRequest({
          clientId: 'ios',
          secret,
          method: parts.method,
          path: parts.target,
          body: parts.body,
          timestamp: NOW,
        });
        const lower = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
        const signedOk = await check({ ...parts, headers: lower });
        // A method is compared upper-cased, and a lone surrogate in a path or body is signed as U+FFFD:
        // what is sent on the wire is bytes, and these strings are the same bytes.
        expect(signedOk).toEqual({ passed: true, code: undefined });

        const target =
          parts.target.length > 1
            ? `${parts.target.slice(0, 1 + (at % (parts.target.length - 1)))}~${parts.target.slice(2 + (at % (parts.target.length - 1)))}`
            : '/~';
        if (Buffer.from(target).equals(Buffer.from(parts.target))) return;
        expect(await check({ ...parts, target, headers: lower })).toEqual({ passed: false, code: 'SIGNATURE_INVALID' });
      }),
      settings,
    );
  });
});

// ---- admin cursors ------------------------------------------------------------------------------------

const two = (min: number, max: number) => fc.integer({ min, max }).map((n) => String(n).padStart(2, '0'));

/** Timestamps in the cursor's shape, months, days and hours out of range among them. */
const cursorTimestamp = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: 0, max: 9999 }).map((n) => String(n).padStart(4, '0')),
      fc.constantFrom('0000', '0001', '1969', '9999', '+002'),
    ),
    two(0, 13),
    two(0, 32),
    two(0, 25),
    two(0, 61),
    two(0, 61),
    fc.integer({ min: 0, max: 999999 }).map((n) => String(n).padStart(6, '0')),
  )
  .map(([y, mo, d, h, mi, s, us]) => `${y}-${mo}-${d}T${h}:${mi}:${s}.${us}Z`);

const cursorArbitrary: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: hostileString },
  { weight: 1, arbitrary: hostileJson.map((value) => b64json(value)) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.oneof({ weight: 4, arbitrary: cursorTimestamp }, hostileJson),
        fc.oneof(
          { weight: 4, arbitrary: fc.uuid() },
          fc.constantFrom('00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
          hostileJson,
        ),
        fc.array(hostileJson, { maxLength: 1 }),
      )
      .map(([at, id, more]) => b64json([at, id, ...more])),
  },
  // The right text in a non-canonical spelling: standard base64, padding.
  {
    weight: 1,
    arbitrary: fc.tuple(cursorTimestamp, fc.uuid()).map(([at, id]) => `${Buffer.from(JSON.stringify([at, id])).toString('base64')}==`),
  },
);

for (const kind of DATABASE_KINDS) {
  describe(`the admin cursor decoder, on generated cursors (${kind})`, () => {
    let database: DatabaseHandle;

    beforeAll(async () => {
      database = await openTestDatabase(kind);
    });

    afterAll(async () => {
      await database?.close();
    });

    test('when a cursor is anything at all, then it decodes to a position the database takes, or fails with VALIDATION_FAILED, nothing else', async () => {
      let decoded = 0;
      await fc.assert(
        fc.asyncProperty(cursorArbitrary, async (cursor) => {
          let position;
          try {
            position = decodeCursor(cursor);
          } catch (error) {
            if (error instanceof AppError && error.code === 'VALIDATION_FAILED') return;
            throw error;
          }
          decoded += 1;
          // What decodes is used in a query as it is: PostgreSQL must take it, as the same instant.
          const { rows } = await sql<{ at: string; id: string }>`
            select to_char(${position.at}::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at, ${position.id}::uuid::text as id`.execute(
            database.db,
          );
          expect(rows[0]).toEqual({ at: position.at, id: position.id.toLowerCase() });
          expect(decodeCursor(encodeCursor(position))).toEqual(position);
        }),
        { ...settings, numRuns: RUNS * 2 },
      );
      // The generator reaches past the decoder's refusals.
      expect(decoded).toBeGreaterThan(0);
    });
  });
}
