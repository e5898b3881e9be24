import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPair, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { thumbprint } from '../../src/tokens/keys';
import { writePgliteDataDir } from './databases';

const ROOT = path.resolve(__dirname, '../..');
/** Bounds on start and stop, so a broken server fails the test instead of hanging it. */
const START_TIMEOUT_MS = 40_000;
const STOP_TIMEOUT_MS = 20_000;

export interface GatehouseProcess {
  /** `http://127.0.0.1:<port>`, the same across restarts. */
  baseUrl: string;
  keysDir: string;
  dataDir: string;
  /** Everything the server has written to stdout and stderr so far, across restarts. */
  output(): string;
  /** Resolves when a line of output contains `text` (bounded). */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** Sends the signal and resolves with the exit code (null when the process died of a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Stops it with SIGTERM and starts it again on the same port, data and keys. */
  restart(): Promise<void>;
  /** Kills whatever still runs and removes the temporary folders; safe to call twice. */
  dispose(): Promise<void>;
}

/** Every process this test file started and has not seen exit: killed whatever happens. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * A port that was free a moment ago, from a range of this Jest worker's own below the
 * system's ephemeral ports. Port 0 is no good here: the OS may hand the same just-closed port
 * to a test in another worker, whose server then answers this test's /healthz while this
 * test's server fails to bind.
 */
export async function freePort(): Promise<number> {
  const worker = Number(process.env.JEST_WORKER_ID ?? '1') % 16;
  for (let attempt = 0; ; attempt++) {
    const port = 20_000 + worker * 500 + Math.floor(Math.random() * 500);
    if (await canListen(port)) return port;
    if (attempt > 50) throw new Error("no free port in this worker's range");
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Writes a 2048-bit key pair as `keys:generate` names it, stamped an hour ago so any key
 * generated during the test is newer: quicker than the 3072-bit key Gatehouse would make.
 */
export async function writeTestKey(dir: string): Promise<void> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const stamp = new Date(Date.now() - 3_600_000)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const base = path.join(dir, `${stamp}-${thumbprint(publicKey).slice(0, 8)}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${base}.key.pem`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(`${base}.pub.pem`, publicKey.export({ type: 'spki', format: 'pem' }));
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/**
 * Starts a real Gatehouse (`node --import tsx src/server.ts`) in a child process on a free
 * port, with its own temporary DATA_DIR (embedded database) and KEYS_DIR (holding a key
 * made here), and waits until /healthz answers. Call `dispose()` in afterAll; a process
 * left running is killed when the test process exits in any case.
 *
 * The DATA_DIR holds a database that is initialised but not migrated (the run's template):
 * the server migrates it at start-up as on a fresh clone, without initdb, which would take
 * seconds and most of a gigabyte of memory beside the Jest workers.
 *
 * Defaults: cheap bcrypt, warn-level logs, rate limits out of the way; `env` overrides them.
 */
export async function startGatehouse(env: Record<string, string> = {}): Promise<GatehouseProcess> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-process-'));
  const dataDir = env.DATA_DIR ?? path.join(tmp, 'data');
  const keysDir = env.KEYS_DIR ?? path.join(tmp, 'keys');
  if (env.KEYS_DIR === undefined) await writeTestKey(keysDir);
  if (env.DATA_DIR === undefined) await writePgliteDataDir('empty', dataDir);
  const childEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    KEYS_DIR: keysDir,
    // The embedded database, whatever the test run was given: this is the fresh-clone set-up.
    DATABASE_URL: '',
    LOG_LEVEL: 'warn',
    BCRYPT_COST: '4',
    RATE_LIMIT_MAX: '1000000',
    AUTH_RATE_LIMIT_MAX: '1000000',
    ...env,
  };

  let output = '';
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    const started = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    live.add(started);
    started.once('exit', () => live.delete(started));
    started.on('error', (error) => (output += `spawn error: ${error.message}\n`));
    started.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (started.exitCode !== null || started.signalCode !== null) {
        throw new Error(`gatehouse exited during start-up (${started.exitCode ?? started.signalCode}):\n${output}`);
      }
      try {
        const res = await fetch(`${baseUrl}/healthz`);
        if (res.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    started.kill('SIGKILL');
    throw new Error(`gatehouse did not answer /healthz within ${START_TIMEOUT_MS} ms:\n${output}`);
  }

  async function stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const running = child;
    if (!running) throw new Error('gatehouse is not running');
    const done = exited(running);
    running.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)));
    const result = await Promise.race([done, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      running.kill('SIGKILL');
      throw new Error(`gatehouse did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}:\n${output}`);
    }
    child = undefined;
    return result;
  }

