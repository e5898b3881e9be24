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
import { CliError, parseCommandLine, runScript } from './cli';

const HELP = `
Usage: npm run bench [-- --requests N --concurrency C --rounds R]

Measures Gatehouse against a bare baseline in the same run and prints ratios, so numbers
from different machines compare: a bare Express route for the HTTP paths, a bare
bcrypt.compare at the same cost for login. The baseline is measured right before each
scenario, in each of R rounds; the table shows the medians and the spread of the ratio.
Uses the embedded database (or DATABASE_URL), HMAC signing on, rate limits out of the way.
Nothing here is a test: no thresholds.

Options:
  --requests N      requests per HTTP scenario (default 2000)
  --concurrency C   requests in flight (default 16)
  --rounds R        times every scenario is measured (default 3)
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
async function measure(
  name: string,
  total: number,
  concurrency: number,
  one: (i: number, worker: number) => Promise<void>,
): Promise<Result> {
  const warmUp = Math.ceil(total / 10);
  for (let i = 0; i < warmUp; i += concurrency)
    await Promise.all(Array.from({ length: concurrency }, (_, worker) => one(i + worker, worker)));
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
    options: { requests: { type: 'string' }, concurrency: { type: 'string' }, rounds: { type: 'string' } },
  });
  if (!args) return;
  const total = Number(args.values.requests ?? 2000);
  const concurrency = Number(args.values.concurrency ?? 16);
  const rounds = Number(args.values.rounds ?? 3);
  if (![total, concurrency, rounds].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new CliError('--requests, --concurrency and --rounds take positive whole numbers');
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
    console.log(
      `gatehouse bench: ${total} requests per scenario, ${concurrency} in flight, bcrypt cost ${config.bcryptCost}, ${database.kind}`,
    );
    const password = 'correct horse battery staple';
    const sessions = await Promise.all(
      Array.from({ length: concurrency }, (_, i) =>
        post('/auth/register', { email: `bench-${Date.now()}-${i}@example.test`, password }, 201),
      ),
    );
    const email = `bench-login-${Date.now()}@example.test`;
    await post('/auth/register', { email, password }, 201);
    const refreshTokens = sessions.map((s) => s.refreshToken);

    interface Scenario {
      name: string;
      count: number;
      baseline: 'http' | 'bcrypt';
      one: (i: number, worker: number) => Promise<void>;
    }
    // Each worker rotates its own session's token chain: a token is good for one refresh.
    const refreshCount = Math.max(concurrency, Math.floor(total / 4));
    // Login is bcrypt-bound by design: it is compared with bcrypt alone at the same cost.
    const hash = await bcrypt.hash(password, config.bcryptCost);
    const logins = Math.max(concurrency, 64);
    const scenarios: Scenario[] = [
      {
        name: 'GET /healthz',
        count: total,
        baseline: 'http',
        one: async () => expectStatus(await send(gatehouse.port, 'GET', '/healthz', {}), 200, 'healthz'),
      },
      {
        name: 'GET /.well-known/jwks.json',
        count: total,
        baseline: 'http',
        one: async () => expectStatus(await send(gatehouse.port, 'GET', '/.well-known/jwks.json', {}), 200, 'jwks'),
      },
      {
        name: 'GET /users/me (signed, Bearer)',
        count: total,
        baseline: 'http',
        one: async (i) => {
          const headers = { ...signed('GET', '/users/me'), Authorization: `Bearer ${sessions[i % concurrency]!.accessToken}` };
          expectStatus(await send(gatehouse.port, 'GET', '/users/me', headers), 200, 'users/me');
        },
      },
      {
        name: 'POST /auth/refresh (rotation)',
        count: refreshCount,
        baseline: 'http',
        one: async (_i, worker) => {
          refreshTokens[worker] = (await post('/auth/refresh', { refreshToken: refreshTokens[worker] }, 200)).refreshToken;
        },
      },
      {
        name: 'POST /auth/login (bcrypt in workers)',
        count: logins,
        baseline: 'bcrypt',
        one: async () => void (await post('/auth/login', { email, password }, 200)),
      },
    ];
    const baselines = {
      http: (count: number) =>
        measure('bare express GET', count, concurrency, async () =>
          expectStatus(await send(baseline.port, 'GET', '/bare', {}), 200, 'bare'),
        ),
      bcrypt: (count: number) =>
        measure(`bare bcrypt.compare (cost ${config.bcryptCost})`, count, concurrency, async () => {
          await bcrypt.compare(password, hash);
        }),
    };

    // The baseline is measured right before each scenario, in every round, so both see the
    // machine in the same state; the table gives the median of the rounds and their spread.
    const runs = new Map<string, Array<{ result: Result; base: Result }>>(scenarios.map((s) => [s.name, []]));
    // One unmeasured pass over the HTTP paths first: the load generator and the bare route
    // share this process's JIT, and a first round measured cold flattered every ratio.
    for (const scenario of scenarios.filter((s) => s.baseline === 'http')) {
      await baselines.http(Math.ceil(scenario.count / 4));
      await measure(scenario.name, Math.ceil(scenario.count / 4), concurrency, scenario.one);
    }
    for (let round = 0; round < rounds; round++) {
      for (const scenario of scenarios) {
        const base = await baselines[scenario.baseline](scenario.count);
        const result = await measure(scenario.name, scenario.count, concurrency, scenario.one);
        runs.get(scenario.name)!.push({ result, base });
      }
    }

    const median = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const mid = Math.floor(sorted.length / 2);
      return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    };
    const rows = scenarios.map(({ name }) => {
      const measured = runs.get(name)!;
      const ratios = measured.map(({ result, base }) => result.perSecond / base.perSecond);
      return {
        scenario: name,
        'req/s': median(measured.map(({ result }) => result.perSecond)).toFixed(0),
        'p50 ms': median(measured.map(({ result }) => result.p50)).toFixed(2),
        'p99 ms': median(measured.map(({ result }) => result.p99)).toFixed(2),
        baseline: measured[0]!.base.name,
        'baseline req/s': median(measured.map(({ base }) => base.perSecond)).toFixed(0),
        'ratio (req/s ÷ baseline)': median(ratios).toFixed(3),
        'ratio min–max': `${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}`,
      };
    });
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
