import { constants, createHmac, createPublicKey, type KeyObject, randomBytes, randomUUID, sign as cryptoSign } from 'node:crypto';

/**
 * Forged (and a few good) access tokens, one table for every verifier of Gatehouse tokens:
 * the service's own (`createAccessTokens().verify`, and through it GET /users/me) and the
 * SDK's (`gatehouse/verify`). Each case changes one thing about a token the service would
 * accept, and says what every verifier must answer. Runners: forged-tokens.verifiers.test.ts
 * (both verifiers side by side) and access-token.forgery.test.ts (over HTTP).
 */

export type Verdict = 'accepted' | 'TOKEN_INVALID' | 'TOKEN_EXPIRED';

export interface ForgedTokenCase {
  /** Reads after "when": `when ${name}, then …`. */
  name: string;
  expected: Verdict;
  build(kit: ForgeKit): string;
}

/** Produces a signature over the JWS signing input, the way one algorithm would. */
export type Signer = (signingInput: string) => string;

/** Signers by algorithm; the header's `alg` is whatever a case puts there, so the two can disagree. */
export const signWith = {
  rs256:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign('sha256', Buffer.from(input), key).toString('base64url'),
  rs512:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign('sha512', Buffer.from(input), key).toString('base64url'),
  ps256:
    (key: KeyObject): Signer =>
    (input) =>
      cryptoSign('sha256', Buffer.from(input), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }).toString('base64url'),
  hs256:
    (secret: string | Buffer): Signer =>
    (input) =>
      createHmac('sha256', secret).update(input).digest('base64url'),
  none: (): Signer => () => '',
};

export const b64url = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
export const decodeSegment = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

export interface ForgeKitOptions {
  issuer: string;
  audience: string;
  /** Unix seconds on the verifiers' clock. */
  now: number;
  /** The longest lifetime (exp − iat) the verifiers take: the service's ACCESS_TOKEN_TTL, the SDK's `maxTokenAge`. */
  ttl: number;
  /** The service's signing key, published under `kid`. */
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** A key nobody published, and its RFC 7638 thumbprint. */
  attacker: { privateKey: KeyObject; kid: string };
  /** A token the service itself issued, valid at `now`; its claims are the base of every forgery. */
  issued: string;
}

export interface ForgeKit extends ForgeKitOptions {
  /** The claims of `issued` with a fresh jti, iat now and exp in 10 minutes, then `changes`; `undefined` removes a claim. */
  claims(changes?: Record<string, unknown>): Record<string, unknown>;
  /**
   * A compact JWS of `payload` under the header the service writes ({alg: RS256, typ: at+jwt, kid}),
   * `header` merged on top (`undefined` drops a member), signed by `signer` (default: RS256 with the real key).
   */
  sign(payload: unknown, header?: Record<string, unknown>, signer?: Signer): string;
  /** `issued` with its payload changed and its signature kept. */
  tamper(changes: Record<string, unknown>): string;
}

export function createForgeKit(options: ForgeKitOptions): ForgeKit {
  const { now, kid, privateKey, issued } = options;
  const issuedClaims = decodeSegment(issued.split('.')[1]!);
  const withoutUndefined = (record: Record<string, unknown>) => {
    for (const [name, value] of Object.entries(record)) if (value === undefined) delete record[name];
    return record;
  };
  return {
    ...options,
    claims: (changes = {}) => withoutUndefined({ ...issuedClaims, jti: randomUUID(), iat: now, exp: now + 600, ...changes }),
    sign(payload, header = {}, signer = signWith.rs256(privateKey)) {
      const input = `${b64url(withoutUndefined({ alg: 'RS256', typ: 'at+jwt', kid, ...header }))}.${b64url(payload)}`;
      return `${input}.${signer(input)}`;
    },
    tamper(changes) {
      const [header, , signature] = issued.split('.');
      return [header, b64url({ ...issuedClaims, ...changes }), signature].join('.');
    },
  };
}

