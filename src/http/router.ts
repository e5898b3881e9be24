import { parse as parseCookies } from 'cookie';
import { type RequestHandler, Router } from 'express';
import { AppError } from './problem';
import { contextOf, type RequestContext } from './request-context';
import {
  expressPath,
  type RouteDeclaration,
  type RouteHandler,
  type RouteInput,
  type RouteRateLimit,
  type RouteTable,
  type Stage,
} from './route';
import { parse } from './validate';

/** A declaration with its handler built from its deps. */
export interface BoundRoute {
  readonly declaration: RouteDeclaration<never>;
  readonly handle: RouteHandler;
}

/** Builds each route's handler from the table's deps, once. */
export function bindRoutes<Deps>(table: RouteTable<Deps>, deps: Deps): BoundRoute[] {
  return table.map((declaration) => ({ declaration, handle: declaration.handler(deps) }));
}

/** Every route of the service, by the stage it is mounted at, each folder's table by name. */
export type StagedRoutes = { readonly [S in Stage]: Readonly<Record<string, RouteTable<never>>> };

type DepsOf<T> = T extends RouteTable<infer Deps> ? Deps : never;

/** The deps of every table of a {@link StagedRoutes}, by stage and name. */
export type StagedDeps<M extends StagedRoutes> = { [S in Stage]: { [K in keyof M[S]]: DepsOf<M[S][K]> } };

/** Binds every table of every stage; the result is what app.ts mounts, stage by stage. */
export function bindStages<M extends StagedRoutes>(routes: M, deps: StagedDeps<M>): Record<Stage, BoundRoute[]> {
  const bindStage = (stage: Stage) =>
    Object.entries(routes[stage]).flatMap(([name, table]) =>
      bindRoutes(table as RouteTable<unknown>, (deps[stage] as Record<string, unknown>)[name]),
    );
  return { open: bindStage('open'), limited: bindStage('limited'), signed: bindStage('signed') };
}

/** What the chain in front of a route's handler is made of; app.ts provides it. */
export interface RouterEdge {
  /** Bearer authentication (step 8): sets `req.auth` or answers 401. */
  authenticate?: RequestHandler;
  /** RBAC (step 9): a middleware refusing a caller without `permission` with 403. */
  authorize?: (permission: string) => RequestHandler;
}

/**
 * An Express router serving the routes, each behind, in CONTRACT.md section 6 order:
 * `authenticate` when it is a Bearer route, `authorize(permission)` when it declares one,
 * then validation of body, query, path parameters and cookies, then the handler. Every
 * middleware is made here, once, never per request.
 */
export function routerOf(routes: readonly BoundRoute[], edge: RouterEdge = {}): Router {
  const router = Router();
  for (const { declaration, handle } of routes) {
    const name = `${declaration.method.toUpperCase()} ${declaration.path}`;
    const chain: RequestHandler[] = [];
    if (declaration.bearer) {
      if (!edge.authenticate) throw new TypeError(`routerOf: ${name} is a Bearer route, and no authenticate was given`);
      chain.push(edge.authenticate);
    }
    if (declaration.permission !== undefined) {
      if (!edge.authorize) throw new TypeError(`routerOf: ${name} declares a permission, and no authorize was given`);
      chain.push(edge.authorize(declaration.permission));
    }
    chain.push(endpoint(declaration, handle));
    router[declaration.method](expressPath(declaration.path), ...chain);
  }
  return router;
}

/**
 * The stricter rate limits the routes declare (`rateLimit`), as a router app.ts mounts at the
 * rate-limit step of CONTRACT.md section 6: each limit counts exactly the method and path of
 * the routes declaring it, before any body is read or hash computed. The path is the
 * declaration's, so it is written once.
 */
export function rateLimitsOf(routes: readonly BoundRoute[], limits: Readonly<Record<RouteRateLimit, RequestHandler>>): Router {
  const router = Router();
  for (const { declaration } of routes) {
    if (declaration.rateLimit !== undefined) router[declaration.method](expressPath(declaration.path), limits[declaration.rateLimit]);
  }
  return router;
}

/** Validation (step 10) and the handler; then the declared success response, unless the handler wrote its own. */
function endpoint(declaration: RouteDeclaration<never>, handle: RouteHandler): RequestHandler {
  const { body, query, params, cookies, response } = declaration;
  return async (req, res, next) => {
    // Only a route that declares a 304 sends a validator to compare. Without this, Express's
    // res.send answers any GET carrying `If-None-Match: *` with an empty 304 (RFC 9110 section
    // 13.1.2), a profile or the JWKS included: an answer the document does not have.
    // (Only when a validator was sent: redefining a property of every request costs each of them.)
    if (
      response.notModified === undefined &&
      (req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined)
    ) {
      Object.defineProperty(req, 'fresh', { value: false });
    }
    // In this order: a path that names nothing here is 404 whatever its query or body.
    let context: RequestContext | undefined;
    const input: RouteInput = {
      params: params ? pathParams(params, req.params) : undefined,
      query: query ? parse(query, req.query) : undefined,
      body: body ? parse(body, req.body) : undefined,
      cookies: cookies ? parse(cookies, req.headers.cookie ? parseCookies(req.headers.cookie) : {}) : undefined,
      auth: req.auth,
      // Read when a handler asks: most never do, and the client address costs a proxy-addr parse.
      get context() {
        return (context ??= contextOf(req));
      },
      req,
      res,
      next,
    };
    const result = await handle(input);
    if ('content' in response) return;
    if ('schema' in response) return void res.status(response.status).json(result);
    res.status(response.status).end();
  };
}

/** A path the route's parameters do not fit names nothing here: 404, like a path no route has. */
function pathParams(schema: NonNullable<RouteDeclaration['params']>, input: unknown): unknown {
  const result = schema.safeParse(input);
  if (!result.success) throw new AppError('NOT_FOUND', { detail: 'No such route' });
  return result.data;
}
