import request from 'supertest';
import { signRequest } from '../../src/signature/signer';
import { GOOD_PASSWORD, expectProblem, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { runInProcess, runScript } from '../helpers/scripts';

jest.setTimeout(60_000);

const SECRET = 'sign-script-secret-0123456789abcdef';
const ENV = { HMAC_MODE: 'required', HMAC_CLIENTS: `cli:${SECRET},other:${'x'.repeat(32)}` };

/** `-H Name:value` lines → header pairs, as curl would send them. */
function headersOf(stdout: string): Record<string, string> {
  const pairs = stdout
    .trim()
    .split('\n')
    .map((line) => /^-H ([A-Za-z-]+):(\S+)$/.exec(line));
  if (pairs.some((m) => m === null)) throw new Error(`unexpected output: ${stdout}`);
  return Object.fromEntries(pairs.map((m) => [m![1]!, m![2]!]));
}

describe('npm run sign', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: ENV });
    // The script signs with the real time; the app must agree on it.
    h.clock.set(new Date());
  });
  afterAll(async () => {
    await h.close();
  });

  // The one run of sign from the command line; the others call its main in-process.
  it('when its headers are sent with the signed body, then the server accepts the request once and refuses a replay', async () => {
    const user = await registerUserSigned(h);
    const body = JSON.stringify({ email: user.email, password: GOOD_PASSWORD });
    const run = await runScript('sign.ts', ['POST', '/auth/login', body], ENV);
    expect(run.code).toBe(0);
    const headers = headersOf(run.stdout);
    expect(Object.keys(headers)).toEqual(['X-Client-Id', 'X-Timestamp', 'X-Nonce', 'X-Signature']);
    expect(headers['X-Client-Id']).toBe('cli');

    const send = () => request(h.app).post('/auth/login').set(headers).set('Content-Type', 'application/json').send(body);
    expect((await send()).status).toBe(200);
    expectProblem(await send(), 401, 'SIGNATURE_REPLAYED');
  });

  it('when --client names another client, then that client signs', async () => {
    const run = await runInProcess('sign.ts', ['GET', '/users/me', '--client', 'other'], ENV);
    expect(run.code).toBe(0);
    expect(headersOf(run.stdout)['X-Client-Id']).toBe('other');
  });

  it.each([
    ['no path', ['GET']],
    ['a path without a leading slash', ['GET', 'users/me']],
    ['an unknown client', ['GET', '/users/me', '--client', 'nobody']],
  ])('when given %s, then it exits non-zero with one line', async (_name, args) => {
    const run = await runInProcess('sign.ts', args, ENV);
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stdout).toBe('');
  });
});

/** Registration is signed too in required mode; sign it in-process with the same secret. */
async function registerUserSigned(h: Harness) {
  const email = uniqueEmail();
  const body = JSON.stringify({ email, password: GOOD_PASSWORD });
  const timestamp = Math.floor(h.clock.now().getTime() / 1000);
  const headers = signRequest({ clientId: 'cli', secret: SECRET, method: 'POST', path: '/auth/register', body, timestamp });
  const res = await request(h.app).post('/auth/register').set(headers).set('Content-Type', 'application/json').send(body);
  expect(res.status).toBe(201);
  return { email };
}
