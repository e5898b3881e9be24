import request from 'supertest';
import { expectProblem, GOOD_PASSWORD, registerUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';

/** The value of one sample line of the Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = (match[2] ?? '').split(',');
    if (wanted.every((label) => present.includes(label))) return Number(match[3]);
  }
  return 0;
}

describe('GET /metrics', () => {
  let h: Harness;
  const scrape = async () => {
    const res = await request(h.app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    return res.text;
  };

  beforeAll(async () => {
    h = await createHarness({ env: { LOGIN_MAX_FAILURES: '2', HMAC_CLIENTS: `app:${'s'.repeat(32)}` } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when a login, a failed login and a refresh happen, then their counters move', async () => {
    const user = await registerUser(h.app);
    const before = await scrape();

    expect((await request(h.app).post('/auth/login').send({ email: user.email, password: GOOD_PASSWORD })).status).toBe(200);
    expectProblem(
      await request(h.app).post('/auth/login').send({ email: user.email, password: 'not the password' }),
      401,
      'INVALID_CREDENTIALS',
    );
    expect((await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken })).status).toBe(200);
    const after = await scrape();

    const moved = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    expect(moved('gatehouse_logins_total', { result: 'success' })).toBe(1);
    expect(moved('gatehouse_logins_total', { result: 'invalid_credentials' })).toBe(1);
    expect(moved('gatehouse_refreshes_total', { result: 'success' })).toBe(1);
    expect(moved('gatehouse_bcrypt_duration_seconds_count', { operation: 'compare' })).toBe(2);
    expect(moved('gatehouse_http_request_duration_seconds_count', { route: '/auth/login', method: 'POST', status: '200' })).toBe(1);
  });

  it('when a lockout, a reuse and a bad signature happen, then their counters move', async () => {
    const user = await registerUser(h.app);
    const before = await scrape();

    for (let i = 0; i < 2; i++) await request(h.app).post('/auth/login').send({ email: user.email, password: 'wrong wrong wrong' });
    await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken });
    h.clock.advance(h.config.refreshReuseGrace + 1);
    expectProblem(await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken }), 401, 'REFRESH_TOKEN_REUSED');
    const unsigned = await request(h.app)
      .get('/users/me')
      .set({ 'X-Client-Id': 'app', 'X-Timestamp': '1', 'X-Nonce': 'n'.repeat(16), 'X-Signature': 'sha256=' + '0'.repeat(64) });
    expectProblem(unsigned, 401, 'SIGNATURE_EXPIRED');
    const after = await scrape();

    const moved = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(moved('gatehouse_account_lockouts_total')).toBe(1);
    expect(moved('gatehouse_refresh_token_reuse_detected_total')).toBe(1);
    expect(moved('gatehouse_refreshes_total', { result: 'refresh_token_reused' })).toBe(1);
    expect(moved('gatehouse_signature_failures_total', { reason: 'signature_expired' })).toBe(1);
  });

  it('when one route answers several times, then each route, method and status is one series counting every request', async () => {
    const before = await scrape();
    for (let i = 0; i < 3; i++) await request(h.app).get('/.well-known/jwks.json').expect(200);
    for (let i = 0; i < 2; i++) expectProblem(await request(h.app).get('/users/me'), 401, 'TOKEN_MISSING');
    const after = await scrape();

    const moved = (labels: Record<string, string>) =>
      sample(after, 'gatehouse_http_request_duration_seconds_count', labels) -
      sample(before, 'gatehouse_http_request_duration_seconds_count', labels);
    expect(moved({ route: '/.well-known/jwks.json', method: 'GET', status: '200' })).toBe(3);
    expect(moved({ route: '/users/me', method: 'GET', status: '401' })).toBe(2);
    expect(moved({ route: '/users/me', method: 'GET', status: '200' })).toBe(0);
    // Every observation lands in a bucket: the +Inf bucket counts them all.
    expect(
      sample(after, 'gatehouse_http_request_duration_seconds_bucket', { route: '/users/me', status: '401', le: '+Inf' }) -
        sample(before, 'gatehouse_http_request_duration_seconds_bucket', { route: '/users/me', status: '401', le: '+Inf' }),
    ).toBe(2);
  });

  it('when scraped, then route labels are templates, never raw paths, and process metrics are present', async () => {
    await request(h.app).delete('/users/me/sessions/00000000-0000-4000-8000-000000000000');
    // A path no number of the process metrics can hold by chance (bytes, seconds, fds).
    await request(h.app).get('/no/such/path/zz-raw-path-zz');
    const text = await scrape();
    expect(text).toContain('route="/users/me/sessions/:id"');
    expect(text).toContain('route="unmatched"');
    expect(text).not.toContain('00000000-0000-4000-8000-000000000000');
    expect(text).not.toContain('zz-raw-path-zz');
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toMatch(/^gatehouse_db_pool_connections\{state="idle"\} \d+$/m);
    expect(text).toMatch(/^gatehouse_db_pool_connections\{state="waiting"\} \d+$/m);
  });

  it('when scraped many times, then it is never rate limited and needs no signature', async () => {
    const limited = await createHarness({ env: { RATE_LIMIT_MAX: '2', HMAC_MODE: 'required', HMAC_CLIENTS: `app:${'s'.repeat(32)}` } });
    try {
      for (let i = 0; i < 4; i++) expect((await request(limited.app).get('/metrics')).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
