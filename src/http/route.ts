import type { NextFunction, Request, Response } from 'express';
import type { z } from 'zod';
import type { ProblemCode } from './problem';
import type { RequestContext } from './request-context';

/*
 * A route is declared once, as data: method, path, who may call it, what it takes, what it
 * answers. The Express router (router.ts) and the OpenAPI document (openapi/) are both built
 * from these declarations, so neither can say something the other does not do.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * Where app.ts mounts a group of routes in its middleware chain (CONTRACT.md section 6),
 * which decides what can answer before the route does. Only the composition knows it
 * (app.routes.ts), never the route itself.
 */
export type Stage =
  /** Before the rate limiter and signing: probes and metrics. */
  | 'open'
  /** Rate limited; not signed, no body parsed: the JWKS and the API documents. */
  | 'limited'
  /** Rate limited, body parsed, HMAC checked: /auth, /users, /admin. */
  | 'signed';

/**
 * A stricter per-IP rate limit a route can declare, on top of the global one (CONTRACT.md
 * section 7). `auth`: the register/login limit, AUTH_RATE_LIMIT_MAX per window, one count per
 * IP shared by every route that declares it.
 */
export type RouteRateLimit = 'auth';

/** A JSON Schema written by hand, for what zod does not describe (text, HTML, a header). */
export type JsonSchema = { readonly type?: string } & Readonly<Record<string, unknown>>;

/** A response header, for the document. With `id` it is one shared component of that name. */
export interface ResponseHeader {
  readonly description: string;
  /** `{ type: 'string' }` when not given. */
  readonly schema?: JsonSchema;
  readonly id?: string;
}

interface ResponseBase {
  readonly status: number;
  readonly description: string;
  /** Headers the handler sets; the ones every response carries are added by the document's rules. */
  readonly headers?: Readonly<Record<string, ResponseHeader>>;
  /**
   * The handler sends an `ETag`, and a GET whose `If-None-Match` matches it is answered 304 Not
   * Modified with no body (Express's `res.send` does, RFC 9110 section 13.1.2): what the 304 says.
   */
  readonly notModified?: string;
}

/** A JSON body: the handler returns it, and it is sent as `application/json` with `status`. */
export interface JsonResponse<S extends z.ZodType = z.ZodType> extends ResponseBase {
  readonly schema: S;
}

/** Another media type (text, HTML, a file, a cached string): the handler writes the response itself. */
export interface RawResponse extends ResponseBase {
  readonly content: Readonly<Record<string, { readonly schema: z.ZodType | JsonSchema }>>;
}

/** No body (204): the handler returns nothing. */
export type EmptyResponse = ResponseBase;

export type SuccessResponse = JsonResponse | RawResponse | EmptyResponse;

/** Who is calling, as `authenticate` found it (see `req.auth`). */
export type AuthContext = NonNullable<Request['auth']>;

/** What a handler is given: its input already parsed by the declared schemas. */
export interface RouteInput<Body = unknown, Query = unknown, Params = unknown, Cookies = unknown, Auth = AuthContext | undefined> {
  body: Body;
  query: Query;
  params: Params;
  cookies: Cookies;
  /** The caller, on Bearer routes; undefined elsewhere. */
  auth: Auth;
  /** What sessions and audit events record about the request. */
  context: RequestContext;
  /** For what the declaration cannot say: cookies to set, a response written by hand. */
  req: Request;
  res: Response;
  next: NextFunction;
}

/** One request's handler, its deps already bound. */
export type RouteHandler = (input: RouteInput) => unknown;

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;
type Returned<R> = R extends { schema: infer S extends z.ZodType } ? z.input<S> : void;
type MaybePromise<T> = T | Promise<T>;

/** Query, path parameters and cookies are named fields: an object schema each. */
type FieldsSchema = z.ZodObject;

/** What a route declares, besides its handler. */
export interface RouteSpec {
  readonly method: HttpMethod;
  /** OpenAPI form, `/admin/users/{id}/roles`; the router turns `{id}` into `:id`. */
  readonly path: string;
  /**
   * The operation's name in the document, unique and camelCase: what client generators name
   * their method (`login`, `refreshTokens`, `getCurrentUser`), so say it as a caller would.
   */
  readonly operationId: string;
  /** Needs `Authorization: Bearer` (authentication, step 8 of CONTRACT.md section 6). */
  readonly bearer: boolean;
  /** A stricter rate limit; app.ts applies it at the rate-limit step (5), before the body is read. */
  readonly rateLimit?: RouteRateLimit | undefined;
  /** The permission the caller must hold (RBAC, step 9); only on Bearer routes. */
  readonly permission?: string | undefined;
  /** Validation (step 10). A body schema that accepts undefined makes the body optional. */
  readonly body?: z.ZodType | undefined;
  readonly query?: FieldsSchema | undefined;
  /** A path whose parameters this schema refuses is 404 NOT_FOUND, like a path no route has. */
  readonly params?: FieldsSchema | undefined;
  readonly cookies?: FieldsSchema | undefined;
  readonly response: SuccessResponse;
  /**
   * The codes the route itself can answer. Those of the chain in front of it (signature,
   * rate limit, token, RBAC, validation, body parsing) are added by rule from the rest.
   */
  readonly errors: readonly ProblemCode[];
  readonly tag: string;
  readonly summary: string;
  readonly description?: string | undefined;
}

