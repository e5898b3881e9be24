import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { signRequest } from '../../src/signature/signer';
import { uniqueEmail, GOOD_PASSWORD } from '../helpers/factories';
import { type GatehouseProcess, lineWhere, logLines, pidServing, startCluster } from '../helpers/server-process';
import { testClients } from '../helpers/signing';

// WEB_CONCURRENCY=2 (CONTRACT.md section 1) in a real Gatehouse: a node:cluster primary and two
// workers, each a separate instance on the shared PostgreSQL and Redis. One cluster serves
// every test of this file, in order; the last one stops it.

// Two workers act as one only through shared stores; without both (CI sets them), skip.
const describeIfShared = process.env.DATABASE_URL && process.env.REDIS_URL ? describe : describe.skip;

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

interface Held {
  /** Resolves once Gatehouse has read the headers (it answered 100 Continue). */
  accepted: Promise<void>;
  /** Sends the body held back so far. */
  sendBody(): void;
  response: Promise<Reply>;
}

/**
 * A request on a connection of its own (no keep-alive agent): the primary hands each new
 * connection to the next worker. With `holdBody`, the body waits behind `Expect: 100-continue`
 * until sendBody(), so the request is in flight on Gatehouse's side for as long as the test says.
 */
function send(
  baseUrl: string,
  method: string,
  urlPath: string,
  options: { headers?: Record<string, string>; body?: string; holdBody?: boolean } = {},
): Held {
  const headers: Record<string, string | number> = { ...options.headers };
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(options.body);
  }
  if (options.holdBody) headers.Expect = '100-continue';
  const req = http.request(`${baseUrl}${urlPath}`, { method, headers, agent: false });
  const accepted = new Promise<void>((resolve, reject) => {
    req.once('continue', resolve);
    req.once('error', reject);
  });
  const response = new Promise<Reply>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      res.on('error', reject);
    });
  });
  if (options.holdBody) req.flushHeaders();
  else req.end(options.body);
  return { accepted, sendBody: () => req.end(options.body), response };
}

