import { Router } from 'express';
import type { KeyStore } from './keys';

/** Long enough to spare us traffic, short enough that a new key is seen well within an access token's life. */
const JWKS_MAX_AGE_SECONDS = 300;

/** GET /.well-known/jwks.json: every published public key, for offline verification elsewhere. */
export function jwksRoutes({ keys }: { keys: KeyStore }): Router {
  const router = Router();
  const body = JSON.stringify(keys.jwks);
  router.get('/.well-known/jwks.json', (_req, res) => {
    res.set('Cache-Control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`).type('application/json').send(body);
  });
  return router;
}
