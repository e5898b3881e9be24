import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser, type RegisteredUser } from '../helpers/factories';

// CONTRACT.md section 4, cookie mode: a refresh or logout that takes its token from the
// refresh_token cookie must come from an allowed page (an Origin in CORS_ORIGINS, or
// Sec-Fetch-Site: same-origin). SameSite=Strict alone trusts sibling subdomains, and a
// browser attaches the cookie to a cross-site form POST or a no-cors fetch it was told to send.

const APP_ORIGIN = 'https://app.example.com';
const EVIL_ORIGIN = 'https://evil.example';

type Path = '/auth/refresh' | '/auth/logout';

/** What the page that sends the request makes the browser say about it. */
interface FromPage {
  origin?: string;
  fetchSite?: string;
}

/**
 * How a browser can send the request. An empty HTML form POST is
 * application/x-www-form-urlencoded with no body; a no-cors fetch may send text/plain; a
 * credentialed fetch JSON. None of them carries a refreshToken: the cookie is the token.
 */
const SHAPES: [shape: string, send: (req: request.Test) => request.Test][] = [
  ['an empty form POST', (req) => req.set('Content-Type', 'application/x-www-form-urlencoded')],
  ['an empty text/plain fetch', (req) => req.set('Content-Type', 'text/plain')],
  ['a JSON body without refreshToken', (req) => req.set('Content-Type', 'application/json').send('{}')],
  ['no body and no content type', (req) => req],
];

describe('cookie mode: refresh and logout from the cookie only come from an allowed page', () => {
  let h: Harness;
  beforeAll(async () => {
    // Strict reuse: a rotated token presented again is REFRESH_TOKEN_REUSED, so "not rotated" shows.
    h = await createHarness({ env: { CORS_ORIGINS: APP_ORIGIN, REFRESH_REUSE_GRACE: '0' } });
  });
  afterAll(async () => {
    await h.close();
  });

  function fromCookie(path: Path, user: RegisteredUser, page: FromPage, shape = SHAPES[0]![1]): request.Test {
    let req = request(h.app).post(path).set('Cookie', `refresh_token=${user.refreshToken}`);
    if (page.origin !== undefined) req = req.set('Origin', page.origin);
    if (page.fetchSite !== undefined) req = req.set('Sec-Fetch-Site', page.fetchSite);
    return shape(req);
  }

  /** The session is untouched: its access token works and its refresh token is still the live one. */
  async function expectSessionIntact(user: RegisteredUser): Promise<void> {
    expect((await request(h.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`)).status).toBe(200);
    expect((await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken })).status).toBe(200);
  }

  describe.each<Path>(['/auth/refresh', '/auth/logout'])('POST %s', (path) => {
    describe('refused: 403 ORIGIN_NOT_ALLOWED, nothing rotated or revoked', () => {
      it.each(SHAPES)('when %s comes from an evil origin with the cookie', async (_shape, shape) => {
        const user = await registerUser(h.app);

        const res = await fromCookie(path, user, { origin: EVIL_ORIGIN, fetchSite: 'cross-site' }, shape);

        expectProblem(res, 403, 'ORIGIN_NOT_ALLOWED');
        expect(res.headers['set-cookie']).toBeUndefined();
        await expectSessionIntact(user);
      });

      it.each<[string, FromPage]>([
        ['the evil origin without Sec-Fetch-Site (an older browser)', { origin: EVIL_ORIGIN }],
        ['a sibling subdomain (SameSite lets its cookie through)', { origin: 'https://blog.example.com', fetchSite: 'same-site' }],
        ['Origin: null (a sandboxed frame or a redirect)', { origin: 'null', fetchSite: 'cross-site' }],
        ['the allowed origin over http', { origin: 'http://app.example.com' }],
        ['the allowed origin with a path appended', { origin: `${APP_ORIGIN}/` }],
        ['no Origin and no Sec-Fetch-Site', {}],
        ['no Origin and Sec-Fetch-Site: same-site', { fetchSite: 'same-site' }],
        ['no Origin and Sec-Fetch-Site: none', { fetchSite: 'none' }],
      ])('when the cookie comes with %s', async (_name, page) => {
        const user = await registerUser(h.app);

        const res = await fromCookie(path, user, page);

        expectProblem(res, 403, 'ORIGIN_NOT_ALLOWED');
        await expectSessionIntact(user);
      });

      it('when a cross-site form POST carries fields, then the JSON body layer answers 415 and nothing happens either', async () => {
        const user = await registerUser(h.app);

        const res = await fromCookie(path, user, { origin: EVIL_ORIGIN, fetchSite: 'cross-site' }).send('x=1');

        expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
        await expectSessionIntact(user);
      });
    });

    describe('allowed', () => {
      it.each<[string, FromPage]>([
        ['an Origin listed in CORS_ORIGINS', { origin: APP_ORIGIN, fetchSite: 'same-site' }],
        ['Sec-Fetch-Site: same-origin (Gatehouse’s own page)', { origin: 'https://auth.example.com', fetchSite: 'same-origin' }],
        ['Sec-Fetch-Site: same-origin and no Origin', { fetchSite: 'same-origin' }],
      ])('when the cookie comes with %s, then it is served', async (_name, page) => {
        const user = await registerUser(h.app);

        const res = await fromCookie(path, user, page);

        if (path === '/auth/refresh') {
          expect(res.status).toBe(200);
          expect(res.body.refreshToken).not.toBe(user.refreshToken);
          expectProblem(await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken }), 401, 'REFRESH_TOKEN_REUSED');
        } else {
          expect(res.status).toBe(204);
          expectProblem(await request(h.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`), 401, 'SESSION_REVOKED');
        }
      });

      it('when the token is in the body (an app, not a browser), then it is served whatever the Origin, even with the cookie', async () => {
        const user = await registerUser(h.app);

        const res = await request(h.app)
          .post(path)
          .set('Origin', EVIL_ORIGIN)
          .set('Sec-Fetch-Site', 'cross-site')
          .set('Cookie', `refresh_token=${user.refreshToken}`)
          .send({ refreshToken: user.refreshToken });

        expect(res.status).toBe(path === '/auth/refresh' ? 200 : 204);
      });
    });
  });

  it('when neither body nor cookie has a token, then refresh answers 401 REFRESH_TOKEN_INVALID and logout 204 (nothing to forge)', async () => {
    expectProblem(await request(h.app).post('/auth/refresh').set('Origin', EVIL_ORIGIN), 401, 'REFRESH_TOKEN_INVALID');
    expect((await request(h.app).post('/auth/logout').set('Origin', EVIL_ORIGIN)).status).toBe(204);
  });
});
