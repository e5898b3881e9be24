import { z } from 'zod';
import { defineRoute, type RouteTable } from '../http/route';
import type { KeyStore } from './keys';

/** Long enough to spare us traffic, short enough that a new key is seen well within an access token's life. */
const JWKS_MAX_AGE_SECONDS = 300;
const CACHE_CONTROL = `public, max-age=${JWKS_MAX_AGE_SECONDS}`;

export interface JwksRoutesDeps {
  keys: KeyStore;
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
  .meta({ id: 'JWKS', description: 'Every published public key (RFC 7517); the newest signs' });

/** GET /.well-known/jwks.json: every published public key, for offline verification elsewhere. */
export const jwksRoutes: RouteTable<JwksRoutesDeps> = [
  defineRoute({
    method: 'get',
    path: '/.well-known/jwks.json',
    tag: 'keys',
    summary: 'Public keys for verifying access tokens',
    description:
      'Not signed. Verify access tokens with these: RS256 only, header typ "at+jwt", the right iss and aud, exp. Refetch on an unknown kid: keys rotate.',
    response: {
      status: 200,
      description: 'The JSON Web Key Set',
      headers: { 'Cache-Control': { description: `Cacheable for a few minutes: \`${CACHE_CONTROL}\`` } },
      // Serialized once, written by the handler: the key set is fixed for the life of the key store.
      content: { 'application/json': { schema: jwks } },
    },
    handler: ({ keys }) => {
      const body = Buffer.from(JSON.stringify(keys.jwks));
      const length = String(body.length);
      // Written with Node's own calls: res.type and res.send would look up the media type,
      // parse it back and measure the body again on every request for a constant answer.
      return ({ res }) => {
        res.setHeader('Cache-Control', CACHE_CONTROL);
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Content-Length', length);
        res.end(body);
      };
    },
  }),
];
