import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { thumbprint } from '../../src/tokens/keys';
import { DATABASE_KINDS } from '../helpers/databases';
import { expectProblem, registerUser, type RegisteredUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { generateRsaPem, testKeyStore } from '../helpers/keys';
import type { AccessTokenClaims } from '../../src/tokens/access-token';
import { createForgeKit, FORGED_TOKENS, type ForgeKit } from './forged-tokens';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Not the defaults, so that a service checking against a hard-coded value is caught.
const ENV = {
  JWT_ISSUER: 'https://auth.example.test',
  JWT_AUDIENCE: 'api.example.test',
  ACCESS_TOKEN_TTL: '600',
  // Every case registers its own user; keep any per-IP registration limit out of the way.
  AUTH_RATE_LIMIT_MAX: '100000',
  RATE_LIMIT_MAX: '100000',
};

// An attacker's RSA key: a well-formed RS256 signature, just not by us.
const attackerKey = generateRsaPem();

type Claims = AccessTokenClaims;

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const decodeSegment = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;

/** What every forgery is made from: a real user with a live session, and the service's own key. */
class Forge {
  constructor(
    private readonly h: Harness,
    readonly user: RegisteredUser,
  ) {}

  get kid(): string {
    return this.h.keys.signing.kid;
  }

  get now(): number {
    return Math.floor(this.h.clock.now().getTime() / 1000);
  }

  /** The claims of the user's real token, as the service issued them. */
  get realClaims(): Claims {
    return decodeSegment(this.user.accessToken.split('.')[1]!) as unknown as Claims;
  }

  /** Valid claims for the user's real session, issued now; `undefined` removes a claim. */
  claims(changes: Partial<Record<keyof Claims, unknown>> = {}): Record<string, unknown> {
    const claims: Record<string, unknown> = { ...this.realClaims, jti: randomUUID(), iat: this.now, exp: this.now + 600, ...changes };
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
    return claims;
  }

  /** Signs with jsonwebtoken exactly as the service would, unless told otherwise; `typ: undefined` drops it. */
  sign(claims: Record<string, unknown>, header: Partial<jwt.JwtHeader> = {}, privatePem = testKeyStore().privatePem): string {
    return jwt.sign(claims, privatePem, { algorithm: 'RS256', header: { alg: 'RS256', typ: 'at+jwt', kid: this.kid, ...header } });
  }

  /** The real token with its payload changed and its signature kept. */
  tamper(changes: Partial<Claims>): string {
    const [header, , signature] = this.user.accessToken.split('.');
    return [header, b64url({ ...this.realClaims, ...changes }), signature].join('.');
  }

  /** The shared table's kit (forged-tokens.ts), made from this user's real token and the service's key. */
  kit(): ForgeKit {
    return createForgeKit({
      issuer: ENV.JWT_ISSUER,
      audience: ENV.JWT_AUDIENCE,
      now: this.now,
      ttl: Number(ENV.ACCESS_TOKEN_TTL),
      kid: this.kid,
      privateKey: this.h.keys.signing.privateKey,
      publicKey: this.h.keys.signing.publicKey,
      attacker: { privateKey: attackerKey.privateKey, kid: thumbprint(attackerKey.privateKey) },
      issued: this.user.accessToken,
    });
  }
}

type Forgery = [name: string, code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED', build: (f: Forge, h: Harness) => string | Promise<string>];

// Forgeries that only the service's database can refuse (or that need a second real user);
// every token-only forgery is in the shared table (forged-tokens.ts), run below over HTTP and,
// in forged-tokens.verifiers.test.ts, against both verifiers.
const FORGERIES: Forgery[] = [
  [
    "its sub was changed to another user's id",
    'TOKEN_INVALID',
    async (f, h) => {
      const victim = await registerUser(h.app);
      return f.tamper({ sub: victim.id });
    },
  ],
  [
    "its sub and sid were changed to another user's",
    'TOKEN_INVALID',
    async (f, h) => {
      const victim = await registerUser(h.app);
      const { sub, sid } = decodeSegment(victim.accessToken.split('.')[1]!) as unknown as Claims;
      return f.tamper({ sub, sid });
    },
  ],
  ['its sid is a uuid of no session', 'TOKEN_INVALID', (f) => f.sign(f.claims({ sid: randomUUID() }))],
];

describe.each(DATABASE_KINDS)('access tokens on GET /users/me (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: ENV });
  });
  afterAll(async () => {
    await h.close();
  });

  const me = (token: string) => request(h.app).get('/users/me').set('Authorization', `Bearer ${token}`);

  describe('the token the service issues', () => {
    it('when it is presented, then it is accepted', async () => {
      const user = await registerUser(h.app);

      const res = await me(user.accessToken);

      expect(res.status).toBe(200);
      expect(res.body.id).toBe(user.id);
    });

    it('when a token is crafted the way the service signs, then it is accepted (so each forgery below fails for its one flaw)', async () => {
      const f = new Forge(h, await registerUser(h.app));

      const res = await me(f.sign(f.claims()));

      expect(res.status).toBe(200);
      expect(res.body.id).toBe(f.user.id);
    });

    it('when decoded, then it has the RS256 at+jwt header with the key thumbprint and every claim of the contract', async () => {
      const user = await registerUser(h.app);
      const now = Math.floor(h.clock.now().getTime() / 1000);

      const [header, payload] = user.accessToken.split('.').slice(0, 2).map(decodeSegment);

      expect(header).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: thumbprint(h.keys.signing.publicKey) });
      expect(payload).toEqual({
        iss: 'https://auth.example.test',
        aud: 'api.example.test',
        sub: user.id,
        sid: expect.stringMatching(UUID),
        jti: expect.stringMatching(UUID),
        iat: now,
        exp: now + 600,
        roles: ['user'],
      });
      // sid names the session the caller sees as current.
      const sessions = await request(h.app).get('/users/me/sessions').set('Authorization', `Bearer ${user.accessToken}`);
      expect(sessions.body).toEqual([expect.objectContaining({ id: payload!.sid, current: true })]);
    });

    it('when two tokens are issued, then their jti differ', async () => {
      const [a, b] = await Promise.all([registerUser(h.app), registerUser(h.app)]);
      const jtiOf = (token: string) => decodeSegment(token.split('.')[1]!).jti;
      expect(jtiOf(a.accessToken)).not.toBe(jtiOf(b.accessToken));
    });
  });

  describe('forged tokens', () => {
    it.each(FORGERIES)('when %s, then it answers 401 %s', async (_name, code, build) => {
      const f = new Forge(h, await registerUser(h.app));
      const token = await build(f, h);

      const res = await me(token);

      expectProblem(res, 401, code);
    });

    it.each(FORGED_TOKENS.map((c) => [c.name, c.expected, c] as const))(
      'when %s (shared table), then it answers %s',
      async (_name, expected, forgery) => {
        const f = new Forge(h, await registerUser(h.app));
        const token = forgery.build(f.kit());

        const res = await me(token);

        if (expected === 'accepted') {
          expect(res.status).toBe(200);
          expect(res.body.id).toBe(f.user.id);
        } else {
          expectProblem(res, 401, expected);
        }
      },
    );

    it('when a forgery drops typ or kid, then the header really lacks it (so those cases test what they say)', async () => {
      const f = new Forge(h, await registerUser(h.app));
      expect(jwt.decode(f.sign(f.claims(), { typ: undefined }), { complete: true })?.header).not.toHaveProperty('typ');
      expect(jwt.decode(f.sign(f.claims(), { kid: undefined }), { complete: true })?.header).not.toHaveProperty('kid');
    });
  });

  // CONTRACT.md section 4: at most 30 s of clock skew (the literal, not the constant, so a change to it shows).
  describe('clock tolerance', () => {
    let start: Date;
    beforeEach(() => {
      start = h.clock.now();
    });
    afterEach(() => {
      // Later tests issue tokens at the clock's time; put it back where it was.
      h.clock.set(start);
    });

    it('when the token expired less than 30 s ago, then it is still accepted', async () => {
      const user = await registerUser(h.app);
      h.clock.advance(600 + 20);

      const res = await me(user.accessToken);

      expect(res.status).toBe(200);
    });

    it('when the token expired more than 30 s ago, then it answers 401 TOKEN_EXPIRED', async () => {
      const user = await registerUser(h.app);
      h.clock.advance(600 + 40);

      const res = await me(user.accessToken);

      expectProblem(res, 401, 'TOKEN_EXPIRED');
    });
  });
});