const publicPem = (kit: ForgeKit) => kit.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const attackerJwk = (kit: ForgeKit) => createPublicKey(kit.attacker.privateKey).export({ format: 'jwk' });

/** The service's issuer and audience defaults: a verifier that hard-codes them is caught by these values. */
const DEFAULT_NAME = 'gatehouse';

export const FORGED_TOKENS: ForgedTokenCase[] = [
  // ---- controls: each forgery below fails for its one alteration only ----
  { name: 'the token is the one the service issued', expected: 'accepted', build: (k) => k.issued },
  { name: 'the token is crafted the way the service signs', expected: 'accepted', build: (k) => k.sign(k.claims()) },
  {
    name: 'typ is the full media type application/at+jwt',
    expected: 'accepted',
    build: (k) => k.sign(k.claims(), { typ: 'application/at+jwt' }),
  },
  {
    name: 'typ is upper case (media types compare case-insensitively)',
    expected: 'accepted',
    build: (k) => k.sign(k.claims(), { typ: 'AT+JWT' }),
  },
  {
    name: 'aud is a list that names the audience',
    expected: 'accepted',
    build: (k) => k.sign(k.claims({ aud: ['another-api', k.audience] })),
  },
  { name: 'roles is an empty list', expected: 'accepted', build: (k) => k.sign(k.claims({ roles: [] })) },

  // ---- the algorithm is pinned: the header never chooses it ----
  {
    name: 'alg is none and the signature is empty',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { alg: 'none' }, signWith.none()),
  },
  {
    name: 'alg is none and the real signature is kept',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { alg: 'none' }, () => k.issued.split('.')[2]!),
  },
  {
    // The classic confusion: a verifier that lets the header pick the algorithm would HMAC with the public key it holds.
    name: 'it is HS256 with the public key PEM as the HMAC secret',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { alg: 'HS256' }, signWith.hs256(publicPem(k))),
  },
  {
    name: 'it is RS512 with the real key',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { alg: 'RS512' }, signWith.rs512(k.privateKey)),
  },
  {
    name: 'it is PS256 with the real key',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { alg: 'PS256' }, signWith.ps256(k.privateKey)),
  },
  { name: 'alg is rs256 in lower case', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { alg: 'rs256' }) },

  // ---- the key must be ours ----
  {
    name: 'it is signed by another RSA key under the real kid',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), {}, signWith.rs256(k.attacker.privateKey)),
  },
  // Signed by the real key: a verifier that ignored the kid and tried every key it holds would take it.
  {
    name: 'its kid is unknown (signed by the real key)',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { kid: k.attacker.kid }),
  },
  {
    name: "it is signed by another key under that key's own kid",
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { kid: k.attacker.kid }, signWith.rs256(k.attacker.privateKey)),
  },
  { name: 'it has no kid', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { kid: undefined }) },
  { name: 'its kid is empty', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { kid: '' }) },
  { name: 'its kid is a number', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { kid: 1 }) },
  {
    // RFC 7515 jwk/jku: a verifier must never take the key from the token itself.
    name: "its header embeds the attacker's public key as jwk",
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { kid: k.attacker.kid, jwk: attackerJwk(k) }, signWith.rs256(k.attacker.privateKey)),
  },
  {
    name: "its jku names the attacker's key set, under the real kid",
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { jku: 'https://attacker.example/jwks.json' }, signWith.rs256(k.attacker.privateKey)),
  },

  // ---- the type: an ID token or any other JWT is never an access token (RFC 9068 section 4) ----
  { name: 'its typ is JWT', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { typ: 'JWT' }) },
  { name: 'it has no typ', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { typ: undefined }) },
  { name: 'its typ is application/jwt', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { typ: 'application/jwt' }) },
  {
    // RFC 7515 section 4.1.11: an unknown critical extension must be refused, not ignored.
    name: 'its header has a critical extension',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { crit: ['exp-v2'], 'exp-v2': 1 }),
  },
  // We understand no extension, so any crit at all is refused, whatever it lists (RFC 7515: never empty, never a registered name).
  { name: 'its crit is an empty list', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { crit: [] }) },
  { name: 'its crit names a registered header (kid)', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { crit: ['kid'] }) },
  { name: 'its crit is null', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims(), { crit: null }) },
  {
    name: 'its crit is a string naming an extension it carries',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims(), { crit: 'b64', b64: true }),
  },

  // ---- issuer and audience ----
  { name: 'its iss is another issuer', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ iss: DEFAULT_NAME })) },
  { name: 'its aud is another audience', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ aud: DEFAULT_NAME })) },
  { name: 'it has no iss', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ iss: undefined })) },
  { name: 'it has no aud', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ aud: undefined })) },
  { name: 'its aud is a list without the audience', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ aud: ['another-api'] })) },
  { name: 'its iss is a number', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ iss: 1 })) },

  // ---- time: at most 30 s of clock skew (CONTRACT.md section 4; literals, so a change to the constant shows) ----
  { name: 'it has no exp', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ exp: undefined })) },
  { name: 'its exp is a string', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ exp: String(k.now + 600) })) },
  { name: 'it has no iat', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ iat: undefined })) },
  { name: 'its iat is a string', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ iat: String(k.now) })) },
  {
    name: 'it expired 20 s ago (within the skew)',
    expected: 'accepted',
    build: (k) => k.sign(k.claims({ iat: k.now - 620, exp: k.now - 20 })),
  },
  {
    name: 'it expired 29 s ago (within the skew)',
    expected: 'accepted',
    build: (k) => k.sign(k.claims({ iat: k.now - 629, exp: k.now - 29 })),
  },
  {
    name: 'it expired 30 s ago (the skew used up)',
    expected: 'TOKEN_EXPIRED',
    build: (k) => k.sign(k.claims({ iat: k.now - 630, exp: k.now - 30 })),
  },
  { name: 'it expired a minute ago', expected: 'TOKEN_EXPIRED', build: (k) => k.sign(k.claims({ iat: k.now - 660, exp: k.now - 60 })) },
  { name: 'its nbf is 20 s ahead (within the skew)', expected: 'accepted', build: (k) => k.sign(k.claims({ nbf: k.now + 20 })) },
  { name: 'its nbf is a minute ahead', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ nbf: k.now + 60 })) },
  { name: 'its nbf is a string', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ nbf: 'soon' })) },
  // iat in the future: a token minted now to be used later (a key in the wrong hands, a clock far off).
  { name: 'its iat is 30 s ahead (within the skew)', expected: 'accepted', build: (k) => k.sign(k.claims({ iat: k.now + 30 })) },
  { name: 'its iat is 31 s ahead', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ iat: k.now + 31 })) },
  {
    name: 'its iat is a day ahead, exp a lifetime after it',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims({ iat: k.now + 86_400, exp: k.now + 86_400 + k.ttl })),
  },
  // The lifetime: at most ACCESS_TOKEN_TTL (the SDK's maxTokenAge) plus the 30 s skew.
  {
    name: 'it lasts ACCESS_TOKEN_TTL exactly',
    expected: 'accepted',
    build: (k) => k.sign(k.claims({ iat: k.now, exp: k.now + k.ttl })),
  },
  {
    name: 'it lasts ACCESS_TOKEN_TTL + 30 s (within the skew)',
    expected: 'accepted',
    build: (k) => k.sign(k.claims({ iat: k.now, exp: k.now + k.ttl + 30 })),
  },
  {
    name: 'it lasts ACCESS_TOKEN_TTL + 31 s',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims({ iat: k.now, exp: k.now + k.ttl + 31 })),
  },
  {
    name: 'it lasts ten years (issued an hour ago)',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims({ iat: k.now - 3600, exp: k.now + 10 * 365 * 86_400 })),
  },
  {
    // Found before expiry, as every other fault: a refresh would not mend it.
    name: 'it lasted a day and expired a minute ago',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims({ iat: k.now - 86_460, exp: k.now - 60 })),
  },
  {
    // Expiry is said only of a token that was good: a refresh cannot mend a wrong issuer.
    name: 'it expired a minute ago and names another issuer',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims({ iss: DEFAULT_NAME, iat: k.now - 660, exp: k.now - 60 })),
  },
  {
    name: 'it expired a minute ago and is signed by another key',
    expected: 'TOKEN_INVALID',
    build: (k) => k.sign(k.claims({ iat: k.now - 660, exp: k.now - 60 }), {}, signWith.rs256(k.attacker.privateKey)),
  },

  // ---- Gatehouse's own claims ----
  { name: 'it has no sub', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ sub: undefined })) },
  { name: 'it has no sid', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ sid: undefined })) },
  { name: 'its sub is not a uuid', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ sub: "1' OR '1'='1" })) },
  { name: 'its sid is not a uuid', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ sid: 'not-a-uuid' })) },
  { name: 'its sub is a number', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ sub: 42 })) },
  { name: 'it has no jti', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ jti: undefined })) },
  { name: 'its jti is empty', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ jti: '' })) },
  { name: 'it has no roles', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ roles: undefined })) },
  { name: 'its roles are not a list', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ roles: 'admin' })) },
  { name: 'its roles hold a non-string', expected: 'TOKEN_INVALID', build: (k) => k.sign(k.claims({ roles: ['user', 1] })) },

  // ---- the signature covers every byte ----
  { name: 'its payload was changed and the signature kept', expected: 'TOKEN_INVALID', build: (k) => k.tamper({ roles: ['admin'] }) },
  {
    name: 'its sub was changed to another uuid and the signature kept',
    expected: 'TOKEN_INVALID',
    build: (k) => k.tamper({ sub: randomUUID() }),
  },

  // ---- one spelling per token (src/tokens/compact-jws.ts) and the compact form ----
  {
    // Same bytes, another spelling: the last character of a 256-byte signature carries 4 unused bits.
    name: 'its signature is the real one spelled another way',
    expected: 'TOKEN_INVALID',
    build: (k) => {
      const token = k.issued;
      const twin = token.slice(0, -1) + ALPHABET[ALPHABET.indexOf(token.at(-1)!) ^ 1];
      expect(Buffer.from(twin.split('.')[2]!, 'base64url')).toEqual(Buffer.from(token.split('.')[2]!, 'base64url'));
      return twin;
    },
  },
  { name: 'its signature carries padding', expected: 'TOKEN_INVALID', build: (k) => `${k.issued}==` },
  { name: 'it has a character appended', expected: 'TOKEN_INVALID', build: (k) => `${k.issued}A` },
  { name: 'it has a space inside', expected: 'TOKEN_INVALID', build: (k) => k.issued.replace('.', '. ') },
  { name: 'it has an extra segment', expected: 'TOKEN_INVALID', build: (k) => `${k.issued}.${k.issued.split('.')[2]}` },
  {
    name: 'it has five segments, like a JWE',
    expected: 'TOKEN_INVALID',
    build: (k) => `${k.issued.split('.').slice(0, 2).join('.')}.a.b.c`,
  },
  { name: 'it has two segments', expected: 'TOKEN_INVALID', build: (k) => k.issued.split('.').slice(0, 2).join('.') },
  {
    name: 'its header is not JSON',
    expected: 'TOKEN_INVALID',
    build: (k) => `${b64url('{alg:RS256')}.${k.issued.split('.').slice(1).join('.')}`,
  },
  { name: 'its payload is a JSON list, well signed', expected: 'TOKEN_INVALID', build: (k) => k.sign([k.claims()]) },
  { name: 'its payload is not JSON, well signed', expected: 'TOKEN_INVALID', build: (k) => k.sign('not json') },
  { name: 'it is not a JWT at all', expected: 'TOKEN_INVALID', build: () => 'not-a-jwt' },
  { name: 'it has three segments of garbage', expected: 'TOKEN_INVALID', build: () => 'abc.def.ghi' },
  { name: 'it is a refresh token (opaque)', expected: 'TOKEN_INVALID', build: () => randomBytes(32).toString('base64url') },
];