  await start().catch((error: unknown) => {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  });

  return {
    baseUrl,
    keysDir,
    dataDir,
    output: () => output,
    async waitForOutput(text, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!output.includes(text)) {
        if (Date.now() > deadline) throw new Error(`gatehouse never logged "${text}":\n${output}`);
        await sleep(20);
      }
    },
    stop,
    async restart() {
      const code = await stop('SIGTERM');
      if (code !== 0) throw new Error(`gatehouse exited with ${code} on SIGTERM:\n${output}`);
      await start();
    },
    async dispose() {
      const running = child;
      if (running && running.exitCode === null && running.signalCode === null) {
        const done = exited(running);
        running.kill('SIGKILL');
        await done;
      }
      child = undefined;
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** One JSON line of Gatehouse's log: every line names the pid of the process that wrote it. */
export interface LogLine {
  pid: number;
  msg: string;
  [field: string]: unknown;
}

/** Bound on waiting for a log line, so a line that never comes fails with the output. */
const LOG_TIMEOUT_MS = 20_000;

/** Gatehouse's JSON log lines so far (anything else on its stdout and stderr is skipped). */
export function logLines(gatehouse: GatehouseProcess): LogLine[] {
  return gatehouse
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** Every log line `matches` accepts, once there are at least `count` of them (bounded). */
export async function linesWhere(
  gatehouse: GatehouseProcess,
  matches: (line: LogLine) => boolean,
  count: number,
  what: string,
): Promise<LogLine[]> {
  const deadline = Date.now() + LOG_TIMEOUT_MS;
  for (;;) {
    const lines = logLines(gatehouse).filter(matches);
    if (lines.length >= count) return lines;
    if (Date.now() > deadline) throw new Error(`gatehouse never logged ${what}:\n${gatehouse.output()}`);
    await sleep(20);
  }
}

/** The first log line `matches` accepts, waiting for it (bounded). */
export async function lineWhere(gatehouse: GatehouseProcess, matches: (line: LogLine) => boolean, what: string): Promise<LogLine> {
  const [line] = await linesWhere(gatehouse, matches, 1, what);
  return line!;
}

/** The pid of the process whose request log names this X-Request-Id (its `reqId`). */
export async function pidServing(gatehouse: GatehouseProcess, requestId: string): Promise<number> {
  return (await lineWhere(gatehouse, (line) => line.reqId === requestId, `request ${requestId}`)).pid;
}

export interface GatehouseCluster {
  gatehouse: GatehouseProcess;
  primaryPid: number;
  /** The workers' pids, as the primary logged them once all listened. */
  workerPids: number[];
}

export interface ClusterOptions {
  /**
   * HMAC_CLIENTS: the workers then require signed requests and share the run's Redis
   * (REDIS_URL, under a prefix of this cluster's own) for nonces and rate limits. Without
   * it, HMAC_MODE is off and there is no Redis.
   */
  hmacClients?: string;
  /** Variables on top of those. */
  env?: Record<string, string>;
}

/**
 * Starts Gatehouse with WEB_CONCURRENCY=2 (a node:cluster primary and two workers) on the
 * run's PostgreSQL (DATABASE_URL: two workers need a database both reach), logging at info
 * so each request's line names the worker that served it; resolves once the primary logs
 * that all workers listen. Call `gatehouse.dispose()` in afterAll.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<GatehouseCluster> {
  const { hmacClients } = options;
  const gatehouse = await startGatehouse({
    WEB_CONCURRENCY: '2',
    DATABASE_URL: process.env.DATABASE_URL!,
    LOG_LEVEL: 'info',
    ...(hmacClients === undefined
      ? { HMAC_MODE: 'off' }
      : {
          REDIS_URL: process.env.REDIS_URL!,
          REDIS_PREFIX: `test:${randomUUID()}:`,
          HMAC_MODE: 'required',
          HMAC_CLIENTS: hmacClients,
        }),
    ...options.env,
  });
  try {
    const ready = await lineWhere(gatehouse, (line) => line.msg === 'all workers listening', 'that all workers listen');
    return { gatehouse, primaryPid: ready.pid, workerPids: ready.workerPids as number[] };
  } catch (error) {
    await gatehouse.dispose();
    throw error;
  }
}
