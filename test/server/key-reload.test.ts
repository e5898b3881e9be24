import http from 'node:http';
import { decodeProtectedHeader } from 'jose';
import { writeNewKeyPair } from '../../src/tokens/keys';
import { GOOD_PASSWORD, uniqueEmail } from '../helpers/factories';
import { type GatehouseProcess, lineWhere, linesWhere, logLines, startCluster, startGatehouse } from '../helpers/server-process';

// SIGHUP makes a real Gatehouse re-read KEYS_DIR (issue 12): requests in flight are not
// dropped, the process lives on, and the new key is published. Under WEB_CONCURRENCY the
// primary passes the signal on to its workers. The reload timer is set to an hour here, so
// only the signal can explain a reload.

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** A login whose body is sent in two parts: between them the request is in flight on Gatehouse's side. */
function heldLogin(baseUrl: string, email: string): { finish(): void; response: Promise<Reply> } {
  const body = JSON.stringify({ email, password: GOOD_PASSWORD });
  const req = http.request(`${baseUrl}/auth/login`, {
    method: 'POST',
    agent: false,
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
  });
  const response = new Promise<Reply>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
  });
  req.flushHeaders();
  req.write(body.slice(0, 10));
  return { finish: () => req.end(body.slice(10)), response };
}

async function register(baseUrl: string): Promise<string> {
  const email = uniqueEmail('reload');
  const res = await fetch(`${baseUrl}/auth/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password: GOOD_PASSWORD }),
  });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status}`);
  return email;
}

async function jwksKids(baseUrl: string): Promise<string[]> {
  const body = (await (await fetch(`${baseUrl}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
  return body.keys.map((key) => key.kid);
}

describe('SIGHUP on a single server', () => {
  let gatehouse: GatehouseProcess;
  let pid: number;

  beforeAll(async () => {
    gatehouse = await startGatehouse({ LOG_LEVEL: 'info', KEYS_RELOAD_INTERVAL: '3600' });
    pid = (await lineWhere(gatehouse, (l) => l.msg === 'gatehouse listening', 'that it listens')).pid;
  }, 60_000);

  afterAll(async () => {
    await gatehouse?.dispose();
  });

  it('when SIGHUP arrives with requests in flight, then none is dropped, the process lives on and the new key is published', async () => {
    const email = await register(gatehouse.baseUrl);
    const held = heldLogin(gatehouse.baseUrl, email);
    // Requests arriving throughout the reload, on connections of their own.
    const burst = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0
        ? fetch(`${gatehouse.baseUrl}/.well-known/jwks.json`).then((res) => res.status)
        : fetch(`${gatehouse.baseUrl}/auth/login`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ email, password: GOOD_PASSWORD }),
          }).then((res) => res.status),
    );
    // keys:generate --now: it signs as soon as the server has read it.
    const { kid } = await writeNewKeyPair(gatehouse.keysDir);

    process.kill(pid, 'SIGHUP');
    const reread = await lineWhere(gatehouse, (l) => l.msg === 'KEYS_DIR re-read', 'that it re-read KEYS_DIR');
    held.finish();

    expect(reread).toMatchObject({ pid, ok: true, changed: true });
    expect(await held.response).toMatchObject({ status: 200 });
    expect(await Promise.all(burst)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(await jwksKids(gatehouse.baseUrl)).toContain(kid);
    const login = await fetch(`${gatehouse.baseUrl}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: GOOD_PASSWORD }),
    });
    const { accessToken } = (await login.json()) as { accessToken: string };
    expect(decodeProtectedHeader(accessToken).kid).toBe(kid);
    expect(logLines(gatehouse).find((l) => l.msg === 'keys reloaded: the set of keys changed')).toMatchObject({
      added: [kid],
      signing: kid,
    });
    // Key material never reaches the log.
    expect(gatehouse.output()).not.toContain('PRIVATE KEY');
  }, 60_000);

  it('when KEYS_DIR holds a broken key at SIGHUP, then it keeps its keys, logs the file and why, and goes on signing', async () => {
    const before = await jwksKids(gatehouse.baseUrl);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${gatehouse.keysDir}/20990101T000000Z-broken00.key.pem`, 'not a key', { mode: 0o600 });

    process.kill(pid, 'SIGHUP');
    const warned = await lineWhere(gatehouse, (l) => l.msg === 'keys not reloaded: keeping the keys in use', 'the failed reload');

    expect(warned).toMatchObject({ reason: expect.stringContaining('20990101T000000Z-broken00.key.pem') });
    expect(await jwksKids(gatehouse.baseUrl)).toEqual(before);
    expect((await fetch(`${gatehouse.baseUrl}/healthz`)).status).toBe(200);
  }, 60_000);
});

// Two workers need a database both can reach.
const describeIfPostgres = process.env.DATABASE_URL ? describe : describe.skip;

describeIfPostgres('SIGHUP on the cluster primary (WEB_CONCURRENCY=2)', () => {
  let gatehouse: GatehouseProcess;
  let primaryPid: number;
  let workerPids: number[];

  beforeAll(async () => {
    // No hmacClients: no Redis needed for what is tested here, as nothing is signed.
    ({ gatehouse, primaryPid, workerPids } = await startCluster({ env: { KEYS_RELOAD_INTERVAL: '3600' } }));
  }, 90_000);

  afterAll(async () => {
    await gatehouse?.dispose();
  });

  it('when SIGHUP reaches the primary, then it passes it on, both workers re-read KEYS_DIR and publish the new key, and nothing exits', async () => {
    const { kid } = await writeNewKeyPair(gatehouse.keysDir);

    process.kill(primaryPid, 'SIGHUP');
    const reread = await linesWhere(gatehouse, (l) => l.msg === 'KEYS_DIR re-read', 2, 'that both workers re-read KEYS_DIR');

    expect(reread.map((l) => l.pid).sort()).toEqual([...workerPids].sort());
    expect(reread.map((l) => l.changed)).toEqual([true, true]);
    // New connections are spread over both workers: every answer has the new key.
    for (let i = 0; i < 6; i++) expect(await jwksKids(gatehouse.baseUrl)).toContain(kid);
    expect(logLines(gatehouse).filter((l) => /exited|stopped|shutting down/.test(l.msg))).toEqual([]);
  }, 60_000);
});
