import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { defineRoute, type RouteTable } from '../http/route';
import { DOCS_ASSET_NAMES, DOCS_ASSETS, DOCS_PAGE, type DocsAsset } from './docs.assets';

/** How long browsers keep the page's scripts and styles: they change only with the package. */
const ASSET_CACHE_CONTROL = 'public, max-age=3600';

/**
 * The app's CSP is `default-src 'none'`, right for JSON and wrong for a page. This one lets
 * the page run its own scripts and styles and fetch the document, and nothing from elsewhere.
 * Swagger UI's icons are data: URIs in its stylesheet. Its style attributes are set through
 * the DOM (React), which CSP does not govern, so no 'unsafe-inline' is needed for either.
 * Written as helmet writes it; replaces the app's header on this one response.
 */
const DOCS_CSP = Object.entries({
  'default-src': ["'none'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
})
  .map(([directive, sources]) => `${directive} ${sources.join(' ')}`)
  .join(';');

/** An asset's bytes and a strong validator for them (RFC 9110 section 8.8.3). */
interface LoadedAsset {
  readonly body: string | Buffer;
  readonly etag: string;
}

/**
 * Reads a docs asset, once. The files are the package's and change only with it, so they are
 * held in memory, like the one written here. Not res.sendFile: its Range and precondition
 * handling (`Range: bytes=999999-`, `If-Match`) answers with errors (416, 412) that would reach
 * the error handler as 500s, from anyone, unsigned.
 */
async function loadAsset(asset: DocsAsset): Promise<LoadedAsset> {
  const body = 'text' in asset ? asset.text : await readFile(asset.file);
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url')}"` };
}

export interface DocsRoutesDeps {
  /** The OpenAPI document; asked for once, on the first request for it. */
  document: () => unknown;
}

/**
 * GET /openapi.json and the interactive page at /docs (Swagger UI from swagger-ui-dist,
 * served from node_modules, so it works with no internet). Never signed (CONTRACT.md
 * section 5), rate limited like the API.
 */
export const docsRoutes: RouteTable<DocsRoutesDeps> = [
  defineRoute({
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApiDocument',
    tag: 'docs',
    summary: 'This document',
    description: 'OpenAPI 3.1. Never signed; rate limited like the API.',
    response: {
      status: 200,
      description: 'The OpenAPI document of every route',
      content: { 'application/json': { schema: { type: 'object', description: 'An OpenAPI 3.1 document' } } },
    },
    handler: ({ document }) => {
      let json: string | undefined;
      return ({ res }) => {
        json ??= JSON.stringify(document());
        res.type('application/json').send(json);
      };
    },
  }),

  defineRoute({
    method: 'get',
    path: '/docs',
    operationId: 'getApiDocs',
    tag: 'docs',
    summary: 'This page: interactive documentation',
    description:
      'Swagger UI, served from the swagger-ui-dist package: it loads nothing from other origins. Never signed; rate limited like the API.',
    response: { status: 200, description: 'The HTML page', content: { 'text/html': { schema: { type: 'string' } } } },
    handler:
      () =>
      ({ res }) => {
        res.set('Content-Security-Policy', DOCS_CSP).type('html').send(DOCS_PAGE);
      },
  }),

  defineRoute({
    method: 'get',
    path: '/docs/{asset}',
    operationId: 'getApiDocsAsset',
    tag: 'docs',
    summary: 'The scripts, styles and icons of /docs',
    // Only the listed files: an unknown name is 404, though the package has it.
    params: z.object({ asset: z.enum(DOCS_ASSET_NAMES) }),
    errors: ['NOT_FOUND'],
    response: {
      status: 200,
      description: 'The file',
      headers: {
        ETag: { description: 'A strong validator of the file: send it back as `If-None-Match` to be answered 304.' },
        'Cache-Control': { description: `Cacheable: \`${ASSET_CACHE_CONTROL}\`` },
      },
      notModified: 'The file is the one whose ETag was sent in `If-None-Match`: use the cached copy (no body).',
      content: {
        'text/css': { schema: { type: 'string' } },
        'text/javascript': { schema: { type: 'string' } },
        'image/png': { schema: { type: 'string', contentMediaType: 'image/png' } },
      },
    },
    handler: () => {
      const loaded = new Map<string, Promise<LoadedAsset>>();
      return async ({ params, res }) => {
        const asset = DOCS_ASSETS[params.asset]!;
        let load = loaded.get(params.asset);
        if (!load) {
          load = loadAsset(asset);
          // A failed read is not kept: the next request tries again.
          load.catch(() => loaded.delete(params.asset));
          loaded.set(params.asset, load);
        }
        const { body, etag } = await load;
        // With the ETag, res.send answers a matching If-None-Match with 304, as sendFile did.
        res.type(asset.type).set('Cache-Control', ASSET_CACHE_CONTROL).set('ETag', etag).send(body);
      };
    },
  }),
];
