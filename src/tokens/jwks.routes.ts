import { z } from 'zod';
import { defineRoute, type RouteTable } from '../http/route';
import { asKeyRing, JWKS_MAX_AGE_SECONDS, type KeyRing, type KeyStore } from './keys';

// JWKS_MAX_AGE_SECONDS (keys.ts): long enough to spare us traffic; a new key is published
// longer than that before it signs (keys:generate), so no cache meets a token it cannot verify.
const CACHE_CONTROL = `public, max-age=${JWKS_MAX_AGE_SECONDS}`;

export interface JwksRoutesDeps {
  /** The instance's key ring: the answer follows each reload of KEYS_DIR. */
  keys: KeyRing | KeyStore;
}

const jwks = z
  .object({
    keys: z.array(
      z.object({
        kty: z.literal('RSA'),
        n: z.string(),
        e: z.string(),
        kid: z.string().meta({ description: 'RFC 7638 thumbprint of the key; the `kid` of the tokens it signed' }),
        alg: z.literal('RS256'),
        use: z.literal('sig'),
      }),
    ),
  })
  .meta({
    id: 'JWKS',
    description:
      'Every published public key (RFC 7517): the key that signs, older keys whose tokens may still be live, and a new key published ahead of its activation',
  });

/** GET /.well-known/jwks.json: every published public key, for offline verification elsewhere. */
export const jwksRoutes: RouteTable<JwksRoutesDeps> = [
  defineRoute({
    method: 'get',
    path: '/.well-known/jwks.json',
    operationId: 'getJwks',
    tag: 'keys',
    summary: 'Public keys for verifying access tokens',
    description:
      'Not signed. Verify access tokens with these: RS256 only, header typ "at+jwt", the right iss and aud, exp. Refetch on an unknown kid: keys rotate.',
    response: {
      status: 200,
      description: 'The JSON Web Key Set',
      headers: { 'Cache-Control': { description: `Cacheable for a few minutes: \`${CACHE_CONTROL}\`` } },
      // Serialized by the handler once per key set (each reload of KEYS_DIR that changes it).
      content: { 'application/json': { schema: jwks } },
    },
    handler: (deps) => {
      const ring = asKeyRing(deps.keys);
      let serialized: { store: KeyStore; body: Buffer; length: string } | undefined;
      // Written with Node's own calls: res.type and res.send would look up the media type,
      // parse it back and measure the body again on every request for an answer that changes
      // only when the keys are reloaded; per request, one comparison of the key set read last.
      return ({ res }) => {
        const store = ring.current();
        if (serialized?.store !== store) {
          const body = Buffer.from(JSON.stringify(store.jwks));
          serialized = { store, body, length: String(body.length) };
        }
        res.setHeader('Cache-Control', CACHE_CONTROL);
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Content-Length', serialized.length);
        res.end(serialized.body);
      };
    },
  }),
];
