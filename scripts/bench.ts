import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import bcrypt from 'bcryptjs';
import express from 'express';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { openDatabase } from '../src/db/database';
import { migrateToLatest } from '../src/db/migrator';
import { createLogger } from '../src/logger';
import { createPooledPasswordHasher } from '../src/passwords/password-hasher';
import { signRequest } from '../src/signature/signer';
import { buildKeyStore, readKeyFiles, writeNewKeyPair } from '../src/tokens/keys';
import { parseCommandLine, runScript } from './cli';

const HELP = `
Usage: npm run bench [-- --requests N --concurrency C]

Measures Gatehouse against a bare baseline in the same run and prints ratios, so numbers
from different machines compare: a bare Express route for the HTTP paths, a bare
bcrypt.compare at the same cost for login. Uses the embedded database (or DATABASE_URL),
HMAC signing on, rate limits out of the way. Nothing here is a test: no thresholds.

Options:
  --requests N      requests per HTTP scenario (default 2000)
  --concurrency C   requests in flight (default 16)
  -h, --help        print this help
`;

interface Result {
  name: string;
  perSecond: number;
  p50: number;
  p99: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function send(port: number, method: string, urlPath: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Runs `total` calls of `one`, `concurrency` at a time, after a tenth as many unmeasured
 * ones (so the JIT warms up for every scenario alike, the baseline included); latencies in ms.
 */
async function measure(name: string, total: number, concurrency: number, one: (i: number, worker: number) => Promise<void>): Promise<Result> {
  const warmUp = Math.ceil(total / 10);
  for (let i = 0; i < warmUp; i += concurrency) await Promise.all(Array.from({ length: concurrency }, (_, worker) => one(i + worker, worker)));
  const latencies: number[] = [];
  let next = warmUp + concurrency;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < total + warmUp + concurrency) {
        const i = next++;
        const t0 = performance.now();
        await one(i, worker);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  return { name, perSecond: total / seconds, p50: at(0.5), p99: at(0.99) };
}

async function listen(handler: http.RequestListener): Promise<{ server: Server; port: number }> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

function expectStatus(status: number, wanted: number, what: string): void {
  if (status !== wanted) throw new Error(`${what} answered ${status}, expected ${wanted}`);
}

runScript('bench', async () => {
  const args = parseCommandLine({
    name: 'bench',
    help: HELP,
    options: { requests: { type: 'string' }, concurrency: { type: 'string' } },
  });
  if (!args) return;
  const total = Number(args.values.requests ?? 2000);
  const concurrency = Number(args.values.concurrency ?? 16);
  if (!Number.isInteger(total) || total < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
    throw new TypeError('--requests and --concurrency take positive whole numbers');
  }

  const secret = 'bench-secret-0123456789abcdef0123456789';
  const config = loadConfig({
    ...process.env,
    NODE_ENV: 'production',
    LOG_LEVEL: 'silent',
    HMAC_MODE: 'required',
    HMAC_CLIENTS: `bench:${secret}`,
    RATE_LIMIT_MAX: '1000000',
    AUTH_RATE_LIMIT_MAX: '1000000',
  });
  const keysDir = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-bench-keys-'));
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: 'memory://' });
  await migrateToLatest(database.db);
  await writeNewKeyPair(keysDir);
  const keys = buildKeyStore(await readKeyFiles(keysDir));

  // As the server runs it: bcrypt in worker threads.
  const hasher = createPooledPasswordHasher(config.bcryptCost);
  const gatehouse = await listen(createApp({ config, db: database.db, keys, logger: createLogger('silent'), hasher }));
  const bare = express();
  bare.get('/bare', (_req, res) => {
    res.json({ status: 'ok' });
  });
  const baseline = await listen(bare);

  const signed = (method: string, urlPath: string, body?: string) => ({
    ...signRequest({ clientId: 'bench', secret, method, path: urlPath, body }),
    ...(body ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } : {}),
  });
  const post = async (urlPath: string, payload: object, wanted: number) => {
    const body = JSON.stringify(payload);
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: gatehouse.port, method: 'POST', path: urlPath, headers: signed('POST', urlPath, body), agent },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expectStatus(res.status, wanted, `POST ${urlPath}`);
    return JSON.parse(res.text || '{}') as { accessToken: string; refreshToken: string };
  };

  try {
    console.log(`gatehouse bench: ${total} requests per scenario, ${concurrency} in flight, bcrypt cost ${config.bcryptCost}, ${database.kind}`);
    const password = 'correct horse battery staple';
    const sessions = await Promise.all(
      Array.from({ length: concurrency }, (_, i) => post('/auth/register', { email: `bench-${Date.now()}-${i}@example.test`, password }, 201)),
    );
    const email = `bench-login-${Date.now()}@example.test`;
    await post('/auth/register', { email, password }, 201);
    const refreshTokens = sessions.map((s) => s.refreshToken);

    const results: Array<[Result, Result]> = [];
    const bareGet = await measure('bare express GET', total, concurrency, async () =>
      expectStatus(await send(baseline.port, 'GET', '/bare', {}), 200, 'bare'),
    );
    results.push([
      await measure('GET /healthz', total, concurrency, async () => expectStatus(await send(gatehouse.port, 'GET', '/healthz', {}), 200, 'healthz')),
      bareGet,
    ]);
    results.push([
      await measure('GET /.well-known/jwks.json', total, concurrency, async () =>
        expectStatus(await send(gatehouse.port, 'GET', '/.well-known/jwks.json', {}), 200, 'jwks'),
      ),
      bareGet,
    ]);
    results.push([
      await measure('GET /users/me (signed, Bearer)', total, concurrency, async (i) => {
        const headers = { ...signed('GET', '/users/me'), Authorization: `Bearer ${sessions[i % concurrency]!.accessToken}` };
        expectStatus(await send(gatehouse.port, 'GET', '/users/me', headers), 200, 'users/me');
      }),
      bareGet,
    ]);
    // Each worker rotates its own session's token chain: a token is good for one refresh.
    const refreshCount = Math.max(concurrency, Math.floor(total / 4));
    results.push([
      await measure('POST /auth/refresh (rotation)', refreshCount, concurrency, async (_i, worker) => {
        refreshTokens[worker] = (await post('/auth/refresh', { refreshToken: refreshTokens[worker] }, 200)).refreshToken;
      }),
      bareGet,
    ]);
    // Login is bcrypt-bound by design: compare it with bcrypt alone at the same cost.
    const hash = await bcrypt.hash(password, config.bcryptCost);
    const logins = Math.max(concurrency, 64);
    const bareBcrypt = await measure(`bare bcrypt.compare (cost ${config.bcryptCost})`, logins, concurrency, async () => {
      await bcrypt.compare(password, hash);
    });
    results.push([
      await measure('POST /auth/login (bcrypt in workers)', logins, concurrency, async () => void (await post('/auth/login', { email, password }, 200))),
      bareBcrypt,
    ]);

    const rows = results.map(([r, base]) => ({
      scenario: r.name,
      'req/s': r.perSecond.toFixed(0),
      'p50 ms': r.p50.toFixed(2),
      'p99 ms': r.p99.toFixed(2),
      baseline: base.name,
      'baseline req/s': base.perSecond.toFixed(0),
      'ratio (req/s ÷ baseline)': (r.perSecond / base.perSecond).toFixed(3),
    }));
    console.table(rows);
  } finally {
    agent.destroy();
    gatehouse.server.close();
    baseline.server.close();
    await database.close();
    await hasher.close();
    await rm(keysDir, { recursive: true, force: true });
  }
});
