import { main } from '../../scripts/lint-api';
import type { ScriptIo } from '../../scripts/cli';
import { APP_ROUTES } from '../../src/app.routes';
import { defineRoute, OPERATION_ID, type RouteDeclaration, type Stage } from '../../src/http/route';
import type { StagedRoutes } from '../../src/http/router';
import { buildOpenApiDocument } from '../../src/openapi/openapi.document';

/* eslint-disable @typescript-eslint/no-explicit-any -- the document is parsed JSON */
type Json = any;

const STAGES: Stage[] = ['open', 'limited', 'signed'];
const STAGED = STAGES.flatMap((stage) =>
  Object.values(APP_ROUTES[stage] as StagedRoutes[Stage])
    .flat()
    .map((route) => ({ route, stage })),
);
const name = (route: RouteDeclaration<never>) => `${route.method.toUpperCase()} ${route.path}`;

const doc: Json = JSON.parse(JSON.stringify(buildOpenApiDocument()));
const operationOf = (route: RouteDeclaration<never>): Json => doc.paths[route.path][route.method];

/** Runs `npm run lint:api`'s main in this process, on `document` when given. */
async function lintApi(document?: () => unknown) {
  let stdout = '';
  let stderr = '';
  const io: ScriptIo = {
    env: process.env,
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  };
  const code = await main([], io, document ? { document } : {});
  return { code, stdout, stderr };
}

describe('operationIds', () => {
  it('when every route is declared, then each has an operationId of its own, in camelCase', () => {
    const ids = STAGED.map(({ route }) => route.operationId);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    expect(ids.filter((id) => !OPERATION_ID.test(id))).toEqual([]);
  });

  it('when the document is built, then each operation carries its route’s operationId', () => {
    expect(STAGED.map(({ route }) => [name(route), operationOf(route).operationId])).toEqual(
      STAGED.map(({ route }) => [name(route), route.operationId]),
    );
  });

  it.each(['GetUser', 'get_user', 'get-user', 'getJWKS', 'getOpenAPIDocument', ''])(
    'when a route declares the operationId %j, then defineRoute refuses it at start-up',
    (operationId) => {
      const declare = () =>
        defineRoute({
          method: 'get',
          path: '/x',
          operationId,
          tag: 'x',
          summary: 'x',
          response: { status: 204, description: 'x' },
          handler: () => () => {},
        });
      expect(declare).toThrow(TypeError);
    },
  );

  it('when two routes declare the same operationId, then the document is not built', () => {
    const [first, second] = APP_ROUTES.signed.auth;
    const routes: StagedRoutes = {
      ...APP_ROUTES,
      signed: { ...APP_ROUTES.signed, auth: [first!, { ...second!, operationId: first!.operationId }] },
    };
    expect(() => buildOpenApiDocument(routes)).toThrow(new RegExp(`are both ${first!.operationId}$`));
  });
});

describe('security and client errors, as Redocly’s rules read them', () => {
  it('when a route is neither signed nor Bearer, then its operation says so with an empty security list', () => {
    for (const { route, stage } of STAGED) {
      const security: unknown = operationOf(route).security;
      const requires = stage === 'signed' || route.bearer;
      // An absent list would mean "as the document's default"; an empty one, "no requirement".
      expect({ route: name(route), isList: Array.isArray(security), empty: Array.isArray(security) && security.length === 0 }).toEqual({
        route: name(route),
        isList: true,
        empty: !requires,
      });
    }
  });

  // Why redocly.yaml turns operation-4xx-response off: only the open routes lack a 4XX, and they never answer one.
  it('when a route is rate limited, then it documents a 4XX; when it is open, then it documents none, as nothing in front refuses it', () => {
    for (const { route, stage } of STAGED) {
      const statuses = Object.keys(operationOf(route).responses as Record<string, unknown>);
      expect({ route: name(route), has4xx: statuses.some((status) => status.startsWith('4')) }).toEqual({
        route: name(route),
        has4xx: stage !== 'open',
      });
    }
  });
});

describe('npm run lint:api', () => {
  it('when the service’s document is linted with redocly.yaml, then Redocly finds no problem', async () => {
    const run = await lintApi();
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/no problem/);
  });

  it('when an operation has no operationId and no security, then the lint fails and names both rules where they fail', async () => {
    const broken = (): Json => {
      const document: Json = JSON.parse(JSON.stringify(doc));
      delete document.paths['/healthz'].get.operationId;
      delete document.paths['/healthz'].get.security;
      return document;
    };
    const run = await lintApi(broken);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('#/paths/~1healthz/get/operationId: error operation-operationId');
    expect(run.stderr).toContain('#/paths/~1healthz/get: error security-defined');
    expect(run.stderr).not.toMatch(/Node\.js 20/);
  });
});
