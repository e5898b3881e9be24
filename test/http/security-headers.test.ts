import express, { type RequestHandler } from 'express';
import helmet, { type HelmetOptions } from 'helmet';
import request from 'supertest';
import { securityHeaders } from '../../src/http/security-headers';

/** The headers a bare app with one security middleware answers with, but the ones of any response. */
async function headersWith(middleware: RequestHandler): Promise<Record<string, unknown>> {
  const app = express();
  app.use(middleware);
  app.get('/', (_req, res) => void res.json({ ok: true }));
  const res = await request(app).get('/').expect(200);
  const headers: Record<string, unknown> = { ...res.headers };
  for (const name of ['date', 'connection', 'keep-alive', 'content-length', 'content-type', 'etag']) delete headers[name];
  return headers;
}

const OPTIONS: Array<[string, HelmetOptions]> = [
  [
    "Gatehouse's",
    {
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
      crossOriginResourcePolicy: { policy: 'same-site' },
    },
  ],
  ["helmet's defaults", {}],
  ['some turned off', { strictTransportSecurity: false, xFrameOptions: false, referrerPolicy: { policy: ['origin', 'unsafe-url'] } }],
];

describe('securityHeaders', () => {
  it.each(OPTIONS)('when given %s options, then every response has exactly the headers helmet sets', async (_name, options) => {
    const replayed = await headersWith(securityHeaders(options));
    expect(replayed).toEqual(await headersWith(helmet(options)));
    expect(Object.keys(replayed).length).toBeGreaterThan(5);
  });

  it('when Express announces itself, then X-Powered-By is removed, as helmet does', async () => {
    expect(await headersWith((_req, _res, next) => next())).toHaveProperty('x-powered-by', 'Express');
    expect(await headersWith(securityHeaders({}))).not.toHaveProperty('x-powered-by');
  });

  it('when a CSP directive is computed per request, then it is refused at build time', () => {
    const nonce = () => "'nonce-abc'";
    expect(() => securityHeaders({ contentSecurityPolicy: { directives: { scriptSrc: ["'self'", nonce] } } })).toThrow(TypeError);
  });

  it('when helmet refuses the options, then so does securityHeaders, at build time', () => {
    expect(() => securityHeaders({ crossOriginResourcePolicy: { policy: 'nowhere' as 'same-site' } })).toThrow();
  });
});
