import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, registerUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';

/*
 * What the generated hostile input (openapi.fuzz.test.ts) and the response validation
 * (test/setup/validate-responses.ts) found, each pinned by the smallest request that showed
 * it, so that it stays fixed whatever seed the fuzz runs with.
 */

for (const kind of DATABASE_KINDS) {
  describe(`defects found by fuzzing (${kind})`, () => {
    let h: Harness;

    beforeAll(async () => {
      h = await createHarness({ kind });
    });

    afterAll(async () => {
      await h?.close();
    });

    /** Failure counters of an email; auth.failed events of requests with this User-Agent. */
    async function counted(email: string, userAgent: string): Promise<{ failures: number; events: number }> {
      const { db } = h.database;
      const failures = await db.selectFrom('login_failures').where('email', '=', email).select('failures').executeTakeFirst();
      const events = await db
        .selectFrom('audit_events')
        .where('type', '=', 'auth.failed')
        .where('user_agent', '=', userAgent)
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow();
      return { failures: failures?.failures ?? 0, events: Number(events.n) };
    }

    // Found: 500. "İ" lower-cases to two characters, so 254 of them passed the length check and
    // made a 508-character email, which the failure counters' CHECK refused mid-transaction.
    test('when a login email grows past 254 characters by lower-casing, then it is 422 VALIDATION_FAILED and nothing is recorded', async () => {
      const email = `${'\u0130'.repeat(200)}${randomUUID()}`;
      const userAgent = `fuzz-finding-${randomUUID()}`;

      const res = await request(h.app).post('/auth/login').set('User-Agent', userAgent).send({ email, password: 'whatever it is' });

      expectProblem(res, 422, 'VALIDATION_FAILED');
      expect(res.body.errors).toEqual([expect.objectContaining({ path: 'email' })]);
      expect(await counted(email.toLowerCase(), userAgent)).toEqual({ failures: 0, events: 0 });
    });

    test('when a login email is 254 characters after lower-casing, then it is an ordinary failed login, counted', async () => {
      // 109 × 2 + 36 = 254.
      const email = `${'\u0130'.repeat(109)}${randomUUID()}`;
      const userAgent = `fuzz-finding-${randomUUID()}`;

      const res = await request(h.app).post('/auth/login').set('User-Agent', userAgent).send({ email, password: 'whatever it is' });

      expectProblem(res, 401, 'INVALID_CREDENTIALS');
      expect(await counted(email.toLowerCase(), userAgent)).toEqual({ failures: 1, events: 1 });
    });

    // Found: an empty 304, which the document does not have. Express's res.send answers any GET
    // carrying `If-None-Match: *` with 304, whether or not the route sends a validator.
    test.each([
      ['/users/me', true],
      ['/.well-known/jwks.json', false],
      ['/healthz', false],
      ['/openapi.json', false],
    ])('when GET %s carries If-None-Match: *, then it is answered in full (200), not 304', async (path, needsToken) => {
      const req = request(h.app).get(path).set('If-None-Match', '*');
      if (needsToken) req.set(bearer((await registerUser(h.app)).accessToken));

      const res = await req;

      expect(res.status).toBe(200);
      expect(res.text.length).toBeGreaterThan(0);
    });

    test('when a docs asset is asked with the ETag it has, then it is still 304, as the document now says', async () => {
      const first = await request(h.app).get('/docs/index.css');
      const again = await request(h.app).get('/docs/index.css').set('If-None-Match', first.headers.etag!);
      expect(again.status).toBe(304);
    });

    // Found: a GET under the signed prefixes with a body that is not JSON is 415 (the body is
    // parsed and signed whatever the method), which the document listed for other methods only.
    test('when a GET carries a body that is not JSON, then it is 415, as the document says', async () => {
      const { accessToken } = await registerUser(h.app);

      const res = await request(h.app).get('/users/me').set(bearer(accessToken)).set('Content-Type', 'text/plain').send('hello');

      expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      const document = (await request(h.app).get('/openapi.json')).body;
      expect(Object.keys(document.paths['/users/me'].get.responses)).toEqual(expect.arrayContaining(['400', '413', '415']));
    });
  });
}