/** A route: its spec and a factory that, given its deps once, returns its handler. */
export interface RouteDeclaration<Deps = never> extends RouteSpec {
  readonly handler: (deps: Deps) => RouteHandler;
}

/** The routes of one folder, all built from the same deps. */
export type RouteTable<Deps = never> = readonly RouteDeclaration<Deps>[];

/** What {@link defineRoute} takes: a spec whose handler is typed by the schemas declared next to it. */
export interface RouteOptions<Deps, Bearer extends boolean, B, Q, P, C, R extends SuccessResponse> extends Omit<
  RouteSpec,
  'bearer' | 'body' | 'query' | 'params' | 'cookies' | 'response' | 'errors'
> {
  readonly bearer?: Bearer;
  readonly body?: B;
  readonly query?: Q;
  readonly params?: P;
  readonly cookies?: C;
  readonly response: R;
  readonly errors?: readonly ProblemCode[];
  /**
   * Called once with the folder's deps; returns the handler of each request. A JSON
   * response's body is what it returns; an empty one's status is sent when it returns.
   */
  readonly handler: (
    deps: Deps,
  ) => (
    input: RouteInput<Parsed<B>, Parsed<Q>, Parsed<P>, Parsed<C>, Bearer extends true ? AuthContext : undefined>,
  ) => MaybePromise<Returned<R>>;
}

const PLACEHOLDER = /\{([A-Za-z0-9_]+)\}/g;

/** camelCase, acronyms as words too: `getJwks`, `getOpenApiDocument`, never `getOpenAPIDocument`. */
export const OPERATION_ID = /^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)*$/;

/** `/admin/users/{id}/roles` → `/admin/users/:id/roles`: the one place the two spellings meet. */
export function expressPath(path: string): string {
  return path.replace(PLACEHOLDER, ':$1');
}

/**
 * Declares a route. The handler sees its input already parsed by the declared schemas,
 * typed by them, and `auth` typed as present exactly when `bearer` is true. Mistakes in the
 * declaration itself are a TypeError here, at start-up (and in the document's build).
 */
export function defineRoute<
  Deps,
  const Bearer extends boolean = false,
  B extends z.ZodType | undefined = undefined,
  Q extends FieldsSchema | undefined = undefined,
  P extends FieldsSchema | undefined = undefined,
  C extends FieldsSchema | undefined = undefined,
  R extends SuccessResponse = SuccessResponse,
>(options: RouteOptions<Deps, Bearer, B, Q, P, C, R>): RouteDeclaration<Deps> {
  const route = `${options.method.toUpperCase()} ${options.path}`;
  if (!options.path.startsWith('/') || /[:*?()]/.test(options.path)) {
    throw new TypeError(`defineRoute: ${route}: the path must be absolute, with parameters as {name}`);
  }
  if (!OPERATION_ID.test(options.operationId)) {
    throw new TypeError(
      `defineRoute: ${route}: the operationId ${JSON.stringify(options.operationId)} must be camelCase, like getCurrentUser`,
    );
  }
  if (options.permission !== undefined && options.bearer !== true) {
    throw new TypeError(`defineRoute: ${route}: a permission is checked against the Bearer caller: it needs bearer: true`);
  }
  const inPath = [...options.path.matchAll(PLACEHOLDER)].map((match) => match[1]!).sort();
  const declared = Object.keys(options.params?.shape ?? {}).sort();
  if (inPath.join() !== declared.join()) {
    throw new TypeError(
      `defineRoute: ${route}: the path has {${inPath.join('}, {')}}, the params schema ${declared.join(', ') || 'nothing'}`,
    );
  }
  if ('schema' in options.response && 'content' in options.response) {
    throw new TypeError(`defineRoute: ${route}: a response has a schema (sent as JSON) or a content (written by the handler), not both`);
  }
  return { ...options, bearer: options.bearer ?? false, errors: options.errors ?? [] } as unknown as RouteDeclaration<Deps>;
}
