import { dirname, join } from 'node:path';

/** Where npm put swagger-ui-dist: the page's scripts and styles come from there, never from a CDN. */
const SWAGGER_UI_DIR = dirname(require.resolve('swagger-ui-dist/package.json'));

/**
 * Starts Swagger UI on the page. A file of its own rather than an inline script, so the
 * page's Content-Security-Policy can allow scripts from 'self' only.
 * validatorUrl: null, or Swagger UI would send the document to validator.swagger.io.
 */
const INITIALIZER = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
`;

export type DocsAsset = { type: string } & ({ file: string } | { text: string });

/** Everything /docs loads, under /docs/<name>: a fixed list, so nothing else of the package is served. */
export const DOCS_ASSETS: Readonly<Record<string, DocsAsset>> = {
  'swagger-ui.css': { type: 'text/css', file: join(SWAGGER_UI_DIR, 'swagger-ui.css') },
  'index.css': { type: 'text/css', file: join(SWAGGER_UI_DIR, 'index.css') },
  'swagger-ui-bundle.js': { type: 'text/javascript', file: join(SWAGGER_UI_DIR, 'swagger-ui-bundle.js') },
  'favicon-32x32.png': { type: 'image/png', file: join(SWAGGER_UI_DIR, 'favicon-32x32.png') },
  'favicon-16x16.png': { type: 'image/png', file: join(SWAGGER_UI_DIR, 'favicon-16x16.png') },
  'gatehouse-docs.js': { type: 'text/javascript', text: INITIALIZER },
};

export const DOCS_ASSET_NAMES = Object.keys(DOCS_ASSETS) as [string, ...string[]];

/** The /docs page: same-origin stylesheets and scripts only, and no inline script. */
export const DOCS_PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Gatehouse API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="stylesheet" href="/docs/index.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <noscript>This page needs JavaScript. The OpenAPI document itself is at <a href="/openapi.json">/openapi.json</a>.</noscript>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/gatehouse-docs.js"></script>
</body>
</html>
`;
