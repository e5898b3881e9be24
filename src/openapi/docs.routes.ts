import { Router } from 'express';
import helmet from 'helmet';
import { AppError } from '../http/problem';
import { DOCS_ASSETS, DOCS_PAGE } from './docs.assets';
import { openApiDocument } from './openapi.document';

/** How long browsers keep the page's scripts and styles: they change only with the package. */
const ASSET_CACHE_CONTROL = 'public, max-age=3600';

/**
 * The app's CSP is `default-src 'none'`, right for JSON and wrong for a page. This one lets
 * the page run its own scripts and styles and fetch the document, and nothing from elsewhere.
 * Swagger UI's icons are data: URIs in its stylesheet. Its style attributes are set through
 * the DOM (React), which CSP does not govern, so no 'unsafe-inline' is needed for either.
 */
const docsCsp = helmet.contentSecurityPolicy({
  useDefaults: false,
  directives: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    baseUri: ["'none'"],
    formAction: ["'none'"],
    frameAncestors: ["'none'"],
  },
});

/**
 * GET /openapi.json and the interactive page at /docs (Swagger UI from swagger-ui-dist,
 * served from node_modules, so it works with no internet). Mounted before rate limiting
 * and signing: CONTRACT.md section 5 exempts both.
 */
export function docsRoutes(): Router {
  const router = Router();
  let documentJson: string | undefined;

  router.get('/openapi.json', (_req, res) => {
    documentJson ??= JSON.stringify(openApiDocument());
    res.type('application/json').send(documentJson);
  });

  router.get('/docs', docsCsp, (_req, res) => {
    res.type('html').send(DOCS_PAGE);
  });

  router.get('/docs/:asset', (req, res, next) => {
    const asset = Object.hasOwn(DOCS_ASSETS, req.params.asset) ? DOCS_ASSETS[req.params.asset] : undefined;
    // Answered here, not passed on: nothing under /docs reaches the rate limiter.
    if (!asset) throw new AppError('NOT_FOUND', { detail: 'No such file' });
    res.type(asset.type).set('Cache-Control', ASSET_CACHE_CONTROL);
    if ('text' in asset) return void res.send(asset.text);
    res.sendFile(asset.file, (error) => {
      if (error && !res.headersSent) next(error);
    });
  });

  return router;
}