describeIfShared('WEB_CONCURRENCY=2 on PostgreSQL and Redis', () => {
  const { ios, hmacClients } = testClients();
  const keysDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cluster-keys-'));
  let gatehouse: GatehouseProcess;
  let primaryPid: number;
  let workerPids: number[];

  /** A signed login of an email nobody registered: 401 INVALID_CREDENTIALS when it gets through. */
  function signedLogin(requestId: string, nonce?: string) {
    const body = JSON.stringify({ email: uniqueEmail('cluster'), password: GOOD_PASSWORD });
    const signature = signRequest({
      clientId: ios.id,
      secret: ios.secret,
      method: 'POST',
      path: '/auth/login',
      body,
      ...(nonce ? { nonce } : {}),
    });
    return { body, headers: { ...signature, 'X-Request-Id': requestId } };
  }

  beforeAll(async () => {
    // KEYS_DIR empty: the primary generates the development key, once, before it forks.
    ({ gatehouse, primaryPid, workerPids } = await startCluster({ hmacClients, env: { KEYS_DIR: keysDir } }));
  }, 90_000);

  afterAll(async () => {
    await gatehouse?.dispose();
    rmSync(keysDir, { recursive: true, force: true });
  });

  it('when it starts on an empty KEYS_DIR, then the primary generates one key before forking and both workers sign with it', () => {
    const lines = logLines(gatehouse);
    const generated = lines.filter((l) => l.msg.includes('generated a development key'));
    const listening = lines.filter((l) => l.msg === 'gatehouse listening');

    expect(generated).toEqual([expect.objectContaining({ pid: primaryPid })]);
    expect(readdirSync(keysDir).filter((name) => name.endsWith('.key.pem'))).toHaveLength(1);
    expect(workerPids).toHaveLength(2);
    expect(new Set(workerPids).size).toBe(2);
    expect(workerPids).not.toContain(primaryPid);
    expect(listening.map((l) => l.pid).sort()).toEqual([...workerPids].sort());
    expect(listening.map((l) => l.kid)).toEqual([generated[0]!.kid, generated[0]!.kid]);
  });

  it('when requests arrive on new connections, then both workers serve them, and each log line names its pid', async () => {
    const servedBy = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const requestId = `cluster-spread-${randomUUID()}`;
      const reply = await send(gatehouse.baseUrl, 'GET', '/.well-known/jwks.json', { headers: { 'X-Request-Id': requestId } }).response;
      expect(reply.status).toBe(200);
      servedBy.add(await pidServing(gatehouse, requestId));
    }

    expect([...servedBy].sort()).toEqual([...workerPids].sort());
  });

  it('when a signed request is replayed on other connections, then it is refused as SIGNATURE_REPLAYED by either worker', async () => {
    const original = signedLogin(`cluster-original-${randomUUID()}`);
    const first = await send(gatehouse.baseUrl, 'POST', '/auth/login', original).response;
    expect(first).toMatchObject({ status: 401, body: { code: 'INVALID_CREDENTIALS' } });

    // Replays, each on a new connection, until both workers have had one (the primary deals
    // connections out in turn, so two or three do).
    const refusedBy = new Set<number>();
    for (let i = 0; i < 8 && refusedBy.size < 2; i++) {
      const requestId = `cluster-replay-${randomUUID()}`;
      const replay = await send(gatehouse.baseUrl, 'POST', '/auth/login', {
        body: original.body,
        headers: { ...original.headers, 'X-Request-Id': requestId },
      }).response;
      expect(replay).toMatchObject({ status: 401, body: { code: 'SIGNATURE_REPLAYED' } });
      refusedBy.add(await pidServing(gatehouse, requestId));
    }

    expect([...refusedBy].sort()).toEqual([...workerPids].sort());
  });

  it('when a worker is killed with SIGKILL, then the primary logs it and a replacement serves', async () => {
    const [victim, survivor] = workerPids as [number, number];

    process.kill(victim, 'SIGKILL');
    const logged = await lineWhere(
      gatehouse,
      (l) => l.pid === primaryPid && l.workerPid === victim && typeof l.replacementPid === 'number',
      `the death of worker ${victim}`,
    );
    expect(logged).toMatchObject({ signal: 'SIGKILL', code: null, msg: expect.stringMatching(/exited unexpectedly/) });
    const replacement = logged.replacementPid as number;
    await lineWhere(gatehouse, (l) => l.pid === replacement && l.msg === 'gatehouse listening', `that worker ${replacement} listens`);

    const servedBy = new Set<number>();
    for (let i = 0; i < 8 && !servedBy.has(replacement); i++) {
      const requestId = `cluster-after-kill-${randomUUID()}`;
      const reply = await send(gatehouse.baseUrl, 'GET', '/.well-known/jwks.json', { headers: { 'X-Request-Id': requestId } }).response;
      expect(reply.status).toBe(200);
      servedBy.add(await pidServing(gatehouse, requestId));
    }
    expect(servedBy).toContain(replacement);
    expect(servedBy).not.toContain(victim);
    workerPids = [survivor, replacement];
  });

  it('when SIGTERM reaches the primary, then every worker finishes its requests in flight and the primary exits 0', async () => {
    const held = [0, 1].map(() =>
      send(gatehouse.baseUrl, 'POST', '/auth/login', { ...signedLogin(`cluster-held-${randomUUID()}`), holdBody: true }),
    );
    await Promise.all(held.map((request) => request.accepted));

    const exitCode = gatehouse.stop('SIGTERM');
    for (const pid of workerPids) {
      await lineWhere(gatehouse, (l) => l.pid === pid && l.msg.startsWith('shutting down'), `that worker ${pid} drains`);
    }
    for (const request of held) request.sendBody();
    const replies = await Promise.all(held.map((request) => request.response));

    expect(replies.map((reply) => reply.body.code)).toEqual(['INVALID_CREDENTIALS', 'INVALID_CREDENTIALS']);
    expect(await exitCode).toBe(0);
    const stopped = logLines(gatehouse).filter((l) => l.msg === 'stopped');
    expect(stopped.map((l) => l.pid).sort()).toEqual([...workerPids, primaryPid].sort());
    expect(stopped.at(-1)).toMatchObject({ pid: primaryPid, exitCode: 0 });
  });
});
