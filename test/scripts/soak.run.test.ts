import { randomBytes } from 'node:crypto';
import { main } from '../../scripts/soak';
import type { ScriptIo } from '../../scripts/cli';
import { type AppServer, startAppServer } from '../helpers/app-server';
import { TEST_ENV } from '../helpers/harness';

// `npm run soak` end to end, in process (its main(argv, io)), against Gatehouse listening on a
// port of this process: a short load, then its checks. The memory check reads this very
// process (Jest and the server share it), so its verdict, and with it the exit code, is not
// what these tests judge; every other check is.

jest.setTimeout(60_000);

async function soak(argv: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: ScriptIo = {
    env: { ...TEST_ENV, DATABASE_URL: '', REDIS_URL: '', ...env },
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe('npm run soak, against a running server', () => {
  const hmacClients = `soak:${randomBytes(24).toString('base64url')}`;
  let server: AppServer;
  beforeAll(async () => {
    server = await startAppServer({ HMAC_CLIENTS: hmacClients });
  });
  afterAll(async () => {
    await server.dispose();
  });

  it('when it runs a short load, then it reports requests by kind and every check but memory holds', async () => {
    const run = await soak(['--url', server.baseUrl, '--duration', '2', '--warm-up', '1', '--connections', '4'], {
      HMAC_CLIENTS: hmacClients,
    });
    expect(run.stderr).not.toMatch(/^soak: (?!run |warm-up|load done)/m);
    const lines = run.stdout.split('\n');
    // What a journey does after registering is drawn at random; these happen for every user.
    for (const kind of ['register', 'check: refresh', 'check: sessions', 'check: login', 'check: logout']) {
      expect(lines.some((line) => line.startsWith(`${kind} `))).toBe(true);
    }
    for (const check of [
      'no 5xx',
      'every answer as expected',
      'every registered user can still log in',
      'every live refresh chain ends in a live token, no session lost (API)',
    ]) {
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^✓ ${check.replace(/[()]/g, '\\$&')}: `)));
    }
    expect(lines).toContainEqual(expect.stringMatching(/^– one live refresh token per live session \(database\): not checked/));
    expect(lines).toContainEqual(expect.stringMatching(/^[✓✗] server memory after the run within 20% of after the warm-up: peak RSS /));
    expect(lines.filter((line) => line !== '').at(-1)).toMatch(/^soak (passed|FAILED)/);
    expect([0, 1]).toContain(run.code);
  });

  it('when the server does not know the client, then it stops before any load, in one line', async () => {
    const run = await soak(['--url', server.baseUrl, '--duration', '1'], { HMAC_CLIENTS: `soak:${'x'.repeat(32)}` });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toEqual([
      'soak: the server refused the signature of client "soak": give a client and secret from the server\'s HMAC_CLIENTS',
    ]);
  });

  it('when --url is not on this machine, then it refuses, saying why, and sends nothing', async () => {
    const run = await soak(['--url', 'http://192.0.2.10:3000'], { HMAC_CLIENTS: hmacClients });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^soak: refusing 192\.0\.2\.10:3000: .*only against one on this machine/);
  });

  it('when nothing listens at --url, then it says to start the server', async () => {
    const run = await soak(['--url', 'http://127.0.0.1:9', '--duration', '1'], { HMAC_CLIENTS: hmacClients });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^soak: cannot reach http:\/\/127\.0\.0\.1:9 .*start the server first/);
  });

  it('when given --help, then it prints its usage and exits 0', async () => {
    const run = await soak(['--help'], {});
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: npm run soak/);
  });
});
